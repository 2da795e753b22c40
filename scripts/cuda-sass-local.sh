#!/usr/bin/env bash
# The SASS of a CUDA source file on a machine without a GPU and without cuobjdump/nvdisasm (the
# CUDA 13 toolkit here ships nvcc and ptxas only): nvcc 13 writes PTX, the PTX is assembled for
# sm_90 by the ptxas of Debian's nvidia-cuda-toolkit 11.8 (its .version line lowered to 7.8: the
# kernels use no newer PTX feature) and disassembled by that toolkit's nvdisasm, then
# scripts/cuda-sass-loops.py counts each loop's instructions. An older ptxas schedules and
# allocates differently from CUDA 13's, so the counts are a guide for comparing two versions of
# a kernel, not the device's exact code (cuda-device-check.sh saves that on a GPU machine).
#
# usage: scripts/cuda-sass-local.sh [--setup] SOURCE.cu [MATCH]   (output in /tmp/qb-sass/)
#   --setup  first fetch Debian's nvidia-cuda-toolkit package (non-free) into /tmp/qb-sass/tk
#            (adds a non-free apt source for bookworm if none is configured; needs root)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=/tmp/qb-sass
tk=$out/tk/usr/bin
mkdir -p "$out"

if [[ ${1:-} == --setup ]]; then
  shift
  if ! apt-cache policy nvidia-cuda-toolkit 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    cat > /etc/apt/sources.list.d/qwenbox-non-free.sources <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    apt-get update -qq
  fi
  (cd "$out" && rm -f nvidia-cuda-toolkit_*.deb && apt-get download -q nvidia-cuda-toolkit &&
    dpkg -x nvidia-cuda-toolkit_*.deb tk)
fi
[[ -x $tk/ptxas && -x $tk/nvdisasm ]] || { echo "no ptxas/nvdisasm in $tk: run with --setup first" >&2; exit 1; }

src=${1:?usage: scripts/cuda-sass-local.sh [--setup] SOURCE.cu [MATCH]}
match=${2:-}
base=$out/$(basename "$src" .cu)
nvcc -O3 -std=c++20 -arch=sm_90 -I "$root/src" --expt-relaxed-constexpr -ptx -o "$base.ptx" "$src"
sed -E 's/^\.version .*/.version 7.8/' "$base.ptx" > "$base.78.ptx"
"$tk/ptxas" -O3 -arch=sm_90 "$base.78.ptx" -o "$base.cubin"
"$tk/nvdisasm" -c "$base.cubin" > "$base.sass"
echo "SASS: $base.sass"
python3 "$root/scripts/cuda-sass-loops.py" "$base.sass" --match "$match"
