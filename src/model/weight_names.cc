#include "model/weight_names.h"

#include <fmt/format.h>

namespace qb {

namespace {

std::string HfName(WeightRole role, int64_t l) {
  const std::string p = fmt::format("model.layers.{}.", l);
  switch (role) {
    case WeightRole::kTokenEmbedding: return "model.embed_tokens.weight";
    case WeightRole::kAttnNorm: return p + "input_layernorm.weight";
    case WeightRole::kQ: return p + "self_attn.q_proj.weight";
    case WeightRole::kQBias: return p + "self_attn.q_proj.bias";
    case WeightRole::kK: return p + "self_attn.k_proj.weight";
    case WeightRole::kKBias: return p + "self_attn.k_proj.bias";
    case WeightRole::kV: return p + "self_attn.v_proj.weight";
    case WeightRole::kVBias: return p + "self_attn.v_proj.bias";
    case WeightRole::kO: return p + "self_attn.o_proj.weight";
    case WeightRole::kFfnNorm: return p + "post_attention_layernorm.weight";
    case WeightRole::kGate: return p + "mlp.gate_proj.weight";
    case WeightRole::kUp: return p + "mlp.up_proj.weight";
    case WeightRole::kDown: return p + "mlp.down_proj.weight";
    case WeightRole::kFinalNorm: return "model.norm.weight";
    case WeightRole::kLmHead: return "lm_head.weight";
  }
  return "";
}

std::string GgufName(WeightRole role, int64_t l) {
  const std::string p = fmt::format("blk.{}.", l);
  switch (role) {
    case WeightRole::kTokenEmbedding: return "token_embd.weight";
    case WeightRole::kAttnNorm: return p + "attn_norm.weight";
    case WeightRole::kQ: return p + "attn_q.weight";
    case WeightRole::kQBias: return p + "attn_q.bias";
    case WeightRole::kK: return p + "attn_k.weight";
    case WeightRole::kKBias: return p + "attn_k.bias";
    case WeightRole::kV: return p + "attn_v.weight";
    case WeightRole::kVBias: return p + "attn_v.bias";
    case WeightRole::kO: return p + "attn_output.weight";
    case WeightRole::kFfnNorm: return p + "ffn_norm.weight";
    case WeightRole::kGate: return p + "ffn_gate.weight";
    case WeightRole::kUp: return p + "ffn_up.weight";
    case WeightRole::kDown: return p + "ffn_down.weight";
    case WeightRole::kFinalNorm: return "output_norm.weight";
    case WeightRole::kLmHead: return "output.weight";
  }
  return "";
}

}  // namespace

std::string WeightName(WeightNaming naming, WeightRole role, int64_t layer) {
  return naming == WeightNaming::kHuggingFace ? HfName(role, layer) : GgufName(role, layer);
}

}  // namespace qb
