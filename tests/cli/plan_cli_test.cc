// `qwenbox plan` and `qwenbox serve --print-config`: the sizing users read before deploying,
// and a memory limit too small to serve in, which must end in a clear message and exit 1.
#include <gtest/gtest.h>

#include "common/run_command.h"
#include "cli/cli_test_util.h"
#include "common/test_paths.h"
#include "util/json.h"

namespace qb {
namespace {

using test::DataPath;
using test::RunCommand;

using test::kQwenbox;

Json RunJson(const std::vector<std::string>& argv) {
  auto r = RunCommand(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto j = ParseJson(r.out, "stdout");
  EXPECT_TRUE(j.ok()) << r.out;
  return j.ok() ? *j : Json();
}

TEST(PlanCli, JsonForAPreset) {
  const Json j = RunJson({kQwenbox, "plan", "--preset", "qwen2.5-7b", "--quant", "bf16", "--ctx", "8192", "--batch",
                          "4", "--memory", "64g", "--format", "json"});
  EXPECT_EQ(j["kv_bytes_per_token"], 57344);
  EXPECT_EQ(j["kv_bytes"], int64_t{4} * 8192 * 57344);
  EXPECT_NEAR(j["weights_bytes"].get<double>(), 15.23e9, 0.05e9);
  EXPECT_EQ(j["total_bytes"].get<int64_t>(), j["weights_bytes"].get<int64_t>() + j["kv_bytes"].get<int64_t>() +
                                                 j["activation_bytes"].get<int64_t>() + j["overhead_bytes"].get<int64_t>());
  EXPECT_TRUE(j["fits"].get<bool>());
  EXPECT_GE(j["recommended"]["memory_bytes"].get<int64_t>(), j["total_bytes"].get<int64_t>());

  const Json tight = RunJson({kQwenbox, "plan", "--preset", "qwen2.5-7b", "--quant", "bf16", "--ctx", "8192",
                              "--memory", "16g", "--format", "json"});
  EXPECT_FALSE(tight["fits"].get<bool>());
  EXPECT_FALSE(tight["reasons"].empty());
}

TEST(PlanCli, FromAModelFileAndContainerFormats) {
  // Weights measured from the file; docker/compose/k8s carry the recommended limit.
  const Json j = RunJson({kQwenbox, "plan", "--model", DataPath("micro-qwen2/micro-qwen2-q8_0.gguf"), "--ctx", "512",
                          "--batch", "2", "--cpus", "2", "--format", "json"});
  const int64_t memory = j["recommended"]["memory_bytes"].get<int64_t>();
  ASSERT_GT(memory, 0);
  const std::string mib = std::to_string((memory + (1 << 20) - 1) >> 20);
  auto docker = RunCommand({kQwenbox, "plan", "--model", DataPath("micro-qwen2/micro-qwen2-q8_0.gguf"), "--ctx", "512",
                            "--batch", "2", "--cpus", "2", "--format", "docker"});
  ASSERT_EQ(docker.exit_code, 0) << docker.err;
  EXPECT_NE(docker.out.find("docker run"), std::string::npos) << docker.out;
  EXPECT_NE(docker.out.find("--cpus=2"), std::string::npos) << docker.out;
  EXPECT_NE(docker.out.find("--max-total-tokens 512 --max-num-seqs 2"), std::string::npos) << docker.out;
  auto k8s = RunCommand({kQwenbox, "plan", "--model", DataPath("micro-qwen2/micro-qwen2-q8_0.gguf"), "--ctx", "512",
                         "--batch", "2", "--format", "k8s"});
  ASSERT_EQ(k8s.exit_code, 0) << k8s.err;
  EXPECT_NE(k8s.out.find("limits:"), std::string::npos) << k8s.out;
  auto compose = RunCommand({kQwenbox, "plan", "--preset", "qwen2.5-0.5b", "--ctx", "512", "--format", "compose"});
  ASSERT_EQ(compose.exit_code, 0) << compose.err;
  EXPECT_NE(compose.out.find("services:"), std::string::npos) << compose.out;
}

// --tp without --gpus: CPU tensor-parallel ranks (docs/TENSOR_PARALLEL.md).
TEST(PlanCli, CpuTensorParallelRanks) {
  const std::vector<std::string> base = {kQwenbox, "plan", "--preset", "qwen2.5-7b", "--quant", "q4_k", "--ctx", "8192",
                                         "--batch", "8", "--cpus", "64", "--memory", "64g"};
  auto with = [&base](std::vector<std::string> extra) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  };
  const Json one = RunJson(with({"--format", "json"}));
  const Json two = RunJson(with({"--tp", "2", "--format", "json"}));
  EXPECT_EQ(one["cpu_tensor_parallel"], 1);
  EXPECT_EQ(two["cpu_tensor_parallel"], 2);
  // The same weights and KV cache; each further rank adds its own activation buffers.
  EXPECT_EQ(two["weights_bytes"], one["weights_bytes"]);
  EXPECT_EQ(two["kv_bytes"], one["kv_bytes"]);
  EXPECT_GT(two["activation_bytes"].get<int64_t>(), one["activation_bytes"].get<int64_t>());
  const std::string docker = two["recommended"]["docker"];
  EXPECT_NE(docker.find("--cap-add=SYS_NICE"), std::string::npos) << docker;
  EXPECT_NE(docker.find("--tensor-parallel-size 2"), std::string::npos) << docker;
  EXPECT_EQ(docker.find("--gpus"), std::string::npos) << docker;
  EXPECT_EQ(two["recommended"]["shm_bytes"], 64 << 20);
  auto compose = RunCommand(with({"--tp", "2", "--format", "compose"}));
  EXPECT_NE(compose.out.find("cap_add: [SYS_NICE]"), std::string::npos) << compose.out;
  auto k8s = RunCommand(with({"--tp", "2", "--format", "k8s"}));
  EXPECT_NE(k8s.out.find("add: [SYS_NICE]"), std::string::npos) << k8s.out;
  // --tp 1 is one rank: no GPUs, no capability.
  const std::string plain = RunJson(with({"--tp", "1", "--format", "json"}))["recommended"]["docker"];
  EXPECT_EQ(plain.find("--gpus"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("SYS_NICE"), std::string::npos) << plain;
  // Splits serve would refuse are refused here: 4 KV heads over 3; Q4_K o_proj cut at 896 inputs.
  auto three = RunCommand(with({"--tp", "3"}));
  EXPECT_EQ(three.exit_code, 1);
  EXPECT_NE(three.err.find("4 KV heads"), std::string::npos) << three.err;
  auto four = RunCommand(with({"--tp", "4"}));
  EXPECT_EQ(four.exit_code, 1);
  EXPECT_NE(four.err.find("does not split"), std::string::npos) << four.err;
  auto file = RunCommand({kQwenbox, "plan", "--model", DataPath("micro-qwen2/micro-qwen2-q4_k_m.gguf"), "--tp", "2"});
  EXPECT_EQ(file.exit_code, 1);
  EXPECT_NE(file.err.find("o_proj is q4_k"), std::string::npos) << file.err;
}

// A q8_0 KV cache: 34 bytes per 32 values, so the same memory holds 1.88x the tokens of f16.
TEST(PlanCli, Q8_0KvCacheHalvesTheKvBytes) {
  const Json j = RunJson({kQwenbox, "plan", "--preset", "qwen2.5-7b", "--quant", "q4_k", "--ctx", "8192", "--batch",
                          "4", "--kv-dtype", "q8_0", "--format", "json"});
  EXPECT_EQ(j["kv_bytes_per_token"], 2 * 28 * 16 * 34);
  EXPECT_EQ(j["kv_bytes"], int64_t{4} * 8192 * 2 * 28 * 16 * 34);
  const std::string model = DataPath("micro-qwen2/micro-qwen2-q8_0.gguf");
  const Json f16 = RunJson({kQwenbox, "serve", "--model", model, "--print-config", "--kv-cache-bytes", "64m"});
  const Json q8 = RunJson(
      {kQwenbox, "serve", "--model", model, "--print-config", "--kv-cache-bytes", "64m", "--kv-dtype", "q8_0"});
  EXPECT_EQ(q8["kv_dtype"], "q8_0");
  EXPECT_EQ(f16["kv_bytes_per_token"].get<int64_t>() * 34, q8["kv_bytes_per_token"].get<int64_t>() * 64);
  EXPECT_GT(q8["kv_blocks"].get<int64_t>(), f16["kv_blocks"].get<int64_t>() * 18 / 10);
  // The GPU cache has no q8_0.
  auto r = RunCommand({kQwenbox, "plan", "--preset", "qwen2.5-7b", "--gpus", "1", "--kv-dtype", "q8_0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("q8_0"), std::string::npos) << r.err;
}

// --draft: a draft model's weights, KV cache (--speculative-max-seqs sequences of up to 8,192
// tokens) and activations are added, and serve gets --draft-model.
TEST(PlanCli, LoraAdapters) {
  const std::vector<std::string> base = {kQwenbox, "plan", "--preset", "qwen2.5-7b", "--quant", "q4_k", "--ctx", "8192",
                                         "--batch", "4", "--cpus", "8", "--memory", "16g", "--format", "json"};
  const Json plain = RunJson(base);
  std::vector<std::string> argv = base;
  for (const char* a : {"--lora", "3", "--lora-rank", "16"}) argv.push_back(a);
  const Json j = RunJson(argv);
  // Per 7B layer, rank 16: A 16 x (6 x 3584 + 18944) inputs (in the file's type: f32 unless
  // --lora-dtype says otherwise), B^T (f32) 16 x (3 x 3584 + 2 x 512 + 2 x 18944) outputs; 28
  // layers; then one update's scratch (256 rows of 18944 + 16 floats).
  const int64_t a_values = 16 * (6 * 3584 + 18944), b_bytes = 16 * (3 * 3584 + 2 * 512 + 2 * 18944) * 4;
  const int64_t scratch = 256 * (18944 + 16) * 4;
  EXPECT_EQ(j["lora"]["bytes"].get<int64_t>(), 3 * 28 * (a_values * 4 + b_bytes) + scratch);
  EXPECT_EQ(j["total_bytes"].get<int64_t>(), plain["total_bytes"].get<int64_t>() + j["lora"]["bytes"].get<int64_t>());
  argv.push_back("--lora-dtype");
  argv.push_back("bf16");
  EXPECT_EQ(RunJson(argv)["lora"]["bytes"].get<int64_t>(), 3 * 28 * (a_values * 2 + b_bytes) + scratch);
  auto tp = RunCommand({kQwenbox, "plan", "--preset", "qwen2.5-7b", "--cpus", "4", "--tp", "2", "--lora", "1"});
  EXPECT_EQ(tp.exit_code, 1);
  EXPECT_NE(tp.err.find("--lora with --tp"), std::string::npos) << tp.err;
  auto gpu = RunCommand({kQwenbox, "plan", "--preset", "qwen2.5-7b", "--gpus", "1", "--lora", "1"});
  EXPECT_EQ(gpu.exit_code, 1);
  EXPECT_NE(gpu.err.find("--lora is for CPU deployments"), std::string::npos) << gpu.err;
}

TEST(PlanCli, DraftModel) {
  const std::vector<std::string> base = {kQwenbox, "plan", "--preset", "qwen2.5-7b", "--quant", "q4_0", "--ctx", "16384",
                                         "--batch", "8", "--cpus", "16", "--memory", "64g", "--format", "json"};
  const Json plain = RunJson(base);
  std::vector<std::string> argv = base;
  for (const char* a : {"--draft", "qwen2.5-0.5b", "--draft-quant", "q8_0"}) argv.push_back(a);
  const Json j = RunJson(argv);
  const Json& d = j["draft"];
  EXPECT_EQ(d["quant"], "q8_0");
  EXPECT_NEAR(d["weights_bytes"].get<double>(), 0.53e9, 0.03e9);  // as a Q8_0 0.5B GGUF
  // 4 sequences of 8,192 tokens at 0.5B's 12 KiB a token.
  EXPECT_EQ(d["kv_bytes"], int64_t{4} * 8192 * 2 * 24 * 2 * 64 * 2);
  EXPECT_EQ(j["total_bytes"].get<int64_t>(), plain["total_bytes"].get<int64_t>() + d["weights_bytes"].get<int64_t>() +
                                                 d["kv_bytes"].get<int64_t>() + d["activation_bytes"].get<int64_t>());
  const std::string docker = j["recommended"]["docker"];
  EXPECT_NE(docker.find("--draft-model /models/qwen2.5-0.5b --draft-quant q8_0 --speculative-max-seqs 4"),
            std::string::npos)
      << docker;
  // Measured from a file, and refused where serve would refuse it.
  argv = {kQwenbox, "plan", "--model", DataPath("micro-qwen2"), "--ctx", "512", "--batch", "4", "--draft",
          DataPath("micro-qwen2/micro-qwen2-q4_0.gguf"), "--speculative-max-seqs", "2", "--format", "json"};
  const Json file = RunJson(argv);
  EXPECT_GT(file["draft"]["weights_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(file["draft"]["kv_bytes"], 2 * 512 * file["kv_bytes_per_token"].get<int64_t>());
  auto gpu = RunCommand({kQwenbox, "plan", "--preset", "qwen2.5-7b", "--gpus", "1", "--draft", "qwen2.5-0.5b"});
  EXPECT_EQ(gpu.exit_code, 1);
  EXPECT_NE(gpu.err.find("--draft is for CPU deployments"), std::string::npos) << gpu.err;
  auto bad = RunCommand({kQwenbox, "plan", "--preset", "qwen2.5-7b", "--draft", "qwen2.5-0.1b"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("neither a preset"), std::string::npos) << bad.err;
}

TEST(PlanCli, BadInput) {
  for (const std::vector<std::string>& argv :
       {std::vector<std::string>{kQwenbox, "plan", "--preset", "qwen2.5-9b"},
        std::vector<std::string>{kQwenbox, "plan", "--preset", "qwen2.5-7b", "--quant", "q1"},
        std::vector<std::string>{kQwenbox, "plan", "--preset", "qwen2.5-7b", "--memory", "lots"},
        std::vector<std::string>{kQwenbox, "plan", "--preset", "qwen2.5-7b", "--format", "xml"},
        std::vector<std::string>{kQwenbox, "plan", "--model", "/nonexistent"}}) {
    auto r = RunCommand(argv);
    EXPECT_TRUE(r.exited);
    EXPECT_NE(r.exit_code, 0) << argv.back();
    EXPECT_FALSE(r.err.empty());
  }
}

TEST(ServePrintConfig, KvCacheFollowsTheMemoryLimit) {
  const std::string model = DataPath("micro-qwen2/micro-qwen2-q8_0.gguf");
  // Limits relative to what this build of qwenbox holds (sanitizer builds hold much more): the
  // first leaves 40 MiB of KV cache after the 5% margin, the second 100 MiB more.
  const Json base = RunJson({kQwenbox, "serve", "--model", model, "--print-config", "--threads", "1"});
  const int64_t fixed = base["model_resident_bytes"].get<int64_t>() + base["activation_bytes"].get<int64_t>() +
                        base["connection_bytes"].get<int64_t>();
  const int64_t small_mib = static_cast<int64_t>(static_cast<double>(fixed + (40 << 20)) / 0.95) / (1 << 20) + 1;
  const std::string small_limit = std::to_string(small_mib) + "m", large_limit = std::to_string(small_mib + 100) + "m";
  const Json small = RunJson({kQwenbox, "serve", "--model", model, "--print-config", "--memory-limit", small_limit,
                              "--threads", "1"});
  const Json large = RunJson({kQwenbox, "serve", "--model", model, "--print-config", "--memory-limit", large_limit,
                              "--threads", "1"});
  EXPECT_EQ(small["memory_limit_bytes"], small_mib << 20);
  EXPECT_EQ(small["threads"], 1);
  // The extra 100 MiB, less the 5% margin, all goes to the KV cache (both stay under the cap of
  // 64 sequences x the context, 256 MiB here).
  const int64_t grown = large["kv_cache_bytes"].get<int64_t>() - small["kv_cache_bytes"].get<int64_t>();
  const int64_t block = large["block_size"].get<int64_t>() * large["kv_bytes_per_token"].get<int64_t>();
  EXPECT_NEAR(static_cast<double>(grown), 0.95 * (100 << 20), 2.0 * static_cast<double>(block) + (4 << 20));
  EXPECT_LE(large["kv_cache_bytes"].get<int64_t>() + large["model_resident_bytes"].get<int64_t>(),
            (small_mib + 100) << 20);

  const Json explicit_kv = RunJson({kQwenbox, "serve", "--model", model, "--print-config", "--kv-cache-bytes", "64m"});
  EXPECT_LE(explicit_kv["kv_cache_bytes"].get<int64_t>(), int64_t{64} << 20);
  EXPECT_GT(explicit_kv["kv_cache_bytes"].get<int64_t>(), int64_t{63} << 20);
}

TEST(ServePrintConfig, TooSmallALimitIsRefusedWithWhatWouldFit) {
  auto r = RunCommand({kQwenbox, "serve", "--model", DataPath("micro-qwen2/micro-qwen2-q8_0.gguf"), "--memory-limit",
                       "20m", "--print-config"});
  EXPECT_TRUE(r.exited);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not fit the memory limit"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("docker run --memory="), std::string::npos) << r.err;
  auto bad = RunCommand({kQwenbox, "serve", "--memory-limit", "12q", "--print-config"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("12q"), std::string::npos) << bad.err;
}

TEST(ServePrintConfig, SpeculativeDecodingSettings) {
  const std::string model = DataPath("micro-qwen2/micro-qwen2-q8_0.gguf");
  const Json off = RunJson({kQwenbox, "serve", "--model", model, "--print-config", "--kv-cache-bytes", "16m"});
  EXPECT_TRUE(off["speculative"].is_null());
  const Json on = RunJson({kQwenbox, "serve", "--model", model, "--print-config", "--kv-cache-bytes", "16m",
                           "--speculative-tokens", "3", "--speculative-ngram-min", "1"});
  EXPECT_EQ(on["speculative"]["method"], "ngram");
  EXPECT_EQ(on["speculative"]["num_tokens"], 3);
  EXPECT_EQ(on["speculative"]["ngram_min"], 1);
  EXPECT_EQ(on["speculative"]["ngram_max"], 4);
  auto bad = RunCommand({kQwenbox, "serve", "--model", model, "--print-config", "--speculative-tokens", "3",
                         "--speculative-ngram-min", "5"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--speculative-ngram-min"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace qb
