// Container settings for a plan: `docker run` flags, a compose service and a Kubernetes
// resources block, and the ways to split GPUs into instances (1 instance on 4 GPUs, 2 on 2,
// 4 on 1) with what each layout holds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "resources/memory_plan.h"

namespace qb {

// GPU memory vLLM-style: this fraction of each GPU is used, the rest left to the driver.
constexpr double kGpuMemoryUtilization = 0.90;
// Seconds a container gets to stop: the server drains for up to 30 s (--drain-timeout).
constexpr int kStopTimeoutSeconds = 45;
// CUDA context, cuBLAS workspace and NCCL buffers per GPU.
constexpr int64_t kGpuRuntimeBytes = int64_t{768} << 20;

struct DeploymentInput {
  MemoryPlan plan;        // one instance
  std::string model_arg;  // what to pass as --model
  std::string quant;      // "" when the model is served as stored
  int64_t context = 0;
  int64_t batch = 1;
  double margin = 0.05;
  double cpus = 0;     // per instance; 0: not limited
  int64_t gpus = 0;    // per instance (tensor parallel degree)
  // CPU tensor-parallel ranks (docs/TENSOR_PARALLEL.md): --tensor-parallel-size, and the
  // SYS_NICE capability that moving each rank's memory to its NUMA node needs.
  int64_t cpu_tensor_parallel = 1;
  std::string draft_model_arg;     // --draft-model ("": none)
  std::string draft_quant;         // --draft-quant
  int64_t speculative_max_seqs = 4;
  int64_t port = 8080;
};

// The memory limit to give one instance: its total over (1 - margin), rounded up to MiB.
int64_t RecommendedMemoryLimit(const MemoryPlan& plan, double margin);
// /dev/shm: Docker's 64 MiB default suffices on CPU; NCCL between GPUs wants 1 GiB per GPU.
int64_t RecommendedShmBytes(int64_t gpus);
// "512m", "16g": Docker's and compose's size notation (MiB granularity, rounded up).
std::string DockerSize(int64_t bytes);
// "512Mi", "16Gi": Kubernetes quantities.
std::string KubeQuantity(int64_t bytes);

std::string DockerRunCommand(const DeploymentInput& d);
std::string ComposeService(const DeploymentInput& d);
std::string KubernetesResources(const DeploymentInput& d);

// One way to split `total_gpus` GPUs of `gpu_mem_bytes` each into instances.
struct GpuLayout {
  int64_t instances = 0;
  int64_t gpus_per_instance = 0;           // tensor parallel degree
  int64_t per_gpu_bytes = 0;               // weights/TP + KV/TP + activations + CUDA runtime
  bool fits = false;
  int64_t kv_tokens_per_instance = 0;      // what the KV cache holds with the memory left
  int64_t sequences_at_context = 0;        // all instances together
};

std::vector<GpuLayout> GpuLayouts(const MemoryPlan& plan, int64_t total_gpus, int64_t gpu_mem_bytes);

}  // namespace qb
