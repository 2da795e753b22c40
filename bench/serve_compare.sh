#!/usr/bin/env bash
# Serving side by side: `qwenbox serve` and llama.cpp's llama-server on the same GGUF, each
# loaded by `qwenbox loadtest` at several concurrencies (the same seeded requests for both).
#   bench/serve_compare.sh LLAMA_BUILD_DIR MODEL.gguf [THREADS] [CONCURRENCIES] [INPUT_LEN] [OUTPUT_LEN]
# LLAMA_BUILD_DIR holds bin/llama-server (build llama.cpp yourself, e.g. in /tmp; it is not part
# of qwenbox). For each concurrency C both servers are started afresh with THREADS threads and
# room for C sequences (llama-server: C slots of INPUT_LEN + OUTPUT_LEN + 64 tokens). Requests per run: 8 x concurrency,
# at least 8, at most 64; each concurrency has its own seed, so no run reuses an earlier
# run's prompts (both servers cache prompt prefixes). Prints one line per (server, concurrency); JSON reports go to $OUT_DIR (default /tmp).
set -euo pipefail
LLAMA="$1"; MODEL="$2"; THREADS="${3:-2}"; CONCS="${4:-1 8 32}"; IN="${5:-128}"; OUTLEN="${6:-64}"
QB="$(cd "$(dirname "$0")/.." && pwd)/build/qwenbox"
OUT_DIR="${OUT_DIR:-/tmp}"
PORT=18931

wait_ready() {  # url pid
  for _ in $(seq 1 600); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

run_load() {  # name concurrency
  local c=$2 n
  n=$((c * 8 > 8 ? c * 8 : 8))
  n=$((n > 64 ? 64 : n))
  "$QB" loadtest --url "http://127.0.0.1:$PORT" --concurrency "$c" --num-requests "$n" --input-len "$IN" \
    --output-len "$OUTLEN" --ignore-eos --seed "$c" --warmup 1 --json > "$OUT_DIR/serve_compare_$1_c$c.json"
  python3 - "$OUT_DIR/serve_compare_$1_c$c.json" "$1" "$c" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print("%-9s c=%-3s done %3d failed %2d  output %7.1f tok/s  TTFT p50 %7.0f p99 %7.0f ms  E2E p50 %7.0f p99 %7.0f ms  TPOT p50 %5.0f ms"
      % (sys.argv[2], sys.argv[3], j["completed"], j["failed"], j["output_tok_s"], j["ttft_ms"]["p50"],
         j["ttft_ms"]["p99"], j["e2e_ms"]["p50"], j["e2e_ms"]["p99"], j["tpot_ms"]["p50"]), flush=True)
PY
}

# Each concurrency gets freshly started servers sized for it: llama-server's slots share one
# unified KV cache whose used span every decode step attends over, so spare slots would cost it
# speed; qwenbox's paged cache does not care, but is restarted the same way.
for c in $CONCS; do
  "$QB" --log-level warn serve --model "$MODEL" --port $PORT --threads "$THREADS" --max-num-seqs "$c" &
  pid=$!
  wait_ready "http://127.0.0.1:$PORT/ready" $pid || { echo "qwenbox did not start" >&2; exit 1; }
  run_load qwenbox "$c"
  kill -TERM $pid; wait $pid || true

  "$LLAMA/bin/llama-server" -m "$MODEL" --port $PORT -t "$THREADS" -np "$c" -c $((c * (IN + OUTLEN + 64))) \
    --log-disable >/dev/null 2>&1 &
  pid=$!
  wait_ready "http://127.0.0.1:$PORT/health" $pid || { echo "llama-server did not start" >&2; exit 1; }
  run_load llama.cpp "$c"
  kill -TERM $pid; wait $pid || true
done
