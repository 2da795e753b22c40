#!/usr/bin/env bash
# The one script to run on the lent GPU machine, from the repository root, with .devcarry/
# carried (made here by scripts/cuda-device-pack.sh: that machine lacks our Debian dev packages,
# so nothing is built there). Steps, each under a timeout (all together < 7 minutes on an H100):
#   1. nvidia-smi (read-only: no GPU setting is changed)
#   2. the CUDA tests (gtest; log in $OUT/cuda_tests.log, logits dumped for step 5)
#   3. the decode benchmark (table on stdout, $OUT/bench.json: bf16, int4 in the CUDA-core and
#      in the tensor-core layout, a per-kernel-class profile of a decode step, GEMV/cuBLAS per shape)
#   4. qwenbox-cuda serve on micro-qwen2 under the load tester
#   5. transformers: Qwen2ForCausalLM logits on the same fixtures vs ours, and generate()
#      throughput of a random 7B-shape model at batch 1, 8, 32 ($OUT/hf.json); skipped with
#      QB_DEVICE_QUICK=1 (a rerun that needs only the tests and the benchmark)
# then a summary.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/qb-cuda-out}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A status

echo "== nvidia-smi"
timeout 20 nvidia-smi || echo "(nvidia-smi failed)"

if [[ ! -f .devcarry/carry.tar.xz ]]; then
  echo "error: .devcarry/carry.tar.xz is missing: run scripts/cuda-device-pack.sh on the build machine" >&2
  exit 1
fi
tar -C "$work" -xJf .devcarry/carry.tar.xz ||
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' .devcarry/carry.tar.xz "$work"

# cuBLAS 13 from the CUDA toolkit or from PyTorch's nvidia-* wheels, whichever has it.
cublas_dirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda-13*/lib64 /usr/local/cuda-13*/targets/*/lib; do
  [[ -e $d/libcublas.so.13 ]] && cublas_dirs+=":$d"
done
py_dirs=$(timeout 30 python3 - <<'PY' 2>/dev/null
import glob, site, os
for sp in site.getsitepackages():
    for lib in glob.glob(os.path.join(sp, "nvidia", "**", "libcublas.so.13*"), recursive=True):
        print(os.path.dirname(lib))
PY
)
for d in $py_dirs; do cublas_dirs+=":$d"; done
export LD_LIBRARY_PATH="$work/lib${cublas_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The system libstdc++ if it is new enough for our binaries (built with GCC 12), else ours.
if ! timeout 30 "$work/bin/cuda_test" --gtest_list_tests > /dev/null 2>&1; then
  echo "(using the carried libstdc++/libgcc_s)"
  export LD_LIBRARY_PATH="$work/lib-cxx:$LD_LIBRARY_PATH"
fi
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$work/bin/cuda_test" | grep -E "not found|cublas" || true

export QB_TEST_DATA_DIR="$PWD/tests/data"
export QB_SHARED_TESTDATA_DIR="$PWD/../shared/testdata"
export QB_CUDA_LOGITS_DUMP="$work/logits"
mkdir -p "$QB_CUDA_LOGITS_DUMP"

echo "== CUDA tests"
timeout 100 "$work/bin/cuda_test" --gtest_color=no 2>&1 | tee "$OUT/cuda_tests.log"
rc=${PIPESTATUS[0]}
status[tests]=$([[ $rc == 0 ]] && echo "pass" || echo "FAIL (rc $rc)")
# Again with programmatic dependent launch (every kernel may start before its predecessor ends).
QB_CUDA_PDL=1 timeout 100 "$work/bin/cuda_test" --gtest_color=no > "$OUT/cuda_tests_pdl.log" 2>&1
rc=$?
status[tests_pdl]=$([[ $rc == 0 ]] && echo "pass" || echo "FAIL (rc $rc)")
grep -E "^\[  (FAILED|PASSED) " "$OUT/cuda_tests_pdl.log" | sed 's/^/pdl: /' | head -20

echo "== decode benchmark"
timeout 220 "$work/bin/cuda_decode_bench" --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
rc=${PIPESTATUS[0]}
status[bench]=$([[ $rc == 0 ]] && echo "ok" || echo "FAIL (rc $rc)")
# The same with programmatic dependent launch, in a process of its own (a driver that cannot
# capture such launches in a graph fails this run only).
echo "== decode benchmark with QB_CUDA_PDL=1"
QB_CUDA_PDL=1 timeout 150 "$work/bin/cuda_decode_bench" --quick --formats bf16,int4tc --json "$OUT/bench_pdl.json" \
  > "$OUT/bench_pdl.log" 2>&1
rc=$?
status[bench_pdl]=$([[ $rc == 0 ]] && echo "ok" || echo "FAIL (rc $rc)")

# The tensor-core int4 kernels' machine code (1-8 tokens: the default variant and the lean
# kernel's), when the machine has cuobjdump: instruction counts per k-step say what bounds them.
cuobjdump=$(command -v cuobjdump || ls /usr/local/cuda*/bin/cuobjdump 2>/dev/null | head -1)
if [[ -n $cuobjdump ]]; then
  kernels='Int4MmaKernelILi1ELi1ELi2ELi3E|Int4MmaLeanKernel'
  "$cuobjdump" -sass -arch sm_90 "$work/bin/cuda_decode_bench" 2>/dev/null |
    awk -v k="$kernels" '/Function : / {on = ($0 ~ k)} on' > "$OUT/int4_mma_sass.txt"
  echo "int4 mma kernel SASS: $(wc -l < "$OUT/int4_mma_sass.txt") lines in \$OUT/int4_mma_sass.txt"
  python3 scripts/cuda-sass-loops.py "$OUT/int4_mma_sass.txt" --match Int4Mma 2>&1 | tee "$OUT/int4_mma_loops.txt" || true
fi

echo "== serve --device cuda (micro-qwen2) + loadtest"
"$work/bin/qwenbox-cuda" serve --device cuda --model tests/data/micro-qwen2 --port 28417 --gpu-memory-utilization 0.1 \
  --max-num-seqs 16 > "$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 1 100); do
  curl -sf localhost:28417/ready > /dev/null 2>&1 && break
  kill -0 $serve_pid 2>/dev/null || break
  sleep 0.3
done
timeout 60 "$work/bin/qwenbox-cuda" loadtest --url http://127.0.0.1:28417 --concurrency 8 --num-requests 48 --input-len 64 \
  --output-len 64 --ignore-eos --out "$OUT/serve_loadtest.json" 2>&1 | tee "$OUT/serve.log"
rc=${PIPESTATUS[0]}
status[serve]=$([[ $rc == 0 ]] && echo "ok" || echo "FAIL (rc $rc)")
curl -s localhost:28417/metrics | grep -E "^qwenbox_(kv_cache_capacity_blocks|generated_tokens_total|requests_total)" | head -5
kill -TERM $serve_pid 2>/dev/null; wait $serve_pid
echo "serve exit status: $?"
grep -E "ready:|memory:|error" "$work/serve.log" | head -5

echo "== transformers"
status[transformers]="skipped (QB_DEVICE_QUICK)"
[[ ${QB_DEVICE_QUICK:-0} == 1 ]] || timeout 130 python3 scripts/cuda_hf_check.py --data tests/data --logits "$QB_CUDA_LOGITS_DUMP" --json "$OUT/hf.json" 2>&1 |
  tee "$OUT/hf.log"
rc=${PIPESTATUS[0]}
[[ ${QB_DEVICE_QUICK:-0} == 1 ]] || status[transformers]=$([[ $rc == 0 ]] && echo "ok" || echo "FAIL (rc $rc)")

echo
echo "== summary"
printf '%-14s %s\n' "tests" "${status[tests]}" "tests (pdl)" "${status[tests_pdl]}" "benchmark" "${status[bench]}" \
  "bench (pdl)" "${status[bench_pdl]}" "serve" "${status[serve]}" "transformers" "${status[transformers]}"
grep -E "^\[  (PASSED|FAILED) +\]|tests? from .* ran|^\[  SKIPPED \] [0-9]+ tests" "$OUT/cuda_tests.log" | head -40
grep -E "^\[ (micro|tiny|paged|attention|int4|bf16|f16|gpu|cuda)" "$OUT/cuda_tests.log" | head -40
grep -E "HBM|decode b=1 graphs|decode b=4 graphs|decode b=8 graphs|decode b=32 graphs|prefill|/ BF16 decode|profile b=|linear .* n= ?1:|int4tc linear .* n=(8|16|32):|1-tile|variant|lean|b=16 graphs|attention b=" "$OUT/bench.log"
grep -E "^(bf16|int4tc) +decode b=(1|8) graphs " "$OUT/bench_pdl.log" | sed 's/^/pdl: /'
grep -E "^(logits|hf generate|SKIP)" "$OUT/hf.log"
grep -E "output tokens/s|TTFT|TPOT|failed" "$OUT/serve.log" | head -6
exit 0
