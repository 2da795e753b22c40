#!/usr/bin/env bash
# Builds the CUDA test, the benchmark and qwenbox-cuda here (where the Debian dev packages are)
# and packs them, with the shared libraries they need that a bare GPU machine may lack, into
# .devcarry/ (git-ignored), to be carried to the GPU machine and run by
# scripts/cuda-device-check.sh.
# Left out: glibc, the NVIDIA driver (libcuda) and cuBLAS (libcublas*, hundreds of MB; the GPU
# machine has them with its CUDA toolkit or PyTorch).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-cuda
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DQWENBOX_CUDA=ON -DQWENBOX_WERROR=ON
fi
cmake --build "$build" -j2 --target cuda_test cuda_decode_bench qwenbox-cuda

rm -rf .devcarry
mkdir -p .devcarry/bin .devcarry/lib .devcarry/lib-cxx
cp "$build/tests/cuda_test" "$build/bench/cuda_decode_bench" "$build/qwenbox-cuda" .devcarry/bin/
strip .devcarry/bin/*
for bin in .devcarry/bin/*; do ldd "$bin"; done | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    case "$name" in
      libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | ld-linux* | libcuda.so* | libcublas*) continue ;;
    esac
    # libstdc++/libgcc_s apart: ours needs glibc 2.36, so the check script prefers the GPU
    # machine's own when it is recent enough (GLIBCXX_3.4.30, GCC 12) and uses ours otherwise.
    dir=lib
    case "$name" in libstdc++* | libgcc_s*) dir=lib-cxx ;; esac
    cp -L "$path" ".devcarry/$dir/$name"
    strip --strip-unneeded ".devcarry/$dir/$name" 2>/dev/null || true
  done
# The fat binaries (sm_80/89/90 code) compress about 6x with xz (2.5x with gzip): the whole
# transfer must stay under 64 MiB. The check script unpacks them.
tar -C .devcarry -cJf .devcarry.tmp.tar.xz bin lib lib-cxx
rm -rf .devcarry/bin .devcarry/lib .devcarry/lib-cxx
mv .devcarry.tmp.tar.xz .devcarry/carry.tar.xz
grep -qxF '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude
echo "packed:"
tar -tvJf .devcarry/carry.tar.xz
du -sh .devcarry
