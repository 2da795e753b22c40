#include "model/random_lora.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "formats/gguf_writer.h"
#include "formats/safetensors_writer.h"
#include "tensor/dequantize.h"
#include "util/json.h"

namespace qb {

namespace {

// A uniform value in [-1, 1) from 53 random bits (the same on every platform, unlike
// std::uniform_real_distribution).
double Uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1p-52 - 1.0; }

PendingTensor RandomMatrix(std::string name, DType dtype, int64_t rows, int64_t cols, double bound, uint64_t seed) {
  PendingTensor t{std::move(name), dtype, {rows, cols}, {}};
  t.fill = [dtype, n = rows * cols, bound, seed](uint8_t* dst) {
    std::mt19937_64 rng(seed);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = static_cast<float>(bound * Uniform(rng));
    QuantizeRow(dtype, v.data(), dst, n);  // f32 as is, f16/bf16 rounded
  };
  return t;
}

}  // namespace

Result<std::vector<LoraTarget>> ParseLoraTargets(const std::string& list) {
  std::vector<LoraTarget> out;
  if (list == "all" || list == "all-linear") return RandomLoraOptions{}.targets;
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const std::string name = list.substr(pos, comma - pos);
    bool found = false;
    for (int t = 0; t < kLoraTargets; ++t)
      if (LoraTargetName(static_cast<LoraTarget>(t)) == name) {
        if (std::find(out.begin(), out.end(), static_cast<LoraTarget>(t)) == out.end())
          out.push_back(static_cast<LoraTarget>(t));
        found = true;
      }
    if (!found)
      return InvalidArgument(fmt::format("unknown LoRA target \"{}\" (q_proj, k_proj, v_proj, o_proj, gate_proj, "
                                         "up_proj, down_proj, or all)",
                                         name));
    pos = comma + 1;
  }
  return out;
}

Status WriteRandomLora(const ModelConfig& config, const RandomLoraOptions& o) {
  namespace fs = std::filesystem;
  if (o.rank < 1) return InvalidArgument("the LoRA rank must be at least 1");
  if (!(o.alpha > 0)) return InvalidArgument("lora_alpha must be positive");
  const bool gguf = o.out.ends_with(".gguf");
  if (o.dtype != DType::kF32 && o.dtype != DType::kF16 && o.dtype != DType::kBF16 &&
      !(gguf && o.dtype == DType::kQ8_0 && o.rank % 32 == 0))
    return InvalidArgument("a LoRA adapter's type must be f32, f16 or bf16 (or q8_0 in a .gguf, with a rank that is a "
                           "multiple of 32)");
  if (gguf && o.rslora)
    return InvalidArgument("llama.cpp's GGUF adapters have no rsLoRA (its converter writes lora_alpha unchanged)");
  if (o.targets.empty()) return InvalidArgument("no LoRA targets");
  // The same matrices either way: by layer and target, A then B.
  std::vector<PendingTensor> tensors;
  for (int64_t l = 0; l < config.num_layers; ++l) {
    for (LoraTarget t : o.targets) {
      const LoraShape shape = LoraTargetShape(config, t);
      const bool mlp = t == LoraTarget::kGate || t == LoraTarget::kUp || t == LoraTarget::kDown;
      const std::string peft =
          fmt::format("base_model.model.model.layers.{}.{}.{}", l, mlp ? "mlp" : "self_attn", LoraTargetName(t));
      const std::string ggml = fmt::format("blk.{}.{}.weight", l, kGgufLoraNames[static_cast<size_t>(t)]);
      const uint64_t seed = o.seed * 0x100000001b3ull + static_cast<uint64_t>(l * kLoraTargets + static_cast<int>(t));
      // A x has about the variance of x; B (A x) about a twentieth of it, before the scale.
      tensors.push_back(RandomMatrix(gguf ? ggml + ".lora_a" : peft + ".lora_A.weight", o.dtype, o.rank, shape.in,
                                     std::sqrt(3.0 / static_cast<double>(shape.in)), 2 * seed + 1));
      tensors.push_back(RandomMatrix(gguf ? ggml + ".lora_b" : peft + ".lora_B.weight", o.dtype, shape.out, o.rank,
                                     0.05 * std::sqrt(3.0 / static_cast<double>(o.rank)), 2 * seed + 2));
    }
  }
  if (gguf) {
    // As llama.cpp's convert_lora_to_gguf.py writes it.
    GgufWriter w;
    w.Add("general.architecture", GgufString("qwen2"));
    w.Add("general.type", GgufString("adapter"));
    w.Add("adapter.type", GgufString("lora"));
    w.Add("adapter.lora.alpha", GgufF32(static_cast<float>(o.alpha)));
    for (auto& t : tensors) w.AddTensor(std::move(t));
    return w.Write(o.out);
  }
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (ec) return IoError(fmt::format("{}: cannot create the directory: {}", o.out, ec.message()));
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  for (auto& t : tensors) w.AddTensor(std::move(t));
  QB_RETURN_IF_ERROR(w.Write((fs::path(o.out) / "adapter_model.safetensors").string()));

  nlohmann::ordered_json j;
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = o.base_model;
  j["r"] = o.rank;
  j["lora_alpha"] = o.alpha;
  j["lora_dropout"] = 0.0;
  j["use_rslora"] = o.rslora;
  j["use_dora"] = false;
  j["fan_in_fan_out"] = false;
  j["bias"] = "none";
  std::vector<std::string> names;
  for (LoraTarget t : o.targets) names.emplace_back(LoraTargetName(t));
  j["target_modules"] = names;
  j["modules_to_save"] = nullptr;
  j["inference_mode"] = true;
  std::ofstream f(fs::path(o.out) / "adapter_config.json");
  f << j.dump(2) << "\n";
  if (!f) return IoError(o.out + "/adapter_config.json: cannot write");
  return Status::Ok();
}

}  // namespace qb
