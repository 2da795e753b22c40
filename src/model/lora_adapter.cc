#include "model/lora_adapter.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "tensor/dequantize.h"
#include "util/json.h"

namespace qb {

namespace {

constexpr std::array<std::string_view, kLoraTargets> kNames = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"};

struct AdapterConfig {
  double alpha = 0;
  int64_t r = 0;
  bool rslora = false;
};

// Whether a config value is absent or "empty" (null, false, "", [], {}).
bool IsUnset(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (it->is_boolean()) return !it->get<bool>();
  if (it->is_string()) return it->get<std::string>().empty();
  if (it->is_array() || it->is_object()) return it->empty();
  return false;
}

Result<AdapterConfig> ReadAdapterConfig(const std::string& file) {
  QB_ASSIGN_OR_RETURN(Json j, ReadJsonFile(file));
  if (!j.is_object()) return InvalidArgument(file + ": not a JSON object");
  QB_ASSIGN_OR_RETURN(auto type, JsonString(j, "peft_type", file));
  if (type && *type != "LORA")
    return Unimplemented(fmt::format("{}: peft_type \"{}\" is not supported (only LORA)", file, *type));
  if (!IsUnset(j, "use_dora"))
    return Unimplemented(file + ": DoRA adapters (use_dora) are not supported: merge it into the model instead");
  if (!IsUnset(j, "fan_in_fan_out"))
    return Unimplemented(file + ": fan_in_fan_out adapters (GPT-2's Conv1D layout) do not apply to Qwen2");
  if (auto bias = JsonString(j, "bias", file); !bias.ok()) {
    return bias.status();
  } else if (bias->value_or("none") != "none") {
    return Unimplemented(fmt::format("{}: bias \"{}\": adapters that train biases are not supported", file, **bias));
  }
  if (!IsUnset(j, "modules_to_save"))
    return Unimplemented(file + ": modules_to_save (whole copies of layers such as the embedding or lm_head) "
                                "is not supported: merge the adapter into the model instead");
  if (!IsUnset(j, "alpha_pattern"))
    return Unimplemented(file + ": alpha_pattern (per-module lora_alpha) is not supported");
  AdapterConfig c;
  QB_ASSIGN_OR_RETURN(auto r, JsonInt(j, "r", file));
  QB_ASSIGN_OR_RETURN(auto alpha, JsonNumber(j, "lora_alpha", file));
  QB_ASSIGN_OR_RETURN(auto rs, JsonBool(j, "use_rslora", file));
  if (!r || *r < 1) return InvalidArgument(file + ": \"r\" must be a positive integer");
  c.r = *r;
  c.alpha = alpha.value_or(8.0);  // PEFT's default
  if (!(c.alpha > 0) || !std::isfinite(c.alpha)) return InvalidArgument(file + ": \"lora_alpha\" must be positive");
  c.rslora = rs.value_or(false);
  return c;
}

struct TensorRole {
  int64_t layer = -1;
  LoraTarget target = LoraTarget::kQ;
  bool is_b = false;
};

bool Consume(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

// "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight" (also with ".default" before
// ".weight") -> layer 3, q, A. Errors name what is not supported.
Result<TensorRole> ParseTensorName(const std::string& file, const std::string& name) {
  const auto refuse = [&](std::string_view why) {
    return Unimplemented(fmt::format("{}: tensor \"{}\": {}", file, name, why));
  };
  if (name.find("embed_tokens") != std::string::npos || name.find("lora_embedding") != std::string::npos)
    return refuse("LoRA on the embedding is not supported");
  if (name.find("lm_head") != std::string::npos) return refuse("LoRA on lm_head is not supported");
  if (name.ends_with(".bias")) return refuse("trained biases are not supported");
  std::string_view s = name;
  Consume(s, "base_model.model.");
  TensorRole role;
  Consume(s, "model.");  // (absent when the adapter was made on a bare Qwen2Model)
  if (!Consume(s, "layers.")) return refuse("not a LoRA tensor of a Qwen2 decoder layer");
  const auto dot = s.find('.');
  int64_t layer = -1;
  if (dot == std::string_view::npos) return refuse("no layer number");
  const auto [end, ec] = std::from_chars(s.data(), s.data() + dot, layer);
  if (ec != std::errc() || end != s.data() + dot) return refuse("no layer number");
  role.layer = layer;
  s.remove_prefix(dot + 1);
  const bool attention = Consume(s, "self_attn.");
  if (!attention && !Consume(s, "mlp.")) return refuse("not in self_attn or mlp");
  bool found = false;
  // q, k, v and o are self_attn's; gate, up and down the mlp's.
  for (int t = attention ? 0 : 4; t < (attention ? 4 : kLoraTargets) && !found; ++t) {
    if (Consume(s, kNames[static_cast<size_t>(t)])) {
      role.target = static_cast<LoraTarget>(t);
      found = true;
    }
  }
  if (!found) return refuse("not one of q/k/v/o/gate/up/down_proj");
  if (Consume(s, ".lora_A")) {
    role.is_b = false;
  } else if (Consume(s, ".lora_B")) {
    role.is_b = true;
  } else {
    return refuse("neither lora_A nor lora_B");
  }
  Consume(s, ".default");
  if (s != ".weight") return refuse("not a LoRA weight");
  return role;
}

// A LoRA matrix's type and rank checked (`where`: the file and tensor, for the message).
Status CheckLoraMatrix(const Tensor& m, const std::string& where) {
  const DType t = m.dtype();
  if (t != DType::kF32 && t != DType::kF16 && t != DType::kBF16 && t != DType::kQ8_0)
    return Unimplemented(fmt::format("{} is {}; LoRA tensors must be F32, F16, BF16 or Q8_0", where, Name(t)));
  if (m.shape().size() != 2) return InvalidArgument(fmt::format("{} is not a matrix", where));
  return Status::Ok();
}

// B [out, r] as f32 [r, out], times `scale`.
Tensor ScaledTranspose(const Tensor& b, float scale) {
  const int64_t out = b.rows(), r = b.cols();
  std::vector<float> row(static_cast<size_t>(r));
  Tensor t = Tensor::Empty(DType::kF32, {r, out});
  for (int64_t o = 0; o < out; ++o) {
    DequantizeRow(b.dtype(), b.row(o), row.data(), r);
    for (int64_t k = 0; k < r; ++k) t.mutable_data<float>()[k * out + o] = scale * row[static_cast<size_t>(k)];
  }
  return t;
}

// One module's A and B as found in a file (views into it), with their names for messages.
struct FoundPair {
  Tensor a, b;
  std::string a_name, b_name;
};
using FoundLayers = std::vector<std::array<FoundPair, kLoraTargets>>;

// Puts a matrix in its slot; an error when the slot is taken (two tensors for one matrix).
Status Place(FoundLayers& found, const std::string& file, int64_t layer, LoraTarget target, bool is_b, Tensor m,
             const std::string& name, int64_t num_layers) {
  if (layer < 0 || layer >= num_layers)
    return InvalidArgument(
        fmt::format("{}: tensor \"{}\" is for layer {}, the model has {} layers", file, name, layer, num_layers));
  QB_RETURN_IF_ERROR(CheckLoraMatrix(m, fmt::format("{}: tensor \"{}\"", file, name)));
  FoundPair& f = found[static_cast<size_t>(layer)][static_cast<size_t>(target)];
  std::string& slot_name = is_b ? f.b_name : f.a_name;
  if (!slot_name.empty())
    return InvalidArgument(fmt::format("{}: tensors \"{}\" and \"{}\" are the same matrix", file, slot_name, name));
  slot_name = name;
  (is_b ? f.b : f.a) = std::move(m);
  return Status::Ok();
}

// The adapter from its matrices: each module's shapes checked against the model, A copied out of
// the file, B transposed and scaled by `scale_of(r)`.
template <typename ScaleOf>
Status BuildPairs(const FoundLayers& found, const ModelConfig& config, const std::string& file, ScaleOf scale_of,
                  LoraAdapter& a) {
  a.layers.resize(static_cast<size_t>(config.num_layers));
  std::array<bool, kLoraTargets> used{};
  for (int64_t l = 0; l < config.num_layers; ++l) {
    for (int t = 0; t < kLoraTargets; ++t) {
      const FoundPair& f = found[static_cast<size_t>(l)][static_cast<size_t>(t)];
      if (!f.a.defined() && !f.b.defined()) continue;
      const auto target = static_cast<LoraTarget>(t);
      const std::string where = fmt::format("{}: layer {} {}", file, l, LoraTargetName(target));
      if (!f.a.defined() || !f.b.defined())
        return InvalidArgument(fmt::format("{}: has lora_{} but not lora_{}", where, f.a.defined() ? "A" : "B",
                                           f.a.defined() ? "B" : "A"));
      const LoraShape want = LoraTargetShape(config, target);
      const Shape& sa = f.a.shape();
      const Shape& sb = f.b.shape();
      if (sa[1] != want.in || sb[0] != want.out || sb[1] != sa[0] || sa[0] < 1)
        return InvalidArgument(fmt::format(
            "{}: lora_A is {}, lora_B is {}; this model needs [r, {}] and [{}, r] (is the adapter for another model?)",
            where, ShapeToString(sa), ShapeToString(sb), want.in, want.out));
      const int64_t r = sa[0];
      LoraPair& p = a.layers[static_cast<size_t>(l)][static_cast<size_t>(t)];
      p.a = f.a.Copy();  // memory of its own, not the mapped file's
      p.bt = ScaledTranspose(f.b, static_cast<float>(scale_of(r)));
      a.rank = std::max(a.rank, r);
      a.parameters += p.a.numel() + p.bt.numel();
      a.bytes += static_cast<int64_t>(p.a.nbytes() + p.bt.nbytes());
      used[static_cast<size_t>(t)] = true;
    }
  }
  if (a.parameters == 0) return InvalidArgument(file + ": holds no LoRA tensors");
  for (int t = 0; t < kLoraTargets; ++t)
    if (used[static_cast<size_t>(t)]) a.targets.emplace_back(kNames[static_cast<size_t>(t)]);
  return Status::Ok();
}

// An adapter converted by llama.cpp (convert_lora_to_gguf.py): "blk.N.<proj>.weight.lora_a"
// [r, in] and ".lora_b" [out, r], scaled by adapter.lora.alpha / r as llama.cpp does.
Result<LoraAdapter> LoadGgufLora(const std::string& path, const ModelConfig& config, std::string name) {
  QB_ASSIGN_OR_RETURN(const GgufFile file, GgufFile::Open(path));
  const auto type = file.GetString("general.type");
  if (type != "adapter" || file.GetString("adapter.type") != "lora")
    return InvalidArgument(fmt::format("{}: not a LoRA adapter (general.type \"{}\", adapter.type \"{}\"; a model "
                                       "file goes in --model)",
                                       path, type.value_or(""), file.GetString("adapter.type").value_or("")));
  if (const auto arch = file.GetString("general.architecture"); arch && *arch != "qwen2")
    return InvalidArgument(fmt::format("{}: an adapter for a {} model, not a qwen2 one", path, *arch));
  if (file.Find("adapter.alora.invocation_tokens") != nullptr)
    return Unimplemented(fmt::format("{}: an activated LoRA (aLoRA, applied only after its invocation tokens) is not "
                                     "supported",
                                     path));
  // (Absent: 0, which llama.cpp takes as a scale of 1.)
  double alpha = 0.0;
  if (file.Find("adapter.lora.alpha") != nullptr) {
    const auto a = file.GetNumber("adapter.lora.alpha");
    if (!a || !std::isfinite(*a)) return InvalidArgument(fmt::format("{}: adapter.lora.alpha is not a finite number", path));
    alpha = *a;
  }
  FoundLayers found(static_cast<size_t>(config.num_layers));
  for (const GgufTensorInfo& info : file.tensors()) {
    std::string_view n = info.name;
    // Norm weights that mergekit's extracted adapters carry: llama.cpp skips them, and so does this.
    if (n.ends_with("_norm.weight")) {
      spdlog::warn("{}: tensor \"{}\" is not a LoRA matrix: skipped, as llama.cpp does", path, info.name);
      continue;
    }
    const bool is_a = n.ends_with(".weight.lora_a"), is_b = n.ends_with(".weight.lora_b");
    auto refuse = [&](std::string_view why) {
      return InvalidArgument(fmt::format("{}: tensor \"{}\": {}", path, info.name, why));
    };
    if (!is_a && !is_b) return refuse("not a LoRA matrix (blk.N.<projection>.weight.lora_a or .lora_b)");
    n.remove_suffix(std::string_view(".weight.lora_a").size());
    if (!Consume(n, "blk.")) return refuse("LoRA on the embedding or lm_head is not supported");
    const size_t dot = n.find('.');
    int64_t layer = -1;
    const auto [end, ec] = std::from_chars(n.data(), n.data() + std::min(dot, n.size()), layer);
    if (dot == std::string_view::npos || ec != std::errc() || end != n.data() + dot) return refuse("no layer number");
    const std::string_view proj = n.substr(dot + 1);
    const auto it = std::find(kGgufLoraNames.begin(), kGgufLoraNames.end(), proj);
    if (it == kGgufLoraNames.end()) return refuse("not one of the seven projections LoRA can update");
    QB_ASSIGN_OR_RETURN(Tensor m, file.Load(info));
    QB_RETURN_IF_ERROR(Place(found, path, layer, static_cast<LoraTarget>(it - kGgufLoraNames.begin()), is_b, std::move(m),
                             info.name, config.num_layers));
  }
  LoraAdapter a;
  a.name = std::move(name);
  a.path = path;
  a.alpha = alpha;
  // (llama.cpp: alpha 0 means a scale of 1.)
  QB_RETURN_IF_ERROR(BuildPairs(found, config, path, [alpha](int64_t r) { return alpha != 0 ? alpha / static_cast<double>(r) : 1.0; }, a));
  return a;
}

}  // namespace

std::string_view LoraTargetName(LoraTarget t) { return kNames[static_cast<size_t>(t)]; }

LoraShape LoraTargetShape(const ModelConfig& c, LoraTarget t) {
  switch (t) {
    case LoraTarget::kQ: return {c.hidden_size, c.q_dim()};
    case LoraTarget::kK:
    case LoraTarget::kV: return {c.hidden_size, c.kv_dim()};
    case LoraTarget::kO: return {c.q_dim(), c.hidden_size};
    case LoraTarget::kGate:
    case LoraTarget::kUp: return {c.hidden_size, c.intermediate_size};
    case LoraTarget::kDown: return {c.intermediate_size, c.hidden_size};
  }
  return {};
}

int64_t LoraAdapterBytes(const ModelConfig& config, int64_t rank, DType a_type) {
  int64_t in = 0, out = 0;
  for (int t = 0; t < kLoraTargets; ++t) {
    const LoraShape s = LoraTargetShape(config, static_cast<LoraTarget>(t));
    in += s.in;
    out += s.out;
  }
  return config.num_layers * (RowBytes(a_type, rank * in) + rank * out * static_cast<int64_t>(sizeof(float)));
}

Result<LoraAdapter> LoadLoraAdapter(const std::string& path, const ModelConfig& config, std::string name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec) && path.ends_with(".gguf")) return LoadGgufLora(path, config, std::move(name));
  if (!fs::is_directory(path, ec))
    return NotFound(fmt::format("{}: not a directory (a LoRA adapter is a directory holding adapter_config.json "
                                "and adapter_model.safetensors, or llama.cpp's .gguf)",
                                path));
  const std::string config_file = (fs::path(path) / "adapter_config.json").string();
  const std::string weights_file = (fs::path(path) / "adapter_model.safetensors").string();
  if (!fs::exists(config_file)) return NotFound(config_file + ": not found");
  if (!fs::exists(weights_file)) {
    if (fs::exists(fs::path(path) / "adapter_model.bin"))
      return Unimplemented(fmt::format("{}: only adapter_model.bin (a PyTorch pickle, which qwenbox does not read) is "
                                       "there: save the adapter with safe_serialization=True",
                                       path));
    return NotFound(weights_file + ": not found");
  }
  QB_ASSIGN_OR_RETURN(const AdapterConfig ac, ReadAdapterConfig(config_file));
  QB_ASSIGN_OR_RETURN(const SafetensorsFile file, SafetensorsFile::Open(weights_file));

  FoundLayers found(static_cast<size_t>(config.num_layers));
  for (const SafetensorsEntry& e : file.entries()) {
    QB_ASSIGN_OR_RETURN(const TensorRole role, ParseTensorName(weights_file, e.name));
    Tensor m = file.Load(e);
    QB_RETURN_IF_ERROR(Place(found, weights_file, role.layer, role.target, role.is_b, std::move(m), e.name, config.num_layers));
  }
  LoraAdapter a;
  a.name = std::move(name);
  a.path = path;
  a.alpha = ac.alpha;
  a.rslora = ac.rslora;
  // B's scale depends on its module's rank (A's rows), which PEFT's rank_pattern may set.
  QB_RETURN_IF_ERROR(BuildPairs(found, config, weights_file, [&ac](int64_t r) {
    return ac.rslora ? ac.alpha / std::sqrt(static_cast<double>(r)) : ac.alpha / static_cast<double>(r);
  }, a));
  return a;
}

}  // namespace qb
