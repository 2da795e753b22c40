#!/usr/bin/env bash
# The one script to run on the lent GPU machine, from the repository root, with .devcarry/
# carried (made here by scripts/cuda-device-pack.sh: that machine lacks our Debian dev packages,
# so nothing is built there). Steps, each under a timeout (all together < 6 minutes on an H100):
#   1. nvidia-smi (read-only: no GPU setting is changed)
#   2. the CUDA tests (gtest; log in $OUT/cuda_tests.log, logits dumped for step 4)
#   3. the decode benchmark (table on stdout, $OUT/bench.json)
#   4. transformers: Qwen2ForCausalLM logits on the same fixtures vs ours, and generate()
#      throughput of a random 7B-shape model at batch 1, 8, 32 ($OUT/hf.json)
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

if [[ ! -f .devcarry/carry.tar.gz ]]; then
  echo "error: .devcarry/carry.tar.gz is missing: run scripts/cuda-device-pack.sh on the build machine" >&2
  exit 1
fi
tar -C "$work" -xzf .devcarry/carry.tar.gz

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

echo "== decode benchmark"
timeout 120 "$work/bin/cuda_decode_bench" --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
rc=${PIPESTATUS[0]}
status[bench]=$([[ $rc == 0 ]] && echo "ok" || echo "FAIL (rc $rc)")

echo "== transformers"
timeout 130 python3 scripts/cuda_hf_check.py --data tests/data --logits "$QB_CUDA_LOGITS_DUMP" --json "$OUT/hf.json" 2>&1 |
  tee "$OUT/hf.log"
rc=${PIPESTATUS[0]}
status[transformers]=$([[ $rc == 0 ]] && echo "ok" || echo "FAIL (rc $rc)")

echo
echo "== summary"
printf '%-14s %s\n' "tests" "${status[tests]}" "benchmark" "${status[bench]}" "transformers" "${status[transformers]}"
grep -E "^\[  (PASSED|FAILED) +\]|tests? from .* ran|^\[  SKIPPED \] [0-9]+ tests" "$OUT/cuda_tests.log" | head -40
grep -E "^\[ (micro|tiny|paged|attention|int4|bf16|f16)" "$OUT/cuda_tests.log" | head -40
grep -E "HBM|decode b=1 graphs|decode b=8 graphs|decode b=32 graphs|prefill|INT4 / BF16" "$OUT/bench.log"
grep -E "^(logits|hf generate|SKIP)" "$OUT/hf.log"
exit 0
