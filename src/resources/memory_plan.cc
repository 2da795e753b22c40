#include "resources/memory_plan.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "model/lora_adapter.h"
#include "model/lora_apply.h"
#include "model/quantize.h"

namespace qb {

namespace {

// The types a quantization gives the matrices, the output projection (lm_head, or the tied
// embedding) and a separate input embedding.
struct Roles {
  DType matrices, output, embedding;
};

Result<Roles> RolesFor(const std::string& quant) {
  if (quant == "gptq-int4" || quant == "awq-int4") return Roles{DType::kQ4Z, DType::kF16, DType::kF16};
  auto plan = FindQuantPlan(quant);
  if (!plan.ok() || quant == "f32")
    return InvalidArgument(fmt::format("unknown quantization \"{}\" ({})", quant, fmt::join(PlanQuantNames(), ", ")));
  return Roles{plan->matrices, plan->output, plan->embedding};
}

int64_t MatrixBytes(int64_t rows, int64_t cols, DType want) {
  const DTypeInfo& info = Info(FitType(want, cols));
  return rows * (cols / info.block_size) * info.block_bytes;
}

}  // namespace

std::vector<std::string> PlanQuantNames() { return {"bf16", "f16", "q8_0", "q4_0", "q4_k", "gptq-int4", "awq-int4"}; }

Result<int64_t> WeightBytes(const ModelConfig& c, const std::string& quant) {
  QB_ASSIGN_OR_RETURN(Roles r, RolesFor(quant));
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), i = c.intermediate_size;
  int64_t per_layer = MatrixBytes(q, h, r.matrices) + 2 * MatrixBytes(kv, h, r.matrices) + MatrixBytes(h, q, r.matrices) +
                      2 * MatrixBytes(i, h, r.matrices) + MatrixBytes(h, i, r.matrices);
  per_layer += 4 * (2 * h + q + 2 * kv);  // two norms and the q/k/v biases, f32
  int64_t bytes = c.num_layers * per_layer + 4 * h;
  if (c.tie_word_embeddings) {
    bytes += MatrixBytes(c.vocab_size, h, r.output);
  } else {
    bytes += MatrixBytes(c.vocab_size, h, r.embedding) + MatrixBytes(c.vocab_size, h, r.output);
  }
  return bytes;
}

int64_t KvBytesPerToken(const ModelConfig& c, DType kv_dtype) {
  return 2 * c.num_layers * RowBytes(kv_dtype, c.num_kv_heads * c.head_dim);
}

int64_t ActivationBytes(const ModelConfig& c, const StepShape& s) {
  const int64_t h = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), i = c.intermediate_size;
  // Residual, normed input, attention output, projections and the MLP's gate, up and product,
  // in f32, plus their 8-bit copies for quantized matrices.
  // Tensor parallel ranks split q, kv and the intermediate width, but each holds its own residual,
  // normed input and sublayer output (and 8-bit copy), and its part of the logits until joined.
  const int64_t ranks = std::max<int64_t>(1, s.tensor_parallel);
  const int64_t per_token = 4 * (4 * h + 2 * q + 2 * kv + 3 * i) + (h + i + q) + (ranks - 1) * (4 * 3 * h + h);
  const int64_t rows = std::min(s.max_num_seqs, s.max_batch_tokens);
  // Logits (f32) and the sampler's probabilities and candidate indices for each row.
  const int64_t logits = rows * c.vocab_size * (ranks > 1 ? 20 : 16);
  const int64_t attention = s.threads * s.max_total_tokens * 4 * 2;
  return s.max_batch_tokens * per_token + logits + attention;
}

DraftMemory DraftModelMemory(const ModelConfig& draft, int64_t max_seqs, int64_t max_total_tokens, int64_t block_size,
                             DType kv_dtype, int64_t threads) {
  const int64_t per_seq = max_total_tokens > 0 ? std::min(max_total_tokens, kDraftTokensPerSeq) : kDraftTokensPerSeq;
  DraftMemory m;
  m.kv_blocks = max_seqs * ((per_seq + block_size - 1) / block_size);
  m.kv_bytes = m.kv_blocks * block_size * KvBytesPerToken(draft, kv_dtype);
  StepShape step;
  step.max_batch_tokens = kDraftMaxBatchTokens;
  step.max_num_seqs = max_seqs;
  step.max_total_tokens = per_seq;
  step.threads = threads;
  m.activation_bytes = ActivationBytes(draft, step);
  return m;
}

Result<MemoryPlan> PlanMemory(const PlanInput& in) {
  if (in.batch < 1 || in.max_batch_tokens < 1 || in.threads < 1)
    return InvalidArgument("batch, max batch tokens and threads must be positive");
  MemoryPlan p;
  if (in.weights_bytes > 0) {
    p.weights_bytes = in.weights_bytes;
  } else {
    QB_ASSIGN_OR_RETURN(p.weights_bytes, WeightBytes(in.config, in.quant));
  }
  p.context = in.context > 0 ? in.context : in.config.max_position_embeddings;
  if (p.context > in.config.max_position_embeddings)
    return InvalidArgument(fmt::format("a context of {} exceeds the model's {}", p.context,
                                       in.config.max_position_embeddings));
  p.kv_bytes_per_token = KvBytesPerToken(in.config, in.kv_dtype);
  p.kv_bytes_per_sequence = p.kv_bytes_per_token * p.context;
  p.kv_bytes = p.kv_bytes_per_sequence * in.batch;
  StepShape step;
  step.max_batch_tokens = in.max_batch_tokens;
  step.max_num_seqs = in.batch;
  step.max_total_tokens = p.context;
  step.threads = in.threads;
  step.tensor_parallel = in.cpu_tensor_parallel;
  p.activation_bytes = ActivationBytes(in.config, step);
  const int64_t connections = in.connections > 0 ? in.connections : 4 * in.batch;
  p.overhead_bytes = kRuntimeBaseBytes + kTokenizerBytes + connections * kConnectionBytes;
  p.total_bytes = p.weights_bytes + p.kv_bytes + p.activation_bytes + p.overhead_bytes;
  if (in.draft) {
    if (in.draft->weights_bytes > 0) {
      p.draft_weights_bytes = in.draft->weights_bytes;
    } else {
      QB_ASSIGN_OR_RETURN(p.draft_weights_bytes, WeightBytes(in.draft->config, in.draft->quant));
    }
    p.draft = DraftModelMemory(in.draft->config, std::min(in.draft->max_seqs, in.batch), p.context, 16, in.kv_dtype,
                               in.threads);
    p.total_bytes += p.draft_weights_bytes + p.draft.kv_bytes + p.draft.activation_bytes;
  }
  if (in.lora_adapters < 0 || in.lora_rank < 1) return InvalidArgument("--lora must be >= 0 and --lora-rank >= 1");
  if (in.lora_adapters > 0) {
    p.lora_bytes = in.lora_adapters * LoraAdapterBytes(in.config, in.lora_rank, in.lora_dtype) + LoraScratchBytes(in.config, in.lora_rank);
    p.total_bytes += p.lora_bytes;
  }
  return p;
}

}  // namespace qb
