#!/usr/bin/env bash
# Sets up and runs every test: installs dependencies, builds (Release, warnings as errors), runs
# all ctest labels, then builds with AddressSanitizer + UBSan and runs the unit tests there.
#   scripts/test.sh           everything (what CI runs)
#   scripts/test.sh --quick   the Release build and its tests only
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
JOBS="${JOBS:-$(nproc)}"

# The official openai npm client, for the client test (needs the npm registry).
if command -v npm >/dev/null 2>&1; then
  (cd tests/js && npm ci --no-audit --no-fund --silent) ||
    echo "test.sh: npm ci failed: the openai client test will not run" >&2
fi

# The CUDA backend is compiled and linked wherever nvcc is (its tests skip themselves without a
# GPU; scripts/cuda-device-check.sh runs them on one).
cuda_flags=()
nvcc_path=$(command -v nvcc || true)
[ -z "$nvcc_path" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc_path=/usr/local/cuda/bin/nvcc
[ -n "$nvcc_path" ] && cuda_flags=(-DQWENBOX_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc_path")

echo "== Release build and all tests${nvcc_path:+ (with the CUDA backend)}"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQWENBOX_WERROR=ON "${cuda_flags[@]}" >/dev/null
cmake --build build -j "$JOBS"
ctest --test-dir build -j "$JOBS" --output-on-failure

[ "${1:-}" = "--quick" ] && exit 0

echo "== AddressSanitizer + UBSan build, unit tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" -DQWENBOX_SANITIZE=ON \
  -DQWENBOX_WERROR=ON -DQWENBOX_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j "$JOBS"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan -j "$JOBS" -L unit --output-on-failure
