#!/usr/bin/env bash
# The deployment kit in real containers (docs/DEPLOY.md), by hand or as ctest deploy_container:
#   1. builds deploy/Containerfile with podman (base image from Debian's mirror if missing);
#   2. runs it with --memory=1g --cpus=1 --read-only --init: `--print-config` must report the
#      1 GiB limit and 1 thread, then it must turn ready, answer a chat completion and /metrics,
#      pass its own HEALTHCHECK, and drain on `podman stop` (a request in flight still answered,
#      exit code 0);
#   3. `podman kube play` of the rendered cpu-small overlay (with a random-weight model of the
#      overlay's shape in its volume) must start a pod whose startup, readiness and liveness
#      probes pass, under the overlay's limits and security context, and stop with exit 0.
# Installs podman & co. from Debian when missing (root). Prints each phase's time.
#   scripts/deploy-test.sh [--keep] [--no-build] [--no-kube]   (--no-build: use $IMAGE as it is)
#   env: IMAGE (localhost/qwenbox:deploy-test), BASE (localhost/bookworm-minbase:latest), JOBS,
#        CONTEXT (the build context: this checkout; e.g. a `git archive HEAD` copy plus deploy/)
# Exit 0 pass, 1 fail, 77 skipped (run by ctest without QWENBOX_CONTAINER_TEST=1, or not root
# and podman missing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

keep=0 kube=1 build=1
for arg in "$@"; do
  case "$arg" in
    --from-ctest) [ "${QWENBOX_CONTAINER_TEST:-0}" = 1 ] ||
      { echo "SKIP: set QWENBOX_CONTAINER_TEST=1 to build and run the image (minutes)"; exit 77; } ;;
    --keep) keep=1 ;;
    --no-kube) kube=0 ;;
    --no-build) build=0 ;;
    *) echo "usage: $0 [--keep] [--no-build] [--no-kube]" >&2; exit 2 ;;
  esac
done
IMAGE=${IMAGE:-localhost/qwenbox:deploy-test}
BASE=${BASE:-localhost/bookworm-minbase:latest}
JOBS=${JOBS:-$(nproc)}
CONTEXT=${CONTEXT:-$root}
run_id=qbdt-$$
t0=$(date +%s) tphase=$t0
phase() { local now; now=$(date +%s); echo "--- $1 (+$((now - tphase)) s, total $((now - t0)) s)"; tphase=$now; }
die() { echo "FAIL: $*" >&2; exit 1; }
# Without systemd (containers, CI) podman logs an error for every health-check timer it cannot
# create; `podman healthcheck run` below runs the check itself, so drop that noise.
podman() { command podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

tmp=$(mktemp -d)
cleanup() {
  if [ "$keep" = 1 ]; then echo "--keep: leaving $run_id-* containers, pods and volumes"
  elif command -v podman >/dev/null; then
    podman rm -f -t 0 "$run_id-run" >/dev/null 2>&1 || true
    for pod in $(podman pod ps -q --filter "name=qwenbox-$run_id-pod" 2>/dev/null); do
      podman pod rm -f -t 0 "$pod" >/dev/null 2>&1 || true
    done
    podman volume rm -f "qwenbox-models-$run_id" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- tools (CONTAINERS.md) ---
pkgs=(podman buildah debootstrap runc fuse-overlayfs containernetworking-plugins catatonit uidmap slirp4netns curl jq)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    command -v podman >/dev/null || { echo "SKIP: podman missing and cannot install ${missing[*]}"; exit 77; }
  else
    echo "deploy-test: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
# Without a system containers.conf, use the two settings this kind of host needs (runc; ulimits
# that fit under the host's) from a private file rather than writing to /etc.
if [ -z "${CONTAINERS_CONF:-}" ] && [ ! -e /etc/containers/containers.conf ]; then
  export CONTAINERS_CONF=$tmp/containers.conf
  printf '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n' > "$CONTAINERS_CONF"
fi

phase "tools ready"

# --- 1. image ---
if [ "$build" = 1 ]; then
  if [ "$BASE" = localhost/bookworm-minbase:latest ]; then deploy/make-base-image.sh "$BASE"; fi
  phase "base image $BASE"
  podman build --format docker -f "$CONTEXT/deploy/Containerfile" --build-arg BASE="$BASE" \
    --build-arg JOBS="$JOBS" -t "$IMAGE" "$CONTEXT" > "$tmp/build.log" 2>&1 ||
    { tail -40 "$tmp/build.log"; die "podman build"; }
fi
phase "image $IMAGE: $(podman image inspect -f '{{.Size}}' "$IMAGE" | numfmt --to=si)B"
[ "$(podman image inspect -f '{{.Config.User}}' "$IMAGE")" = 10001:10001 ] || die "image user is not 10001:10001"
podman image inspect -f '{{json .Config.Healthcheck}}' "$IMAGE" | grep -q /health || die "no HEALTHCHECK on /health"

# --- 2. podman run under limits ---
limits=(--memory=1g --memory-swap=1g --cpus=1 --shm-size=64m --read-only --init)
# --read-only-tmpfs=false: not even /tmp is writable, to show qwenbox needs no writable path.
podman run --rm "${limits[@]}" --read-only-tmpfs=false "$IMAGE" --print-config > "$tmp/config.json" 2> "$tmp/config.err" ||
  { cat "$tmp/config.err"; die "--print-config"; }
jq -e '.memory_limit_bytes == 1073741824 and .threads == 1' "$tmp/config.json" >/dev/null ||
  { cat "$tmp/config.json"; die "--print-config does not report the 1 GiB limit and 1 thread"; }
phase "--print-config: memory_limit_bytes=1073741824 threads=1 kv_cache_bytes=$(jq .kv_cache_bytes "$tmp/config.json")"

port=$((20000 + RANDOM % 20000))
podman run -d --name "$run_id-run" "${limits[@]}" --read-only-tmpfs=false -p "127.0.0.1:$port:8080" \
  "$IMAGE" --drain-timeout 30 >/dev/null
url=http://127.0.0.1:$port
ready=0
for _ in $(seq 240); do
  curl -fs "$url/ready" >/dev/null 2>&1 && { ready=1; break; }
  [ "$(podman inspect -f '{{.State.Running}}' "$run_id-run")" = true ] || break
  sleep 0.5
done
[ "$ready" = 1 ] || { podman logs "$run_id-run" | tail -20; die "not ready within 120 s"; }
phase "podman run: ready"
curl -fsS "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 8}' > "$tmp/chat.json" ||
  die "chat completion"
jq -e '.choices[0].message.content | type == "string"' "$tmp/chat.json" >/dev/null || { cat "$tmp/chat.json"; die "chat reply"; }
curl -fsS "$url/metrics" > "$tmp/metrics" || die "/metrics"
grep -q '^qwenbox_requests_total{code="200"' "$tmp/metrics" || die "/metrics lacks the request"
grep -q '^qwenbox_memory_limit_bytes 1073741824$' "$tmp/metrics" || die "/metrics memory limit is not 1 GiB"
grep -q '^qwenbox_compute_threads 1$' "$tmp/metrics" || die "/metrics threads is not 1"
if command -v promtool >/dev/null; then promtool check metrics < "$tmp/metrics" || die "promtool check metrics"; fi
podman healthcheck run "$run_id-run" || die "the image's HEALTHCHECK fails"
phase "chat completion, /metrics and HEALTHCHECK pass"

# Drain: a request in flight when `podman stop` sends SIGTERM still gets its answer.
curl -sS -o "$tmp/inflight.json" -w '%{http_code}' "$url/v1/completions" -H 'Content-Type: application/json' \
  -d '{"prompt": "Once upon a time", "max_tokens": 400, "temperature": 0}' > "$tmp/inflight.code" &
curl_pid=$!
running=0
for _ in $(seq 50); do
  curl -fs "$url/metrics" | grep -q '^qwenbox_requests_running [1-9]' && { running=1; break; }
  sleep 0.1
done
{ [ "$running" = 1 ] && kill -0 "$curl_pid" 2>/dev/null; } || die "no request in flight to drain"
podman stop -t 45 "$run_id-run" >/dev/null
code=$(podman inspect -f '{{.State.ExitCode}}' "$run_id-run")
wait "$curl_pid" || true
podman logs "$run_id-run" > "$tmp/run.log" 2>&1
[ "$code" = 0 ] || { tail -20 "$tmp/run.log"; die "exit code $code after podman stop"; }
grep -q draining "$tmp/run.log" || die "no drain in the log"
[ "$(cat "$tmp/inflight.code")" = 200 ] || { cat "$tmp/inflight.json"; die "in-flight request got $(cat "$tmp/inflight.code") during the drain"; }
phase "podman stop: drained (in-flight request 200, exit 0)"

# --- 3. podman kube play of the cpu-small overlay ---
if [ "$kube" = 1 ]; then
  command -v kubectl >/dev/null || { echo "SKIP part 3: kubectl not found"; exit 0; }
  # The overlay as is, but this image, names of its own (the PVC becomes a podman volume) and a
  # loopback hostPort: podman 4.3 publishes a containerPort on the host's 0.0.0.0:8080 otherwise.
  mkdir "$tmp/k"
  kport=$((20000 + RANDOM % 20000))
  cat > "$tmp/k/kustomization.yaml" <<EOF
resources: [$(realpath --relative-to="$tmp/k" "$root/deploy/k8s/overlays/cpu-small")]
nameSuffix: -$run_id
images: [{name: localhost/qwenbox, newName: ${IMAGE%:*}, newTag: ${IMAGE##*:}}]
patches:
  - target: {kind: Deployment}
    patch: |-
      - {op: add, path: /spec/template/spec/containers/0/ports/0/hostPort, value: $kport}
      - {op: add, path: /spec/template/spec/containers/0/ports/0/hostIP, value: 127.0.0.1}
      - {op: add, path: /spec/template/spec/containers/0/ports/1/hostPort, value: $((kport + 1))}
      - {op: add, path: /spec/template/spec/containers/0/ports/1/hostIP, value: 127.0.0.1}
EOF
  kubectl kustomize "$tmp/k" > "$tmp/rendered.yaml"
  # Only the Deployment: the rest (quota, HPA, monitors) is the cluster's business, and its PVC is
  # the podman volume of the claim's name, made here.
  awk '/^---$/{if (keep) printf "%s", doc; doc = ""; keep = 0; next}
       {doc = doc $0 "\n"} /^kind: Deployment$/{keep = 1} END{if (keep) printf "%s", doc}' \
    "$tmp/rendered.yaml" > "$tmp/play.yaml"
  model=$(grep -o '/models/[^ ,"]*' "$tmp/play.yaml" | head -1)
  mem_limit=$(awk '/limits:/{l = 1} l && /memory:/{print $2; exit}' "$tmp/play.yaml")
  vol=$(awk '/claimName:/{print $2; exit}' "$tmp/play.yaml")
  [ "$vol" = "qwenbox-models-$run_id" ] || die "unexpected claim $vol"
  # A random-weight model of the overlay's model's shape.
  podman volume create "$vol" >/dev/null
  preset=$(basename "$model" | sed 's/-instruct$//')
  podman run --rm --user 0 -v "$vol:/models" "$IMAGE" make-model --preset "$preset" --dtype bf16 --out "$model" >/dev/null
  phase "kube play: rendered cpu-small, made a random $preset at $model"
  podman kube play "$tmp/play.yaml" > "$tmp/play.out" 2>&1 || { cat "$tmp/play.out"; die "podman kube play"; }
  # The pod is <deployment>-pod (podman 4.3: -pod-0), the container <pod>-<container name>.
  pod=$(podman pod ps --filter "name=qwenbox-$run_id-pod" --format '{{.Name}}' | head -1)
  ctr=$pod-qwenbox
  podman container exists "$ctr" || { cat "$tmp/play.out"; die "no container $ctr"; }
  # The probes of the rendered Deployment, from outside as the kubelet's: startup, then readiness.
  probe() { curl -fsS -o /dev/null "http://127.0.0.1:$((kport + 1))$1"; }  # the probes' port (--probe-port)
  for path in /health /ready; do
    ok=0
    for _ in $(seq 300); do probe "$path" 2>/dev/null && { ok=1; break; }; sleep 1; done
    [ "$ok" = 1 ] || { podman logs "$ctr" | tail -20; die "probe $path never passed"; }
  done
  probe /health || die "liveness /health"
  phase "kube play: startup /health, readiness /ready, liveness /health pass ($(podman logs "$ctr" 2>&1 | grep -o 'ready: .*' | head -1))"
  # The overlay's limits and security context reached the container.
  curl -fsS "http://127.0.0.1:$kport/metrics" > "$tmp/pod-metrics"
  want=$(( ${mem_limit%Mi} * 1024 * 1024 ))
  grep -q "^qwenbox_memory_limit_bytes $want$" "$tmp/pod-metrics" || die "pod memory limit is not $mem_limit"
  [ "$(podman exec "$ctr" id -u)" = 10001 ] || die "pod does not run as 10001"
  [ "$(podman exec "$ctr" cat /proc/1/comm)" = qwenbox ] || die "qwenbox is not PID 1 in the pod"
  ! podman exec "$ctr" sh -c 'echo x > /probe-write' 2>/dev/null || die "root filesystem is writable"
  curl -fsS "http://127.0.0.1:$kport/v1/chat/completions" \
    -d '{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}' | jq -e .choices >/dev/null || die "pod chat"
  phase "kube play: limit $mem_limit, uid 10001, read-only root, chat answered"
  # No init here (as in Kubernetes): qwenbox is PID 1 and must still drain and exit 0.
  podman pod stop -t 45 "$pod" >/dev/null
  code=$(podman inspect -f '{{.State.ExitCode}}' "$ctr")
  [ "$code" = 0 ] || { podman logs "$ctr" | tail -20; die "pod container exit code $code"; }
  phase "kube play: pod stopped, qwenbox as PID 1 drained (exit 0)"
fi
echo "deploy-test: PASS in $(( $(date +%s) - t0 )) s"
