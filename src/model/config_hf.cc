// config.json and generation_config.json (Hugging Face layout) to ModelConfig.
#include <fmt/format.h>

#include "model/config.h"

namespace qb {

namespace {

// eos_token_id may be one id or a list of ids.
Result<std::vector<int64_t>> ParseIdList(const Json& j, const char* key, const std::string& what) {
  std::vector<int64_t> ids;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ids;
  if (it->is_number_integer()) return std::vector<int64_t>{it->get<int64_t>()};
  if (it->is_array()) {
    for (const auto& v : *it) {
      if (!v.is_number_integer()) return InvalidArgument(fmt::format("{}: {} must hold integers", what, key));
      ids.push_back(v.get<int64_t>());
    }
    return ids;
  }
  return InvalidArgument(fmt::format("{}: {} must be an integer or a list of integers", what, key));
}

Result<RopeScaling> ParseRopeScaling(const Json& j, const std::string& what) {
  RopeScaling r;
  auto it = j.find("rope_scaling");
  if (it == j.end() || it->is_null()) return r;
  if (!it->is_object()) return InvalidArgument(what + ": rope_scaling must be an object");
  const std::string w = what + ": rope_scaling";
  QB_ASSIGN_OR_RETURN(auto type, JsonString(*it, "rope_type", w));
  if (!type) {
    QB_ASSIGN_OR_RETURN(type, JsonString(*it, "type", w));
  }
  const std::string kind = type.value_or("default");
  if (kind == "default") return r;
  if (kind != "yarn")
    return Unimplemented(fmt::format("{} type \"{}\" is not supported (only \"yarn\", as Qwen2.5 uses for 128K)", w, kind));
  r.kind = RopeScaling::Kind::kYarn;
  QB_ASSIGN_OR_RETURN(auto factor, JsonNumber(*it, "factor", w));
  QB_ASSIGN_OR_RETURN(auto orig, JsonInt(*it, "original_max_position_embeddings", w));
  QB_ASSIGN_OR_RETURN(auto bf, JsonNumber(*it, "beta_fast", w));
  QB_ASSIGN_OR_RETURN(auto bs, JsonNumber(*it, "beta_slow", w));
  QB_ASSIGN_OR_RETURN(r.attention_factor, JsonNumber(*it, "attention_factor", w));
  if (!factor) return InvalidArgument(w + ": yarn needs \"factor\"");
  r.factor = *factor;
  r.original_max_position_embeddings = orig.value_or(0);
  r.beta_fast = bf.value_or(32.0);
  r.beta_slow = bs.value_or(1.0);
  return r;
}

Result<std::optional<QuantizationConfig>> ParseQuantization(const Json& j, const std::string& what) {
  auto it = j.find("quantization_config");
  if (it == j.end() || it->is_null()) return std::optional<QuantizationConfig>();
  if (!it->is_object()) return InvalidArgument(what + ": quantization_config must be an object");
  const std::string w = what + ": quantization_config";
  QuantizationConfig q;
  QB_ASSIGN_OR_RETURN(auto method, JsonString(*it, "quant_method", w));
  QB_ASSIGN_OR_RETURN(auto bits, JsonInt(*it, "bits", w));
  QB_ASSIGN_OR_RETURN(auto group, JsonInt(*it, "group_size", w));
  QB_ASSIGN_OR_RETURN(auto desc_act, JsonBool(*it, "desc_act", w));
  QB_ASSIGN_OR_RETURN(auto sym, JsonBool(*it, "sym", w));
  QB_ASSIGN_OR_RETURN(auto zp, JsonBool(*it, "zero_point", w));
  QB_ASSIGN_OR_RETURN(auto version, JsonString(*it, "version", w));
  QB_ASSIGN_OR_RETURN(auto format, JsonString(*it, "checkpoint_format", w));
  if (!method) return InvalidArgument(w + ": missing quant_method");
  q.method = *method;
  q.bits = bits.value_or(0);
  q.group_size = group.value_or(0);
  q.desc_act = desc_act.value_or(false);
  q.sym = sym.value_or(true);
  q.zero_point = zp.value_or(false);
  q.version = version ? *version : format.value_or("");
  return std::optional<QuantizationConfig>(q);
}

}  // namespace

Result<ModelConfig> ParseHfConfig(const Json& j, const std::string& what) {
  if (!j.is_object()) return InvalidArgument(what + ": not a JSON object");
  ModelConfig c;
  QB_ASSIGN_OR_RETURN(auto model_type, JsonString(j, "model_type", what));
  if (model_type && *model_type != "qwen2")
    return Unimplemented(fmt::format("{}: model_type \"{}\" is not supported (qwenbox runs qwen2: Qwen2 and Qwen2.5)",
                                     what, *model_type));
  auto required = [&](const char* key, int64_t* out) -> Status {
    auto v = JsonInt(j, key, what);
    if (!v.ok()) return v.status();
    if (!v->has_value()) return InvalidArgument(fmt::format("{}: missing \"{}\"", what, key));
    *out = **v;
    return Status::Ok();
  };
  QB_RETURN_IF_ERROR(required("hidden_size", &c.hidden_size));
  QB_RETURN_IF_ERROR(required("num_hidden_layers", &c.num_layers));
  QB_RETURN_IF_ERROR(required("num_attention_heads", &c.num_heads));
  QB_RETURN_IF_ERROR(required("intermediate_size", &c.intermediate_size));
  QB_RETURN_IF_ERROR(required("vocab_size", &c.vocab_size));
  QB_ASSIGN_OR_RETURN(auto kv, JsonInt(j, "num_key_value_heads", what));
  c.num_kv_heads = kv.value_or(c.num_heads);
  QB_ASSIGN_OR_RETURN(auto hd, JsonInt(j, "head_dim", what));
  if (hd) {
    c.head_dim = *hd;
  } else if (c.num_heads > 0) {
    if (c.hidden_size % c.num_heads != 0)
      return InvalidArgument(fmt::format("{}: hidden_size {} is not a multiple of num_attention_heads {}", what,
                                         c.hidden_size, c.num_heads));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  QB_ASSIGN_OR_RETURN(auto mpe, JsonInt(j, "max_position_embeddings", what));
  c.max_position_embeddings = mpe.value_or(32768);
  QB_ASSIGN_OR_RETURN(auto theta, JsonNumber(j, "rope_theta", what));
  c.rope_theta = theta.value_or(10000.0);
  QB_ASSIGN_OR_RETURN(auto eps, JsonNumber(j, "rms_norm_eps", what));
  c.rms_norm_eps = eps.value_or(1e-6);
  QB_ASSIGN_OR_RETURN(auto tie, JsonBool(j, "tie_word_embeddings", what));
  c.tie_word_embeddings = tie.value_or(false);
  QB_ASSIGN_OR_RETURN(auto sw_on, JsonBool(j, "use_sliding_window", what));
  c.use_sliding_window = sw_on.value_or(false);
  QB_ASSIGN_OR_RETURN(auto sw, JsonInt(j, "sliding_window", what));
  c.sliding_window = sw.value_or(0);
  QB_ASSIGN_OR_RETURN(auto mwl, JsonInt(j, "max_window_layers", what));
  c.max_window_layers = mwl.value_or(c.num_layers);
  QB_ASSIGN_OR_RETURN(c.rope_scaling, ParseRopeScaling(j, what));
  QB_ASSIGN_OR_RETURN(auto dt, JsonString(j, "torch_dtype", what));
  c.torch_dtype = dt.value_or("");
  QB_ASSIGN_OR_RETURN(c.bos_token_id, JsonInt(j, "bos_token_id", what));
  QB_ASSIGN_OR_RETURN(c.eos_token_ids, ParseIdList(j, "eos_token_id", what));
  QB_ASSIGN_OR_RETURN(c.quantization, ParseQuantization(j, what));
  Status s = c.Validate();
  if (!s.ok()) return s.WithContext(what);
  return c;
}

Result<GenerationConfig> ParseGenerationConfig(const Json& j, const std::string& what) {
  if (!j.is_object()) return InvalidArgument(what + ": not a JSON object");
  GenerationConfig g;
  QB_ASSIGN_OR_RETURN(auto ds, JsonBool(j, "do_sample", what));
  g.do_sample = ds.value_or(false);
  QB_ASSIGN_OR_RETURN(g.temperature, JsonNumber(j, "temperature", what));
  QB_ASSIGN_OR_RETURN(g.top_p, JsonNumber(j, "top_p", what));
  QB_ASSIGN_OR_RETURN(g.top_k, JsonInt(j, "top_k", what));
  QB_ASSIGN_OR_RETURN(g.repetition_penalty, JsonNumber(j, "repetition_penalty", what));
  QB_ASSIGN_OR_RETURN(g.max_new_tokens, JsonInt(j, "max_new_tokens", what));
  QB_ASSIGN_OR_RETURN(g.bos_token_id, JsonInt(j, "bos_token_id", what));
  QB_ASSIGN_OR_RETURN(g.pad_token_id, JsonInt(j, "pad_token_id", what));
  QB_ASSIGN_OR_RETURN(g.eos_token_ids, ParseIdList(j, "eos_token_id", what));
  return g;
}

}  // namespace qb
