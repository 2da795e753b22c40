// The memory arithmetic of serving a model: weight bytes for a quantization, KV bytes per token,
// activations of one engine step, and the runtime's own overhead. `qwenbox plan` prints it and
// `qwenbox serve` sizes its KV cache with it (docs/PLANNING.md explains every term).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/config.h"
#include "tensor/dtype.h"
#include "util/status.h"

namespace qb {

// The quantizations a plan can assume: bf16, f16, q8_0, q4_0, q4_k, gptq-int4, awq-int4.
std::vector<std::string> PlanQuantNames();

// Bytes qwenbox holds for the weights of `config` stored as `quant` (llama.cpp's rules for which
// matrices get which type; GPTQ/AWQ keep the embeddings in f16 and hold the matrices as 4-bit
// blocks of 32 with an f16 scale and minimum). Norms and biases are counted as f32.
Result<int64_t> WeightBytes(const ModelConfig& config, const std::string& quant);

// Bytes of K and V for one token across all layers: 2 x layers x kv_heads x head_dim x dtype size.
int64_t KvBytesPerToken(const ModelConfig& config, DType kv_dtype);

struct StepShape {
  int64_t max_batch_tokens = 2048;  // tokens in one forward pass
  int64_t max_num_seqs = 64;        // sequences sampled in one step
  int64_t max_total_tokens = 4096;  // longest sequence (attention scratch)
  int64_t threads = 1;
  int64_t tensor_parallel = 1;  // CPU ranks (model/tensor_parallel.h), each with its own hidden-size buffers
};

// Peak transient memory of one engine step: the f32 intermediates of max_batch_tokens tokens,
// the logits and sampling scratch of max_num_seqs rows of the vocabulary, and per-thread
// attention scores.
int64_t ActivationBytes(const ModelConfig& config, const StepShape& step);

// Memory each open connection costs (request, response buffers, thread stack): measured about
// 140 KiB per concurrent stream; budgeted at 192 KiB.
constexpr int64_t kConnectionBytes = 192 << 10;
// The process before the model: code, libraries, allocator and thread stacks.
constexpr int64_t kRuntimeBaseBytes = 48 << 20;
// Bytes of the built-in tokenizer's tables for a 151k vocabulary (measured ~40 MiB).
constexpr int64_t kTokenizerBytes = 48 << 20;

// What one instance needs (planning, before anything is loaded).
// A draft model (--draft-model, engine/model_drafter.h): its KV pool holds `max_seqs`
// (--speculative-max-seqs) sequences of up to kDraftTokensPerSeq tokens (or of max_total_tokens
// when shorter); its passes catch up at most kDraftMaxBatchTokens tokens.
constexpr int64_t kDraftTokensPerSeq = 8192;
constexpr int64_t kDraftMaxBatchTokens = 512;

struct DraftMemory {
  int64_t kv_blocks = 0;
  int64_t kv_bytes = 0;
  int64_t activation_bytes = 0;
};
DraftMemory DraftModelMemory(const ModelConfig& draft, int64_t max_seqs, int64_t max_total_tokens, int64_t block_size,
                             DType kv_dtype, int64_t threads);

struct DraftPlanInput {
  ModelConfig config;
  std::string quant = "bf16";
  int64_t weights_bytes = 0;  // > 0: measured from a file
  int64_t max_seqs = 4;       // --speculative-max-seqs
};

struct PlanInput {
  ModelConfig config;
  std::string quant = "bf16";
  int64_t weights_bytes = 0;  // > 0: measured from a file, used instead of the arithmetic
  DType kv_dtype = DType::kF16;
  int64_t context = 0;  // tokens per sequence; 0: the model's context
  int64_t batch = 1;    // sequences at full context at once
  int64_t max_batch_tokens = 2048;
  int64_t threads = 1;
  int64_t connections = 0;  // open connections budgeted (0: 4 per sequence)
  int64_t cpu_tensor_parallel = 1;  // CPU ranks (docs/TENSOR_PARALLEL.md): their own activation buffers
  std::optional<DraftPlanInput> draft;  // speculative decoding with a draft model
  int64_t lora_adapters = 0;  // LoRA adapters served beside the model (serve --lora-modules)
  int64_t lora_rank = 16;     // their rank, on all seven projections
  DType lora_dtype = DType::kF32;  // their files' type (A is held in it)
};

struct MemoryPlan {
  int64_t weights_bytes = 0;
  int64_t kv_bytes_per_token = 0;
  int64_t context = 0;
  int64_t kv_bytes_per_sequence = 0;
  int64_t kv_bytes = 0;  // batch x per sequence
  int64_t activation_bytes = 0;
  int64_t overhead_bytes = 0;  // runtime base + tokenizer + connections
  int64_t draft_weights_bytes = 0;
  DraftMemory draft;           // the draft model's KV pool and activations (zero without one)
  int64_t lora_bytes = 0;      // the LoRA adapters (and one update's scratch)
  int64_t total_bytes = 0;     // weights + KV + activations + overhead + the draft model's + LoRA
};

Result<MemoryPlan> PlanMemory(const PlanInput& in);

}  // namespace qb
