#!/usr/bin/env bash
# ctest deploy_monitoring: promtool check config / check rules / test rules over deploy/monitoring;
# every PromQL expression of the Grafana dashboard and of the adapter rules, with Grafana's
# variables filled in, through `promtool check rules`; and, given the qwenbox binary, every
# qwenbox_* name those use must be one a live server exports. Exit 77 without promtool or jq.
#   tests/deploy/monitoring_check.sh [QWENBOX_BINARY]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mon=$root/deploy/monitoring
for tool in promtool jq; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done
tmp=$(mktemp -d); server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

promtool check config "$mon/prometheus.yml"
promtool check rules "$mon"/rules/*.yml
for t in "$mon"/tests/*.test.yml; do promtool test rules "$t"; done

# Every alert must have a unit test that expects it to fire.
for alert in $(grep -ho 'alert: [A-Za-z0-9]*' "$mon"/rules/*.yml | cut -d' ' -f2); do
  grep -q "alertname: $alert\$" "$mon"/tests/*.test.yml || { echo "FAIL: alert $alert has no promtool test"; exit 1; }
done

# Dashboard: valid JSON, unique panel ids, and each query as a recording rule for promtool.
dash=$mon/grafana/qwenbox-dashboard.json
jq -e '[.. | objects | select(has("gridPos")) | .id] | (length == (unique | length))' "$dash" >/dev/null ||
  { echo "FAIL: duplicate panel ids in $dash"; exit 1; }
fill() { sed -e 's/\$__rate_interval/5m/g; s/\$__interval/1m/g; s/\$__range/1h/g' \
             -e 's/\$\(job\|instance\|namespace\)\b/.*/g; s/\${\(job\|instance\|namespace\)}/.*/g'; }
jq -r '.. | objects | select(has("expr")) | .expr' "$dash" | fill > "$tmp/exprs"
# prometheus-adapter templates: <<.Series>>{<<.LabelMatchers>>} -> a concrete selector.
sed -n "s/^ *metricsQuery: '\(.*\)'$/\1/p" "$root/deploy/k8s/prometheus-adapter/config.yaml" |
  sed -e 's/<<\.Series>>/qwenbox_requests_waiting/; s/<<\.LabelMatchers>>/namespace="qwenbox",pod="p"/; s/<<\.GroupBy>>/pod/' >> "$tmp/exprs"
n=$(wc -l < "$tmp/exprs")
[ "$n" -ge 20 ] || { echo "FAIL: only $n expressions found in the dashboard and adapter rules"; exit 1; }
{ echo "groups:"; echo "  - name: dashboard"; echo "    rules:"
  i=0; while IFS= read -r e; do i=$((i+1)); printf '      - record: dashboard:expr_%d\n        expr: %s\n' "$i" "$(jq -Rn --arg e "$e" '$e')"; done < "$tmp/exprs"
} > "$tmp/dashboard-rules.yml"
promtool check rules "$tmp/dashboard-rules.yml"
echo "dashboard and adapter: $n PromQL expressions parse"

# Metric names: everything qwenbox_* that the rules, dashboard and adapter read must exist.
if [ $# -ge 1 ] && [ -x "$1" ] && command -v curl >/dev/null; then
  port=$((20000 + RANDOM % 20000))
  "$1" serve --port "$port" --max-num-seqs 2 --max-queue 2 --kv-cache-bytes 64m >"$tmp/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -fs "localhost:$port/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fs "localhost:$port/metrics" > "$tmp/metrics" || { echo "FAIL: no /metrics"; cat "$tmp/serve.log"; exit 1; }
  # Sample names, and the histograms' own names from their TYPE lines.
  sed -n 's/^\(# TYPE \)\{0,1\}\(qwenbox_[a-z_]*\).*/\2/p' "$tmp/metrics" | sort -u > "$tmp/exported"
  cat "$mon"/rules/*.yml "$tmp/exprs" | grep -o 'qwenbox_[a-z_]*' | grep -v '^qwenbox_$' | sort -u > "$tmp/used"
  missing=$(comm -23 "$tmp/used" "$tmp/exported")
  [ -z "$missing" ] || { echo "FAIL: not exported by qwenbox: $missing"; exit 1; }
  echo "metric names: $(wc -l < "$tmp/used") used, all exported"
fi
echo "monitoring: OK"
