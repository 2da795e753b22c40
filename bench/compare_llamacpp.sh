#!/usr/bin/env bash
# Side-by-side speed of qwenbox and llama.cpp's llama-bench on the same GGUF files.
#   bench/compare_llamacpp.sh LLAMA_BUILD_DIR WORK_DIR [THREADS] [REPS]
# LLAMA_BUILD_DIR holds bin/llama-bench and bin/llama-quantize (build llama.cpp yourself, e.g.
# in /tmp; it is not part of qwenbox). WORK_DIR receives random-weight models (several GB):
# qwen2.5-0.5b in F16, BF16, Q8_0, Q4_0 and qwen2.5-1.5b in Q4_0, Q4_K_M. The F16/BF16 files
# come from `qwenbox make-model`, Q8_0/Q4_0 from `qwenbox quantize`, Q4_K_M from llama-quantize.
# MODELS="q05-q5_k_m q15-q3_k_m ..." picks other files; a name q05-<mix> or q15-<mix> that does
# not exist yet is made by llama-quantize with that mix (Q5_K_M, Q3_K_M, Q2_K, Q5_0, ...: the
# types of the official Qwen2.5 GGUFs; at the 0.5B's width of 896 llama.cpp falls back from the
# K-quants to Q5_0, Q5_1, IQ4_NL and Q8_0).
# Prints one line per (model, test, engine): tokens/s (llama-bench: mean of REPS; qwenbox: median).
set -euo pipefail
LLAMA="$1"; WORK="$2"; THREADS="${3:-2}"; REPS="${4:-3}"
QB="$(cd "$(dirname "$0")/.." && pwd)/build/qwenbox"
mkdir -p "$WORK"
cd "$WORK"
[ -e q05-f16.gguf ] || "$QB" make-model --preset qwen2.5-0.5b --out q05-f16.gguf --format gguf --dtype f16 --seed 1
[ -e q05-bf16.gguf ] || "$QB" make-model --preset qwen2.5-0.5b --out q05-bf16.gguf --format gguf --dtype bf16 --seed 1
for t in q8_0 q4_0; do [ -e q05-$t.gguf ] || "$QB" quantize q05-f16.gguf q05-$t.gguf --type $t; done
[ -e q15-f16.gguf ] || "$QB" make-model --preset qwen2.5-1.5b --out q15-f16.gguf --format gguf --dtype f16 --seed 2
[ -e q15-q4_0.gguf ] || "$QB" quantize q15-f16.gguf q15-q4_0.gguf --type q4_0
[ -e q15-q4_k_m.gguf ] || "$LLAMA/bin/llama-quantize" q15-f16.gguf q15-q4_k_m.gguf Q4_K_M >/dev/null 2>&1

MODELS="${MODELS:-q05-f16 q05-bf16 q05-q8_0 q05-q4_0 q15-q4_0 q15-q4_k_m}"
for m in $MODELS; do
  [ -e $m.gguf ] || "$LLAMA/bin/llama-quantize" "${m%%-*}-f16.gguf" $m.gguf "$(echo "${m#*-}" | tr a-z A-Z)" >/dev/null 2>&1
done
for m in $MODELS; do
  "$LLAMA/bin/llama-bench" -m $m.gguf -p 512 -n 64 -t "$THREADS" -r "$REPS" -o csv 2>/dev/null |
    awk -F, -v m=$m 'NR > 1 { gsub(/"/, ""); t = ($(NF-6) > 0) ? "pp" $(NF-6) : "tg" $(NF-5);
                      printf "%-12s %-6s llama.cpp %8.2f\n", m, t, $(NF-1) }' || true
  "$QB" bench --model $m.gguf -p 512 -n 64 -t "$THREADS" --reps "$REPS" --json |
    python3 -c "import json,sys; j=json.load(sys.stdin); print('%-12s %-6s qwenbox   %8.2f' % ('$m', 'pp512', j['pp_tok_s']['median'])); print('%-12s %-6s qwenbox   %8.2f' % ('$m', 'tg64', j['tg_tok_s']['median']))"
done
