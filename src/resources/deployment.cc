#include "resources/deployment.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace qb {

namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

int64_t RoundUpMiB(int64_t bytes) { return (bytes + kMiB - 1) / kMiB * kMiB; }

// Host memory of an instance: on GPUs only the runtime, tokenizer, connections and a staging
// allowance for loading stay on the host; on CPU everything.
int64_t HostBytes(const DeploymentInput& d) {
  // /dev/shm is memory-backed and charged to the container's limit: NCCL's buffers count.
  if (d.gpus > 0) return d.plan.overhead_bytes + kGiB + (d.gpus > 1 ? RecommendedShmBytes(d.gpus) : 0);
  return d.plan.total_bytes;
}

std::string CpusText(double cpus) { return fmt::format("{:g}", cpus); }

std::string ServeArgs(const DeploymentInput& d, const std::string& sep) {
  std::string s = fmt::format("serve{}--host{}0.0.0.0{}--port{}{}{}--model{}{}", sep, sep, sep, sep, d.port, sep, sep,
                              d.model_arg);
  if (!d.quant.empty()) s += fmt::format("{}--quant{}{}", sep, sep, d.quant);
  s += fmt::format("{}--max-total-tokens{}{}{}--max-num-seqs{}{}", sep, sep, d.context, sep, sep, d.batch);
  if (d.cpu_tensor_parallel > 1) s += fmt::format("{}--tensor-parallel-size{}{}", sep, sep, d.cpu_tensor_parallel);
  if (!d.draft_model_arg.empty()) {
    s += fmt::format("{}--draft-model{}{}", sep, sep, d.draft_model_arg);
    if (!d.draft_quant.empty()) s += fmt::format("{}--draft-quant{}{}", sep, sep, d.draft_quant);
    s += fmt::format("{}--speculative-max-seqs{}{}", sep, sep, d.speculative_max_seqs);
  }
  return s;
}

}  // namespace

int64_t RecommendedMemoryLimit(const MemoryPlan& plan, double margin) {
  return RoundUpMiB(static_cast<int64_t>(std::ceil(static_cast<double>(plan.total_bytes) / (1.0 - margin))));
}

int64_t RecommendedShmBytes(int64_t gpus) { return gpus > 1 ? gpus * kGiB : 64 * kMiB; }

std::string DockerSize(int64_t bytes) {
  const int64_t mib = (bytes + kMiB - 1) / kMiB;
  if (mib % 1024 == 0) return fmt::format("{}g", mib / 1024);
  return fmt::format("{}m", mib);
}

std::string KubeQuantity(int64_t bytes) {
  const int64_t mib = (bytes + kMiB - 1) / kMiB;
  if (mib % 1024 == 0) return fmt::format("{}Gi", mib / 1024);
  return fmt::format("{}Mi", mib);
}

std::string DockerRunCommand(const DeploymentInput& d) {
  const int64_t memory = d.gpus > 0 ? RoundUpMiB(HostBytes(d)) : RecommendedMemoryLimit(d.plan, d.margin);
  // --init forwards SIGTERM to the server, which drains for up to 30 s: the stop timeout must be
  // longer than Docker's 10 s default or the drain is cut short.
  std::string s = fmt::format("docker run --rm --init --stop-timeout {} -p {}:{} --memory={} --memory-swap={}",
                              kStopTimeoutSeconds, d.port, d.port, DockerSize(memory), DockerSize(memory));
  if (d.cpus > 0) s += fmt::format(" --cpus={}", CpusText(d.cpus));
  s += fmt::format(" --shm-size={}", DockerSize(RecommendedShmBytes(d.gpus)));
  if (d.gpus > 0) s += fmt::format(" --gpus={}", d.gpus);
  if (d.cpu_tensor_parallel > 1) s += " --cap-add=SYS_NICE";
  s += fmt::format(" -v /models:/models:ro qwenbox:latest {}", ServeArgs(d, " "));
  return s;
}

std::string ComposeService(const DeploymentInput& d) {
  const int64_t memory = d.gpus > 0 ? RoundUpMiB(HostBytes(d)) : RecommendedMemoryLimit(d.plan, d.margin);
  std::string args;
  const std::string joined = ServeArgs(d, "\n");
  size_t start = 0;
  while (start <= joined.size()) {
    const size_t end = joined.find('\n', start);
    const std::string arg = joined.substr(start, end == std::string::npos ? std::string::npos : end - start);
    args += fmt::format("{}\"{}\"", args.empty() ? "" : ", ", arg);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::string s = fmt::format(
      "services:\n"
      "  qwenbox:\n"
      "    image: qwenbox:latest\n"
      "    command: [{}]\n"
      "    ports: [\"{}:{}\"]\n"
      "    volumes: [\"/models:/models:ro\"]\n"
      "    shm_size: {}\n"
      "    init: true\n"
      "{}"
      "    stop_grace_period: {}s\n"
      "    memswap_limit: {}\n"
      "    deploy:\n"
      "      resources:\n"
      "        limits:\n"
      "          memory: {}\n",
      args, d.port, d.port, DockerSize(RecommendedShmBytes(d.gpus)),
      d.cpu_tensor_parallel > 1 ? "    cap_add: [SYS_NICE]\n" : "", kStopTimeoutSeconds, DockerSize(memory),
      DockerSize(memory));
  if (d.cpus > 0) s += fmt::format("          cpus: \"{}\"\n", CpusText(d.cpus));
  if (d.gpus > 0)
    s += fmt::format(
        "        reservations:\n"
        "          devices:\n"
        "            - driver: nvidia\n"
        "              count: {}\n"
        "              capabilities: [gpu]\n",
        d.gpus);
  s += fmt::format(
      "    healthcheck:\n"
      "      test: [\"CMD\", \"curl\", \"-fsS\", \"http://127.0.0.1:{}/health\"]\n"
      "      interval: 10s\n"
      "      start_period: 300s\n",
      d.port);
  return s;
}

std::string KubernetesResources(const DeploymentInput& d) {
  const int64_t memory = d.gpus > 0 ? RoundUpMiB(HostBytes(d)) : RecommendedMemoryLimit(d.plan, d.margin);
  // Requests equal limits: the Guaranteed QoS class, evicted last.
  std::string cpu = d.cpus > 0 ? fmt::format("\n    cpu: \"{}\"", CpusText(d.cpus)) : "";
  std::string gpu = d.gpus > 0 ? fmt::format("\n    nvidia.com/gpu: {}", d.gpus) : "";
  return fmt::format(
      "resources:\n"
      "  requests:\n"
      "    memory: {}{}{}\n"
      "  limits:\n"
      "    memory: {}{}{}\n"
      "# /dev/shm for the container (mount at /dev/shm):\n"
      "volumes:\n"
      "  - name: dshm\n"
      "    emptyDir:\n"
      "      medium: Memory\n"
      "      sizeLimit: {}\n"
      "{}",
      KubeQuantity(memory), cpu, gpu, KubeQuantity(memory), cpu, gpu, KubeQuantity(RecommendedShmBytes(d.gpus)),
      d.cpu_tensor_parallel > 1 ? "# the container's securityContext (each rank's memory on its NUMA node):\n"
                                  "securityContext:\n"
                                  "  capabilities:\n"
                                  "    add: [SYS_NICE]\n"
                                : "");
}

std::vector<GpuLayout> GpuLayouts(const MemoryPlan& plan, int64_t total_gpus, int64_t gpu_mem_bytes) {
  std::vector<GpuLayout> out;
  for (int64_t instances = 1; instances <= total_gpus; ++instances) {
    if (total_gpus % instances != 0) continue;
    GpuLayout l;
    l.instances = instances;
    l.gpus_per_instance = total_gpus / instances;
    const int64_t tp = l.gpus_per_instance;
    l.per_gpu_bytes = (plan.weights_bytes + plan.kv_bytes) / tp + plan.activation_bytes + kGpuRuntimeBytes;
    const auto usable = static_cast<int64_t>(static_cast<double>(gpu_mem_bytes) * kGpuMemoryUtilization);
    l.fits = l.per_gpu_bytes <= usable;
    const int64_t kv_room = tp * (usable - plan.activation_bytes - kGpuRuntimeBytes) - plan.weights_bytes;
    l.kv_tokens_per_instance = std::max<int64_t>(0, kv_room / plan.kv_bytes_per_token);
    l.sequences_at_context = plan.context > 0 ? l.kv_tokens_per_instance / plan.context * instances : 0;
    out.push_back(l);
  }
  return out;
}

}  // namespace qb
