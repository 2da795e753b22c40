// Renders every kustomization under deploy/k8s with `kubectl kustomize` and checks the objects:
// (1) against the Kubernetes and Prometheus Operator schemas bundled in kubernetes-models
//     (types and required fields; offline), any apiVersion/kind without a schema is an error;
// (2) the rules docs/DEPLOY.md promises (requests = limits, probes, drain > grace, security
//     context, /dev/shm, selectors that select, quota that admits the HPA's maximum);
// (3) with a qwenbox binary: each overlay's sizes and serve flags equal its `qwenbox-plan:` line.
// usage: node k8s_validate.mjs REPO_ROOT [QWENBOX_BINARY]
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import YAML from "yaml";

const [root, qwenbox] = process.argv.slice(2);
const k8s = path.join(root, "deploy/k8s");
let failures = 0;
const fail = (where, msg) => { failures++; console.error(`FAIL ${where}: ${msg}`); };

const render = (dir) => YAML.parseAllDocuments(execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }))
  .map((d) => d.toJS()).filter(Boolean);

async function schemaCheck(where, obj) {
  const [group, version] = obj.apiVersion.includes("/") ? obj.apiVersion.split("/") : ["", obj.apiVersion];
  const mod = group === "monitoring.coreos.com" ? `@kubernetes-models/prometheus-operator/${group}/${version}`
    : group === "" ? `kubernetes-models/${version}` : `kubernetes-models/${group}/${version}`;
  let Cls;
  try { Cls = (await import(mod))[obj.kind]; } catch { Cls = undefined; }
  if (!Cls) return fail(where, `no schema for ${obj.apiVersion} ${obj.kind}`);
  try { new Cls(obj).validate(); } catch (e) { fail(`${where} ${obj.kind}/${obj.metadata?.name}`, e.message); }
}

// Kubernetes quantities to numbers (cores, bytes, counts).
function qty(v) {
  if (v === undefined) return 0;
  const m = String(v).match(/^([0-9.]+)(m|k|Ki|Mi|Gi|Ti|M|G|T)?$/);
  if (!m) throw new Error(`bad quantity ${v}`);
  const mult = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return Number(m[1]) * (m[2] ? mult[m[2]] : 1);
}
const matches = (sel, labels) => sel && Object.keys(sel).length > 0 &&
  Object.entries(sel).every(([k, v]) => labels?.[k] === v);

function ruleChecks(where, objs) {
  const one = (kind) => objs.filter((o) => o.kind === kind);
  const [dep] = one("Deployment");
  if (!dep) return fail(where, "no Deployment");
  const pod = dep.spec.template;
  const c = pod.spec.containers.find((x) => x.name === "qwenbox");
  if (!c) return fail(where, "no container named qwenbox (the alerts select container=\"qwenbox\")");
  const res = c.resources ?? {};
  for (const k of new Set([...Object.keys(res.requests ?? {}), ...Object.keys(res.limits ?? {})]))
    if (qty(res.requests?.[k]) !== qty(res.limits?.[k])) fail(where, `requests.${k} != limits.${k} (Guaranteed QoS)`);
  if (!res.limits?.cpu || !res.limits?.memory) fail(where, "cpu and memory limits are required");
  if (res.limits?.cpu && !Number.isInteger(qty(res.limits.cpu))) fail(where, "limits.cpu must be whole CPUs");
  const probe = (p, pathWanted, name) => {
    if (p?.httpGet?.path !== pathWanted) fail(where, `${name} must GET ${pathWanted}`);
    else if (!c.ports?.some((x) => x.name === p.httpGet.port || x.containerPort === p.httpGet.port))
      fail(where, `${name} port ${p.httpGet.port} is not a container port`);
  };
  probe(c.startupProbe, "/health", "startupProbe");
  probe(c.readinessProbe, "/ready", "readinessProbe");
  probe(c.livenessProbe, "/health", "livenessProbe");
  const args = c.args ?? [];
  const flag = (f) => { const i = args.indexOf(f); return i >= 0 ? args[i + 1] : undefined; };
  // Every container port is one qwenbox listens on: --port or --probe-port.
  const listening = new Set([flag("--port") ?? "8080", flag("--probe-port")].filter(Boolean).map(Number));
  for (const cp of c.ports ?? [])
    if (!listening.has(cp.containerPort)) fail(where, `container port ${cp.name} (${cp.containerPort}) is neither --port nor --probe-port`);
  const drain = Number(flag("--drain-timeout") ?? 30);
  const preStop = c.lifecycle?.preStop?.exec?.command;
  const preStopSleep = preStop?.[0] === "sleep" ? Number(preStop[1]) : 0;
  if (!preStop) fail(where, "no preStop hook");
  const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
  if (!(grace > drain + preStopSleep)) fail(where, `terminationGracePeriodSeconds ${grace} <= preStop ${preStopSleep} + drain ${drain}`);
  const sc = c.securityContext ?? {}, psc = pod.spec.securityContext ?? {};
  if (!(sc.runAsNonRoot ?? psc.runAsNonRoot)) fail(where, "runAsNonRoot");
  if (sc.readOnlyRootFilesystem !== true) fail(where, "readOnlyRootFilesystem");
  if (sc.allowPrivilegeEscalation !== false) fail(where, "allowPrivilegeEscalation must be false");
  if (!sc.capabilities?.drop?.includes("ALL")) fail(where, "capabilities must drop ALL");
  const vol = (mountPath) => {
    const m = c.volumeMounts?.find((x) => x.mountPath === mountPath);
    return [m, m && pod.spec.volumes?.find((v) => v.name === m.name)];
  };
  const [, shm] = vol("/dev/shm");
  if (shm?.emptyDir?.medium !== "Memory" || !shm.emptyDir.sizeLimit) fail(where, "/dev/shm must be an emptyDir of medium Memory with a sizeLimit");
  const [modelsMount, models] = vol("/models");
  if (!modelsMount?.readOnly || !models) fail(where, "/models must be mounted read-only");
  const pvcName = models?.persistentVolumeClaim?.claimName;
  if (pvcName && !one("PersistentVolumeClaim").some((p) => p.metadata.name === pvcName))
    fail(where, `claim ${pvcName} is not in the output`);
  // Selectors must select the pods (a selector the labels transformer missed selects nothing or all).
  const labels = pod.metadata?.labels;
  if (!matches(dep.spec.selector?.matchLabels, labels)) fail(where, "Deployment selector");
  for (const s of one("Service")) if (!matches(s.spec.selector, labels)) fail(where, `Service ${s.metadata.name} selector`);
  for (const p of one("PodDisruptionBudget")) if (!matches(p.spec.selector?.matchLabels, labels)) fail(where, "PDB selector");
  for (const p of one("PodMonitor")) {
    if (!matches(p.spec.selector?.matchLabels, labels)) fail(where, "PodMonitor selector");
    for (const e of p.spec.podMetricsEndpoints ?? []) if (!c.ports?.some((x) => x.name === e.port)) fail(where, `PodMonitor port ${e.port}`);
  }
  for (const m of one("ServiceMonitor")) {
    const svc = one("Service").find((s) => matches(m.spec.selector?.matchLabels, s.metadata.labels));
    if (!svc) fail(where, "ServiceMonitor selects no Service");
    for (const e of m.spec.endpoints ?? []) if (svc && !svc.spec.ports.some((p) => p.name === e.port)) fail(where, `ServiceMonitor port ${e.port}`);
  }
  if (one("PodMonitor").length + one("ServiceMonitor").length !== 1) fail(where, "exactly one PodMonitor or ServiceMonitor");
  // The HPA's maximum, plus a rolling update's surge, must fit the namespace's quota and limits.
  const [hpa] = one("HorizontalPodAutoscaler");
  if (!hpa || hpa.spec.scaleTargetRef.name !== dep.metadata.name) return fail(where, "HPA must target the Deployment");
  const m = hpa.spec.metrics?.[0];
  if (m?.type !== "Pods" || m.pods.metric.name !== "qwenbox_requests_waiting") fail(where, "HPA must scale on qwenbox_requests_waiting");
  const surge = dep.spec.strategy?.rollingUpdate?.maxSurge ?? 1;
  const pods = Math.max(hpa.spec.maxReplicas, dep.spec.replicas ?? 1) + qty(surge);
  for (const q of one("ResourceQuota")) {
    const hard = q.spec.hard;
    const need = { pods, "requests.cpu": pods * qty(res.requests?.cpu), "limits.cpu": pods * qty(res.limits?.cpu),
      "requests.memory": pods * qty(res.requests?.memory), "limits.memory": pods * qty(res.limits?.memory),
      "requests.nvidia.com/gpu": pods * qty(res.requests?.["nvidia.com/gpu"]) };
    for (const [k, v] of Object.entries(need))
      if (hard[k] !== undefined && qty(hard[k]) + 1e-9 < v) fail(where, `quota ${k}=${hard[k]} < ${v} for ${pods} pods`);
  }
  for (const lr of one("LimitRange")) for (const l of lr.spec.limits.filter((x) => x.type === "Container"))
    for (const [k, v] of Object.entries(l.max ?? {}))
      if (qty(res.limits?.[k]) > qty(v)) fail(where, `LimitRange max ${k}=${v} < the container's ${res.limits[k]}`);
  return c;
}

// The overlay's sizes and flags against `qwenbox plan` with the arguments its comment records.
function planCheck(where, dir, objs) {
  const line = readFileSync(path.join(dir, "kustomization.yaml"), "utf8").match(/^# qwenbox-plan: (.*)$/m);
  if (!line) return fail(where, "no '# qwenbox-plan:' line");
  const args = line[1].trim().split(/\s+/);
  const planK8s = YAML.parse(execFileSync(qwenbox, ["plan", ...args, "--format", "k8s"], { encoding: "utf8" }));
  const plan = JSON.parse(execFileSync(qwenbox, ["plan", ...args, "--format", "json"], { encoding: "utf8" }));
  if (!plan.fits) fail(where, `plan says it does not fit: ${plan.reasons}`);
  const dep = objs.find((o) => o.kind === "Deployment");
  const c = dep.spec.template.spec.containers.find((x) => x.name === "qwenbox");
  for (const side of ["requests", "limits"]) for (const [k, v] of Object.entries(planK8s.resources[side]))
    if (qty(c.resources[side]?.[k]) !== qty(v)) fail(where, `${side}.${k} is ${c.resources[side]?.[k]}, plan says ${v}`);
  const shmVol = dep.spec.template.spec.volumes.find((v) => v.name === c.volumeMounts.find((m) => m.mountPath === "/dev/shm").name);
  // Capabilities the plan asks for (SYS_NICE for CPU tensor-parallel ranks) must be added.
  for (const cap of planK8s.securityContext?.capabilities?.add ?? [])
    if (!c.securityContext?.capabilities?.add?.includes(cap)) fail(where, `plan adds capability ${cap}; the container does not`);
  const planShm = planK8s.volumes?.[0]?.emptyDir?.sizeLimit;
  if (planShm && qty(shmVol.emptyDir.sizeLimit) !== qty(planShm)) fail(where, `/dev/shm sizeLimit ${shmVol.emptyDir.sizeLimit}, plan says ${planShm}`);
  // serve flags after the image name in plan's docker command, except the models' paths.
  const docker = plan.recommended.docker.split(" ");
  const serve = docker.slice(docker.indexOf("serve"));
  for (let i = 1; i < serve.length; i += 2) {
    if (serve[i] === "--model" || serve[i] === "--draft-model") continue;
    const j = c.args.indexOf(serve[i]);
    if (j < 0 || c.args[j + 1] !== serve[i + 1]) fail(where, `serve ${serve[i]} ${serve[i + 1]} (from plan) missing from args`);
  }
}

const dirs = [path.join(k8s, "base"), ...readdirSync(path.join(k8s, "overlays")).map((d) => path.join(k8s, "overlays", d))];
// Components cannot render alone: render each on top of the base.
const tmp = mkdtempSync(path.join(tmpdir(), "qb-k8s-"));
const componentDirs = existsSync(path.join(k8s, "components")) ? readdirSync(path.join(k8s, "components")) : [];
for (const comp of componentDirs) {
  const d = path.join(tmp, comp);
  execFileSync("mkdir", ["-p", d]);
  writeFileSync(path.join(d, "kustomization.yaml"),
    `resources: [${path.relative(d, path.join(k8s, "base"))}]\n` +
    `components: [${path.relative(d, path.join(k8s, "components", comp))}]\n`);
  dirs.push(d);
}
try {
  for (const dir of dirs) {
    const where = path.relative(root, dir).startsWith("..") ? `base+component ${path.basename(dir)}` : path.relative(root, dir);
    let objs;
    try { objs = render(dir); } catch (e) { fail(where, `kubectl kustomize: ${e.stderr || e.message}`); continue; }
    for (const o of objs) await schemaCheck(where, o);
    ruleChecks(where, objs);
    if (qwenbox && dir.includes("/overlays/")) planCheck(where, dir, objs);
    console.log(`${where}: ${objs.length} objects (${objs.map((o) => o.kind).join(", ")})`);
  }
  // The adapter's rules: a ConfigMap whose config.yaml has the rule the HPA's metric needs.
  const adapter = render(path.join(k8s, "prometheus-adapter"));
  for (const o of adapter) await schemaCheck("prometheus-adapter", o);
  const rules = YAML.parse(adapter.find((o) => o.kind === "ConfigMap")?.data?.["config.yaml"] ?? "{}").rules ?? [];
  if (!rules.some((r) => r.seriesQuery?.startsWith("qwenbox_requests_waiting") && r.resources?.overrides?.pod && r.metricsQuery))
    fail("prometheus-adapter", "no rule serving qwenbox_requests_waiting per pod");
  console.log(`prometheus-adapter: ${rules.length} rules`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
if (failures) { console.error(`${failures} failure(s)`); process.exit(1); }
console.log("all manifests valid");
