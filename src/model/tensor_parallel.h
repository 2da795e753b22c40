// Tensor parallelism (Megatron-LM's split of a transformer layer): the model's matrices are cut
// into `world` slices, one per rank, so that each rank computes its part of every layer and the
// ranks add up their partial outputs twice a layer (kernels/collective.h):
// - q, k, v (with their biases): by heads, each rank taking whole KV-head groups (its q heads
//   read only its kv heads), so attention and the KV cache need no communication; o_proj by the
//   matching input columns, its outputs summed over the ranks;
// - gate and up: by rows of the intermediate width; down by the matching input columns, summed;
// - lm_head and the embedding: by vocabulary rows; the logits are joined on rank 0, and an
//   embedding lookup is summed like a layer's output (the rank holding the token's row gives it,
//   the others zeros), so a tied embedding stays one tensor per rank;
// - the norms: whole on every rank (shared, not copied).
// Slices are cut before the CPU kernels' repacking (InterleaveWeights, FuseProjections), which
// then runs per rank. Row slices of a mapped checkpoint stay views of it; column slices (o_proj,
// down) are copies, cut at block boundaries of their type.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "model/config.h"
#include "model/qwen2.h"
#include "model/weights.h"
#include "util/status.h"

namespace qb {

struct TensorParallelShard {
  ModelConfig config;  // the rank's heads, kv heads and intermediate width; the rest as the model's
  Qwen2Weights weights;
};

// The checks that need only the model's shape and o_proj's type (nullopt: not checked): whole
// KV heads per rank, and o_proj's cut on a block boundary of its type (`qwenbox plan`, for a
// model it has no weights of).
Status CheckTensorParallelShape(const ModelConfig& config, int world, std::optional<DType> o_proj_type);
// Why `world` ranks cannot split this model (kv heads not divisible, a column cut inside a
// quantization block, GPTQ act-order on o_proj/down); OK when they can. Reads shapes only.
// `convert_to`: the matrices' type once --quant has converted them (checked before converting,
// which takes most of a load's time).
Status CheckTensorParallel(const ModelConfig& config, const Qwen2Weights& weights, int world,
                           std::optional<DType> convert_to = std::nullopt);
// The `world` slices of the weights (world >= 1; 1 returns the weights as they are). Takes the
// weights and lets go of each layer once it is cut: pass them moved to free what only the whole
// model held (a copy keeps the caller's).
Result<std::vector<TensorParallelShard>> ShardWeights(const ModelConfig& config, Qwen2Weights weights, int world);

// The weights of every rank together, what the ranks share (the norms) counted once.
WeightsSummary SummarizeShards(const std::vector<std::shared_ptr<const Qwen2Model>>& shards);

}  // namespace qb
