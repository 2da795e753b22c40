// The memory arithmetic against published numbers: parameter counts of the Qwen2.5 family, the
// file sizes of the official GGUF quantizations of Qwen2.5-7B-Instruct, and the KV cache size
// per token that follows from the model's shape.
#include <gtest/gtest.h>

#include "model/presets.h"
#include "resources/memory_plan.h"

namespace qb {
namespace {

ModelConfig Preset(const std::string& name) {
  auto p = FindPreset(name);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p->config;
}

// BF16 bytes / 2 is the parameter count (norms and biases, held in f32, add < 0.1%).
TEST(WeightBytes, Bf16MatchesPublishedParameterCounts) {
  const std::vector<std::pair<std::string, double>> published = {
      {"qwen2.5-0.5b", 0.494e9}, {"qwen2.5-1.5b", 1.54e9}, {"qwen2.5-3b", 3.09e9}, {"qwen2.5-7b", 7.61e9},
      {"qwen2.5-14b", 14.7e9},   {"qwen2.5-32b", 32.5e9},  {"qwen2.5-72b", 72.7e9}};
  for (const auto& [name, params] : published) {
    auto bytes = WeightBytes(Preset(name), "bf16");
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    EXPECT_NEAR(static_cast<double>(*bytes) / 2 / params, 1.0, 0.01) << name;
  }
}

// Qwen's own GGUF files of Qwen2.5-7B-Instruct (bytes on the hub, rounded): what llama.cpp's
// quantization rules give, which the plan follows.
TEST(WeightBytes, QuantizedSevenBMatchesPublishedFiles) {
  const ModelConfig c = Preset("qwen2.5-7b");
  const std::vector<std::pair<std::string, double>> published = {
      {"f16", 15.24e9}, {"q8_0", 8.10e9}, {"q4_0", 4.43e9}};
  for (const auto& [quant, bytes] : published) {
    auto b = WeightBytes(c, quant);
    ASSERT_TRUE(b.ok()) << quant << ": " << b.status().ToString();
    EXPECT_NEAR(static_cast<double>(*b) / bytes, 1.0, 0.01) << quant << " " << *b;
  }
  // `--quant q4_k` makes every matrix Q4_K (144 bytes per 256 weights), which is 4.5 bits a
  // weight like Q4_0 (18 bytes per 32); llama.cpp's Q4_K_M (4.68 GB) mixes in Q6_K.
  EXPECT_EQ(WeightBytes(c, "q4_k").value(), WeightBytes(c, "q4_0").value());
  // GPTQ/AWQ INT4: 4-bit matrices (5 bits a weight with scales and zeros) and f16 embeddings:
  // the published Qwen2.5-7B-Instruct-GPTQ-Int4 safetensors are 5.58 GB.
  for (const char* q : {"gptq-int4", "awq-int4"}) {
    auto b = WeightBytes(c, q);
    ASSERT_TRUE(b.ok());
    EXPECT_GT(*b, 5.0e9) << q;
    EXPECT_LT(*b, 6.5e9) << q;
  }
  EXPECT_FALSE(WeightBytes(c, "int3").ok());
}

TEST(KvBytesPerToken, FollowsTheShape) {
  // 2 (K and V) x 28 layers x 4 kv heads x 128 x 2 bytes.
  EXPECT_EQ(KvBytesPerToken(Preset("qwen2.5-7b"), DType::kF16), 57344);
  EXPECT_EQ(KvBytesPerToken(Preset("qwen2.5-7b"), DType::kF32), 114688);
  // 0.5B: 24 layers x 2 kv heads x 64.
  EXPECT_EQ(KvBytesPerToken(Preset("qwen2.5-0.5b"), DType::kF16), 2 * 24 * 2 * 64 * 2);
  // 72B: 80 layers x 8 kv heads x 128.
  EXPECT_EQ(KvBytesPerToken(Preset("qwen2.5-72b"), DType::kBF16), 2 * 80 * 8 * 128 * 2);
  // q8_0: 34 bytes per 32 values (the 7B's 512 per row: 16 blocks).
  EXPECT_EQ(KvBytesPerToken(Preset("qwen2.5-7b"), DType::kQ8_0), 2 * 28 * 16 * 34);
}

TEST(PlanMemory, AddsUpAndScalesWithBatchAndContext) {
  PlanInput in;
  in.config = Preset("qwen2.5-7b");
  in.quant = "bf16";
  in.context = 8192;
  in.batch = 8;
  auto p = PlanMemory(in);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->kv_bytes_per_sequence, 8192 * 57344);
  EXPECT_EQ(p->kv_bytes, 8 * p->kv_bytes_per_sequence);
  EXPECT_EQ(p->total_bytes, p->weights_bytes + p->kv_bytes + p->activation_bytes + p->overhead_bytes);
  EXPECT_GE(p->overhead_bytes, kRuntimeBaseBytes + kTokenizerBytes);

  in.batch = 16;
  auto twice = PlanMemory(in);
  ASSERT_TRUE(twice.ok());
  EXPECT_EQ(twice->kv_bytes, 2 * p->kv_bytes);

  in.context = 0;  // the model's context
  auto full = PlanMemory(in);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->context, in.config.max_position_embeddings);

  in.context = in.config.max_position_embeddings + 1;
  EXPECT_FALSE(PlanMemory(in).ok());
  in.context = 1024;
  in.quant = "q2_k";
  EXPECT_FALSE(PlanMemory(in).ok());
}

TEST(PlanMemory, ADraftModelAddsItsWeightsPoolAndActivations) {
  PlanInput in;
  in.config = Preset("qwen2.5-7b");
  in.quant = "q4_0";
  in.context = 4096;
  in.batch = 2;
  const auto plain = PlanMemory(in);
  in.draft = DraftPlanInput{Preset("qwen2.5-0.5b"), "q8_0", 0, 4};
  const auto with = PlanMemory(in);
  ASSERT_TRUE(plain.ok() && with.ok());
  EXPECT_EQ(with->draft_weights_bytes, *WeightBytes(Preset("qwen2.5-0.5b"), "q8_0"));
  // min(4 proposing, 2 batched) sequences of the 4,096-token context.
  EXPECT_EQ(with->draft.kv_blocks, 2 * 4096 / 16);
  EXPECT_EQ(with->draft.kv_bytes, 2 * 4096 * KvBytesPerToken(Preset("qwen2.5-0.5b"), DType::kF16));
  EXPECT_GT(with->draft.activation_bytes, 0);
  EXPECT_EQ(with->total_bytes,
            plain->total_bytes + with->draft_weights_bytes + with->draft.kv_bytes + with->draft.activation_bytes);
  // Long contexts: a draft slot holds at most kDraftTokensPerSeq tokens.
  EXPECT_EQ(DraftModelMemory(Preset("qwen2.5-0.5b"), 3, 0, 16, DType::kF16, 2).kv_blocks, 3 * kDraftTokensPerSeq / 16);
  in.draft->quant = "q1";
  EXPECT_FALSE(PlanMemory(in).ok());
}

TEST(ActivationBytes, GrowsWithTokensAndSequences) {
  const ModelConfig c = Preset("qwen2.5-7b");
  StepShape small{.max_batch_tokens = 512, .max_num_seqs = 8, .max_total_tokens = 4096, .threads = 2};
  StepShape more_tokens = small;
  more_tokens.max_batch_tokens = 2048;
  StepShape more_seqs = small;
  more_seqs.max_num_seqs = 64;
  const int64_t base = ActivationBytes(c, small);
  EXPECT_GT(ActivationBytes(c, more_tokens), base);
  EXPECT_GT(ActivationBytes(c, more_seqs), base);
  // At least the f32 logits of every sampled row.
  EXPECT_GE(ActivationBytes(c, small), 8 * c.vocab_size * 4);
  // Each further tensor-parallel rank holds its own residual stream, normed input and sublayer
  // output (f32) for every token, and its part of the logits before they are joined.
  StepShape two_ranks = small;
  two_ranks.tensor_parallel = 2;
  EXPECT_GE(ActivationBytes(c, two_ranks) - base, 512 * 3 * c.hidden_size * 4 + 8 * c.vocab_size * 4);
}

}  // namespace
}  // namespace qb
