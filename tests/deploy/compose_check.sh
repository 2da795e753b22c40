#!/usr/bin/env bash
# ctest deploy_compose: compose_check.mjs (the layouts against `qwenbox plan`), then `nginx -t`
# on the front end's config for each upstream file when an nginx binary is on the PATH (the
# instance names are pointed at 127.0.0.1, nginx resolves them at load), and
# `docker compose config` when docker is there. Exit 77 without node or the npm packages.
#   tests/deploy/compose_check.sh QWENBOX_BINARY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v node >/dev/null || { echo "SKIP: node not found"; exit 77; }
if [ ! -d "$here/node_modules/yaml" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) ||
    { echo "SKIP: npm ci failed in tests/deploy (offline?)"; exit 77; }
fi
node "$here/compose_check.mjs" "$root" "$1"

nginx_bin=$(command -v nginx || command -v /usr/sbin/nginx || true)
if [ -n "$nginx_bin" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  for up in "$root"/deploy/compose/nginx/upstream-*.conf; do
    sed 's/server qwenbox-[0-9]*:/server 127.0.0.1:/' "$up" > "$tmp/qwenbox-upstream.conf"
    sed "s#/etc/nginx/qwenbox-upstream.conf#$tmp/qwenbox-upstream.conf#" "$root/deploy/compose/nginx/nginx.conf" > "$tmp/nginx.conf"
    "$nginx_bin" -t -q -p "$tmp" -c "$tmp/nginx.conf" -e /dev/stderr ||
      { echo "FAIL: nginx -t with $(basename "$up")"; exit 1; }
  done
  echo "nginx -t: OK for $(ls "$root"/deploy/compose/nginx/upstream-*.conf | wc -l) layouts"
else
  echo "note: no nginx binary, nginx.conf not checked"
fi
if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
  for f in "$root"/deploy/compose/compose*.yaml; do docker compose -f "$f" config -q; done
  echo "docker compose config: OK"
fi
