// Checks deploy/compose/compose*.yaml: every qwenbox service has the limits, /dev/shm, GPUs and
// serve flags of the file's `# qwenbox-plan:` line (re-run with the given qwenbox binary), runs
// with init, a read-only root, no swap and a stop grace period longer than the drain; the
// instances' cpusets and GPUs do not overlap; nginx's upstream file lists exactly the instances.
// usage: node compose_check.mjs REPO_ROOT QWENBOX_BINARY
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import path from "node:path";
import YAML from "yaml";

const [root, qwenbox] = process.argv.slice(2);
const dir = path.join(root, "deploy/compose");
let failures = 0;
const fail = (where, msg) => { failures++; console.error(`FAIL ${where}: ${msg}`); };
const bytes = (s) => { const m = String(s).match(/^(\d+)([kmg]?)$/i); return m ? Number(m[1]) * { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase()] : NaN; };
const seconds = (s) => { const m = String(s).match(/^(\d+)s$/); return m ? Number(m[1]) : NaN; };
const cpus = (set) => set.split(",").flatMap((r) => { const [a, b = a] = r.split("-").map(Number); return Array.from({ length: b - a + 1 }, (_, i) => a + i); });

for (const file of readdirSync(dir).filter((f) => /^compose.*\.ya?ml$/.test(f)).sort()) {
  const where = `compose/${file}`;
  const src = readFileSync(path.join(dir, file), "utf8");
  const doc = YAML.parse(src, { merge: true });
  const line = src.match(/^# qwenbox-plan: (.*)$/m);
  if (!line) { fail(where, "no '# qwenbox-plan:' line"); continue; }
  const plan = YAML.parse(execFileSync(qwenbox, ["plan", ...line[1].trim().split(/\s+/), "--format", "compose"], { encoding: "utf8" })).services.qwenbox;
  const planLimits = plan.deploy.resources.limits;
  const planGpus = plan.deploy.resources.reservations?.devices?.[0]?.count ?? 0;
  const planServe = plan.command;
  const instances = Object.entries(doc.services).filter(([name]) => name.startsWith("qwenbox"));
  if (!instances.length) fail(where, "no qwenbox service");
  const usedCpus = new Set(), usedGpus = new Set();
  for (const [name, s] of instances) {
    const w = `${where} ${name}`;
    const lim = s.deploy?.resources?.limits ?? {};
    if (bytes(lim.memory) !== bytes(planLimits.memory)) fail(w, `memory ${lim.memory}, plan says ${planLimits.memory}`);
    if (Number(lim.cpus) !== Number(planLimits.cpus)) fail(w, `cpus ${lim.cpus}, plan says ${planLimits.cpus}`);
    if (bytes(s.shm_size) !== bytes(plan.shm_size)) fail(w, `shm_size ${s.shm_size}, plan says ${plan.shm_size}`);
    if (bytes(s.memswap_limit) !== bytes(lim.memory)) fail(w, "memswap_limit must equal the memory limit (no swap)");
    const dev = s.deploy?.resources?.reservations?.devices?.[0];
    const ids = dev?.device_ids ?? [];
    const gpus = dev ? (dev.count ?? ids.length) : 0;
    if (gpus !== planGpus) fail(w, `${gpus} GPUs, plan says ${planGpus}`);
    for (const g of ids) { if (usedGpus.has(g)) fail(w, `GPU ${g} given twice`); usedGpus.add(g); }
    if (s.cpuset) {
      const set = cpus(s.cpuset);
      if (set.length !== Number(lim.cpus)) fail(w, `cpuset ${s.cpuset} has ${set.length} CPUs, limit ${lim.cpus}`);
      for (const c of set) { if (usedCpus.has(c)) fail(w, `CPU ${c} pinned twice`); usedCpus.add(c); }
    } else if (instances.length > 1) fail(w, "instances sharing a host must be pinned (cpuset)");
    for (let i = 1; i < planServe.length; i += 2) {
      if (planServe[i] === "--model") continue;
      const j = s.command.indexOf(planServe[i]);
      if (j < 0 || s.command[j + 1] !== planServe[i + 1]) fail(w, `serve ${planServe[i]} ${planServe[i + 1]} (from plan) missing`);
    }
    if (s.command[0] !== "serve") fail(w, "command must start with serve (the image's entrypoint runs qwenbox)");
    const di = s.command.indexOf("--drain-timeout");
    const drain = di >= 0 ? Number(s.command[di + 1]) : 30;
    if (!(seconds(s.stop_grace_period) > drain)) fail(w, `stop_grace_period ${s.stop_grace_period} must exceed the ${drain} s drain`);
    if (s.init !== true) fail(w, "init: true");
    if (s.read_only !== true) fail(w, "read_only: true");
    if (!JSON.stringify(s.healthcheck?.test ?? "").includes("/health")) fail(w, "healthcheck on /health");
    if (!s.volumes?.some((v) => String(v).endsWith(":/models:ro"))) fail(w, "models mounted read-only at /models");
  }
  const nginx = doc.services.nginx;
  if (instances.length > 1 && !nginx) fail(where, "several instances and no nginx front end");
  if (nginx) {
    const up = nginx.volumes.find((v) => v.includes("/etc/nginx/qwenbox-upstream.conf"))?.split(":")[0];
    const upFile = up && path.join(dir, up);
    if (!upFile || !existsSync(upFile)) { fail(where, `nginx upstream file ${up} missing`); continue; }
    const servers = [...readFileSync(upFile, "utf8").matchAll(/^\s*server\s+([^:\s]+):8080/gm)].map((m) => m[1]).sort();
    const names = instances.map(([n]) => n).sort();
    if (JSON.stringify(servers) !== JSON.stringify(names)) fail(where, `${up} lists ${servers}, the file has ${names}`);
    if (!nginx.volumes.some((v) => v.startsWith("./nginx/nginx.conf:"))) fail(where, "nginx.conf not mounted");
  }
  console.log(`${where}: ${instances.length} instance(s) match the plan${nginx ? ", nginx upstreams match" : ""}`);
}
if (failures) { console.error(`${failures} failure(s)`); process.exit(1); }
