#!/usr/bin/env bash
# Installs the Debian packages qwenbox needs to build and run its tests. Idempotent, and silent
# when everything is already installed. Uses sudo when not run as root.
set -euo pipefail

PACKAGES=(
  cmake g++ make            # toolchain (CMake >= 3.25, C++20)
  libgtest-dev              # GoogleTest
  libsimde-dev              # portable AVX-512, to test the AVX-512 kernels on any x86-64 CPU
  nlohmann-json3-dev        # JSON
  libcli11-dev              # command line
  libspdlog-dev libfmt-dev  # logging and formatting
  libutf8proc-dev           # Unicode categories and NFC (tokenizer)
  libsimdjson-dev           # fast JSON for the 7 MB tokenizer.json
  pkg-config                # finds utf8proc and cpp-httplib
  libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev  # HTTP server (and what its build needs)
  prometheus                # promtool, to check /metrics in the tests
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
