#!/usr/bin/env bash
# Sets up qwenbox and runs the demo model: a random-weight model of the "tiny" preset with the
# real Qwen2.5 tokenizer (made once with `qwenbox make-model`), or a real checkpoint:
#   scripts/demo.sh                      demo model
#   scripts/demo.sh --model PATH         a Hugging Face directory or a .gguf file
# (The HTTP server, `qwenbox serve`, is not built yet; until it is, the demo runs `generate`.)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"

MODEL=""
if [ "${1:-}" = "--model" ] && [ -n "${2:-}" ]; then
  MODEL="$2"
else
  MODEL="build/demo-tiny"
  [ -e "$MODEL/model.safetensors" ] || build/qwenbox make-model --preset tiny --out "$MODEL"
fi

build/qwenbox info --model "$MODEL"
build/qwenbox generate --model "$MODEL" --chat "Hello! Who are you?" --max-tokens 32 --json
