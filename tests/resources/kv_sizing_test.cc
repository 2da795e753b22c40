// Start-up KV sizing: the budget a memory limit leaves, the cap at what max_num_seqs can use,
// explicit sizes, and refusals that say what would fit.
#include <gtest/gtest.h>

#include "common/byte_units.h"
#include "model/presets.h"
#include "resources/kv_sizing.h"
#include "resources/memory_plan.h"

namespace qb {
namespace {

using test::kMiB;

KvSizingInput SevenB() {
  KvSizingInput in;
  in.config = FindPreset("qwen2.5-7b")->config;
  in.quant = "bf16";
  in.weights_bytes = *WeightBytes(in.config, "bf16");
  in.resident_bytes = in.weights_bytes + 150 * kMiB;
  in.activation_bytes = 700 * kMiB;
  in.connection_bytes = 20 * kMiB;
  in.kv_bytes_per_token = KvBytesPerToken(in.config, DType::kF16);
  in.limit_source = "test";
  return in;
}

TEST(SizeKvCache, LimitLeavesTheBudget) {
  KvSizingInput in = SevenB();
  in.memory_limit = int64_t{20} << 30;
  auto s = SizeKvCache(in);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  const int64_t fixed = in.resident_bytes + in.activation_bytes + in.connection_bytes;
  const auto usable = static_cast<int64_t>(static_cast<double>(*in.memory_limit) * 0.95);
  EXPECT_EQ(s->budget_bytes, usable - fixed);
  EXPECT_LE(s->kv_cache_bytes, s->budget_bytes);
  EXPECT_GT(s->kv_cache_bytes, s->budget_bytes - 16 * in.kv_bytes_per_token);  // whole blocks
  EXPECT_EQ(s->kv_cache_bytes % (16 * in.kv_bytes_per_token), 0);
  EXPECT_EQ(s->blocks * 16 * in.kv_bytes_per_token, s->kv_cache_bytes);
  EXPECT_EQ(s->max_total_tokens, std::min<int64_t>(in.config.max_position_embeddings, s->blocks * 16));

  // More memory, more KV cache.
  in.memory_limit = int64_t{24} << 30;
  auto bigger = SizeKvCache(in);
  ASSERT_TRUE(bigger.ok());
  EXPECT_GT(bigger->kv_cache_bytes, s->kv_cache_bytes + (int64_t{3} << 30));
}

// A draft model's KV pool and activations (--draft-model) are fixed costs like the activations:
// the KV cache gets that much less, and a refusal names them.
TEST(SizeKvCache, ADraftModelsPoolComesOutOfTheBudget) {
  KvSizingInput in = SevenB();
  in.memory_limit = int64_t{20} << 30;
  const auto plain = SizeKvCache(in);
  in.draft_bytes = 500 * kMiB;
  const auto with = SizeKvCache(in);
  ASSERT_TRUE(plain.ok() && with.ok());
  EXPECT_EQ(with->budget_bytes, plain->budget_bytes - 500 * kMiB);
  in.memory_limit = in.resident_bytes + in.activation_bytes + in.connection_bytes + 510 * kMiB;
  const auto refused = SizeKvCache(in);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("the draft model's KV cache and activations 0.49 GiB"), std::string::npos)
      << refused.status().message();
}

TEST(SizeKvCache, CappedAtWhatTheSequencesCanUse) {
  KvSizingInput in = SevenB();
  in.memory_limit = int64_t{64} << 30;
  in.max_num_seqs = 2;
  in.max_total_tokens = 4096;
  auto s = SizeKvCache(in);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->kv_cache_bytes, 2 * 4096 * in.kv_bytes_per_token);
  EXPECT_EQ(s->max_total_tokens, 4096);
}

TEST(SizeKvCache, RefusesWhenNoRequestFitsAndSaysWhatWould) {
  KvSizingInput in = SevenB();
  in.memory_limit = int64_t{15} << 30;  // less than the bf16 weights plus the runtime
  auto s = SizeKvCache(in);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kResourceExhausted);
  const std::string msg = s.status().message();
  EXPECT_NE(msg.find("does not fit the memory limit"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--quant q8_0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("docker run --memory="), std::string::npos) << msg;

  // Just enough for the fixed part: a shorter context is suggested.
  in.memory_limit = static_cast<int64_t>(
      static_cast<double>(in.resident_bytes + in.activation_bytes + in.connection_bytes + 1024 * in.kv_bytes_per_token) /
      0.95);
  auto tight = SizeKvCache(in);
  ASSERT_FALSE(tight.ok());
  EXPECT_NE(tight.status().message().find("--max-total-tokens 10"), std::string::npos) << tight.status().message();
  in.max_total_tokens = 1000;
  EXPECT_TRUE(SizeKvCache(in).ok());
}

TEST(SizeKvCache, ExplicitBytesAreUsedOrRefused) {
  KvSizingInput in = SevenB();
  in.kv_cache_bytes = 1000 * kMiB;
  auto s = SizeKvCache(in);
  ASSERT_TRUE(s.ok());
  EXPECT_LE(s->kv_cache_bytes, in.kv_cache_bytes);
  EXPECT_GT(s->kv_cache_bytes, in.kv_cache_bytes - 16 * in.kv_bytes_per_token);
  in.memory_limit = in.resident_bytes + 500 * kMiB;
  auto refused = SizeKvCache(in);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("--kv-cache-bytes"), std::string::npos);
}

TEST(SizeKvCache, WithoutALimitUsesTheDefaultWithinAvailableMemory) {
  KvSizingInput in = SevenB();
  in.host_available_bytes = int64_t{64} << 30;
  auto s = SizeKvCache(in);
  ASSERT_TRUE(s.ok());
  EXPECT_LE(s->kv_cache_bytes, kDefaultUnlimitedKvBytes);
  EXPECT_GT(s->kv_cache_bytes, kDefaultUnlimitedKvBytes - 16 * in.kv_bytes_per_token);
  in.host_available_bytes = in.resident_bytes + in.activation_bytes + in.connection_bytes + (int64_t{1} << 30);
  auto small = SizeKvCache(in);
  ASSERT_TRUE(small.ok());
  EXPECT_LT(small->kv_cache_bytes, int64_t{1} << 30);
}

TEST(SizeKvCache, RejectsImpossibleSettings) {
  KvSizingInput in = SevenB();
  in.max_total_tokens = in.config.max_position_embeddings + 1;
  EXPECT_EQ(SizeKvCache(in).status().code(), StatusCode::kInvalidArgument);
  in = SevenB();
  in.margin = 1.0;
  EXPECT_EQ(SizeKvCache(in).status().code(), StatusCode::kInvalidArgument);
  in = SevenB();
  in.kv_cache_bytes = 100 * kMiB;  // 1828 tokens
  in.max_total_tokens = 4096;
  EXPECT_EQ(SizeKvCache(in).status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace qb
