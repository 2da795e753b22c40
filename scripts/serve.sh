#!/usr/bin/env bash
# Sets up qwenbox and starts the server:
#   scripts/serve.sh                         the built-in demo model (random weights, real tokenizer)
#   scripts/serve.sh --model PATH [opts...]  a Hugging Face directory or a .gguf file
# Any other `qwenbox serve` option passes through (see build/qwenbox serve --help); the server
# listens on http://127.0.0.1:8080 unless --host/--port say otherwise. Ctrl-C drains and exits.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target qwenbox
exec build/qwenbox serve "$@"
