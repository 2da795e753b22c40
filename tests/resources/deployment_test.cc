// Container settings from a plan: sizes in Docker's and Kubernetes' notation, the flags of
// `docker run`, the compose and Kubernetes blocks, and how GPUs split into instances.
#include <gtest/gtest.h>

#include "common/byte_units.h"
#include "model/presets.h"
#include "resources/deployment.h"
#include "resources/memory_guard.h"

namespace qb {
namespace {

using test::kGiB;
using test::kMiB;

MemoryPlan SevenB(const std::string& quant, int64_t context, int64_t batch) {
  PlanInput in;
  in.config = FindPreset("qwen2.5-7b")->config;
  in.quant = quant;
  in.context = context;
  in.batch = batch;
  return PlanMemory(in).value();
}

TEST(Deployment, Sizes) {
  EXPECT_EQ(DockerSize(16 * kGiB), "16g");
  EXPECT_EQ(DockerSize(512 * kMiB), "512m");
  EXPECT_EQ(DockerSize(512 * kMiB + 1), "513m");  // rounded up, never below the need
  EXPECT_EQ(KubeQuantity(16 * kGiB), "16Gi");
  EXPECT_EQ(KubeQuantity(1536 * kMiB), "1536Mi");
  EXPECT_EQ(RecommendedShmBytes(0), 64 * kMiB);
  EXPECT_EQ(RecommendedShmBytes(4), 4 * kGiB);
}

TEST(Deployment, MemoryLimitCoversThePlanAndTheMargin) {
  const MemoryPlan p = SevenB("q4_k", 4096, 4);
  const int64_t limit = RecommendedMemoryLimit(p, 0.05);
  EXPECT_GE(static_cast<double>(limit) * 0.95, static_cast<double>(p.total_bytes));
  EXPECT_LT(limit, p.total_bytes / 0.95 + kMiB + 1);
  EXPECT_EQ(limit % kMiB, 0);
}

TEST(Deployment, DockerComposeAndKubernetesCarryTheLimits) {
  DeploymentInput d;
  d.plan = SevenB("q8_0", 8192, 2);
  d.model_arg = "/models/qwen2.5-7b-q8_0.gguf";
  d.context = 8192;
  d.batch = 2;
  d.cpus = 8;
  const std::string mem = DockerSize(RecommendedMemoryLimit(d.plan, d.margin));
  const std::string docker = DockerRunCommand(d);
  EXPECT_NE(docker.find("--memory=" + mem), std::string::npos) << docker;
  EXPECT_NE(docker.find("--memory-swap=" + mem), std::string::npos) << docker;  // no swap: predictable latency
  EXPECT_NE(docker.find("--cpus=8"), std::string::npos) << docker;
  EXPECT_NE(docker.find("--shm-size=64m"), std::string::npos) << docker;
  EXPECT_NE(docker.find("--init --stop-timeout 45"), std::string::npos) << docker;  // longer than the drain
  EXPECT_NE(docker.find("--max-total-tokens 8192 --max-num-seqs 2"), std::string::npos) << docker;
  EXPECT_EQ(docker.find("--gpus"), std::string::npos);

  const std::string compose = ComposeService(d);
  EXPECT_NE(compose.find("memory: " + mem), std::string::npos) << compose;
  EXPECT_NE(compose.find("cpus: \"8\""), std::string::npos) << compose;
  EXPECT_NE(compose.find("stop_grace_period: 45s"), std::string::npos) << compose;
  EXPECT_NE(compose.find("memswap_limit: " + mem), std::string::npos) << compose;
  EXPECT_NE(compose.find("\"--model\", \"/models/qwen2.5-7b-q8_0.gguf\""), std::string::npos) << compose;

  const std::string k8s = KubernetesResources(d);
  const std::string quantity = KubeQuantity(RecommendedMemoryLimit(d.plan, d.margin));
  EXPECT_NE(k8s.find("requests:\n    memory: " + quantity), std::string::npos) << k8s;
  EXPECT_NE(k8s.find("limits:\n    memory: " + quantity), std::string::npos) << k8s;

  d.gpus = 2;
  const std::string gpu = DockerRunCommand(d);
  EXPECT_NE(gpu.find("--gpus=2"), std::string::npos) << gpu;
  EXPECT_NE(gpu.find("--shm-size=2g"), std::string::npos) << gpu;
  EXPECT_NE(KubernetesResources(d).find("nvidia.com/gpu: 2"), std::string::npos);
}

TEST(Deployment, GpuLayouts) {
  // 7B BF16 (15.2 GB) with 8 sequences of 32k (15 GB of KV): on one 24 GB card it does not fit;
  // tensor parallel over 2 or 4 cards does.
  const MemoryPlan p = SevenB("bf16", 32768, 8);
  const auto layouts = GpuLayouts(p, 4, 24 * kGiB);
  ASSERT_EQ(layouts.size(), 3u);  // 1 x 4, 2 x 2, 4 x 1
  EXPECT_EQ(layouts[0].instances, 1);
  EXPECT_EQ(layouts[0].gpus_per_instance, 4);
  EXPECT_TRUE(layouts[0].fits);
  EXPECT_EQ(layouts[2].gpus_per_instance, 1);
  EXPECT_FALSE(layouts[2].fits);
  // More cards per instance leave more room for KV.
  EXPECT_GT(layouts[0].kv_tokens_per_instance, layouts[1].kv_tokens_per_instance);
  for (const GpuLayout& l : layouts)
    EXPECT_EQ(l.per_gpu_bytes,
              (p.weights_bytes + p.kv_bytes) / l.gpus_per_instance + p.activation_bytes + kGpuRuntimeBytes);
}

TEST(MemoryGuard, ShedsBelowTheReserve) {
  ResourceLimits none;  // measure this process's resident set
  const int64_t rss = ProcessResidentBytes();
  MemoryGuard roomy(none, rss + 8 * kGiB, false, 64 * kMiB);
  EXPECT_FALSE(roomy.ShouldShed());
  EXPECT_EQ(roomy.shed_count(), 0);
  const MemorySample s = roomy.Sample();
  ASSERT_TRUE(s.headroom_bytes());
  EXPECT_GT(*s.headroom_bytes(), 7 * kGiB);

  MemoryGuard tight(none, rss + 16 * kMiB, false, 64 * kMiB);
  EXPECT_TRUE(tight.ShouldShed());
  EXPECT_EQ(tight.shed_count(), 1);

  MemoryGuard unlimited(none, std::nullopt, false, 64 * kMiB);
  EXPECT_FALSE(unlimited.ShouldShed());
  EXPECT_FALSE(unlimited.Sample().headroom_bytes());
}

}  // namespace
}  // namespace qb
