#!/usr/bin/env bash
# ctest deploy_k8s: see k8s_validate.mjs. Exit 77 (skipped) without kubectl or node, or when the
# npm packages cannot be installed (offline CI).
#   tests/deploy/k8s_validate.sh [QWENBOX_BINARY]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
for tool in kubectl node; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done
if [ ! -d "$here/node_modules/kubernetes-models" ]; then
  command -v npm >/dev/null || { echo "SKIP: npm not found to install kubernetes-models"; exit 77; }
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) ||
    { echo "SKIP: npm ci failed in tests/deploy (offline?)"; exit 77; }
fi
exec node "$here/k8s_validate.mjs" "$root" "$@"
