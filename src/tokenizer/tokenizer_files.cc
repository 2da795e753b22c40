#include "tokenizer/tokenizer_files.h"

#include <fmt/format.h>

#include "assets/assets.h"
#include "formats/gguf_writer.h"
#include "util/json.h"

namespace qb {

namespace {

constexpr int64_t kQwen25Tokens = 151665;  // 151,643 BPE tokens + 22 added tokens
constexpr const char* kEndOfText = "<|endoftext|>";

// A merge is "a b" (older tokenizer.json) or ["a", "b"] (newer).
Result<std::pair<std::string, std::string>> SplitMerge(const Json& m) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t sp = s.find(' ');
    if (sp == std::string::npos) return DataLoss(fmt::format("merge \"{}\" has no space", s));
    return std::make_pair(s.substr(0, sp), s.substr(sp + 1));
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
    return std::make_pair(m[0].get<std::string>(), m[1].get<std::string>());
  return DataLoss("a merge is neither \"a b\" nor [\"a\", \"b\"]");
}

Result<TokenizerFiles> Subset(int64_t vocab_size) {
  QB_ASSIGN_OR_RETURN(Json tok, ParseJson(assets::Qwen25TokenizerJson(), "built-in tokenizer.json"));
  const int64_t n_regular = vocab_size - 1;
  Json& model = tok["model"];
  Json vocab = Json::object();
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it)
    if (it->get<int64_t>() < n_regular) vocab[it.key()] = *it;
  Json merges = Json::array();
  for (const Json& m : model["merges"]) {
    QB_ASSIGN_OR_RETURN(auto parts, SplitMerge(m));
    auto a = vocab.find(parts.first), b = vocab.find(parts.second), r = vocab.find(parts.first + parts.second);
    if (a != vocab.end() && b != vocab.end() && r != vocab.end()) merges.push_back(m);
  }
  model["vocab"] = std::move(vocab);
  model["merges"] = std::move(merges);
  tok["added_tokens"] = Json::array({{{"id", n_regular},
                                      {"content", kEndOfText},
                                      {"single_word", false},
                                      {"lstrip", false},
                                      {"rstrip", false},
                                      {"normalized", false},
                                      {"special", true}}});
  nlohmann::ordered_json cfg;
  cfg["add_bos_token"] = false;
  cfg["add_prefix_space"] = false;
  cfg["added_tokens_decoder"][std::to_string(n_regular)] = {
      {"content", kEndOfText}, {"lstrip", false},  {"normalized", false},
      {"rstrip", false},       {"single_word", false}, {"special", true}};
  cfg["bos_token"] = nullptr;
  cfg["clean_up_tokenization_spaces"] = false;
  cfg["eos_token"] = kEndOfText;
  cfg["errors"] = "replace";
  cfg["model_max_length"] = 4096;
  cfg["pad_token"] = kEndOfText;
  cfg["split_special_tokens"] = false;
  cfg["tokenizer_class"] = "Qwen2Tokenizer";
  cfg["unk_token"] = nullptr;
  return TokenizerFiles{tok.dump(2), cfg.dump(2)};
}

}  // namespace

Result<TokenizerFiles> Qwen25TokenizerFiles(int64_t vocab_size) {
  if (vocab_size >= kQwen25Tokens)
    return TokenizerFiles{std::string(assets::Qwen25TokenizerJson()),
                          std::string(assets::Qwen25TokenizerConfigJson())};
  if (vocab_size < 257)
    return InvalidArgument(fmt::format("a vocabulary of {} cannot hold the 256 byte tokens and <|endoftext|>", vocab_size));
  return Subset(vocab_size);
}

Result<TokenizerFiles> ReadTokenizerFiles(const std::string& dir) {
  TokenizerFiles f;
  QB_ASSIGN_OR_RETURN(f.tokenizer_json, ReadFileToString(dir + "/tokenizer.json"));
  auto cfg = ReadFileToString(dir + "/tokenizer_config.json");
  f.tokenizer_config_json = cfg.ok() ? *cfg : "{}";
  return f;
}

Result<std::vector<std::pair<std::string, GgufValue>>> TokenizerGgufMetadata(
    const TokenizerFiles& files, int64_t vocab_size, const SpecialTokenIds& ids) {
  QB_ASSIGN_OR_RETURN(Json tok, ParseJson(files.tokenizer_json, "tokenizer.json"));
  QB_ASSIGN_OR_RETURN(Json cfg, ParseJson(files.tokenizer_config_json, "tokenizer_config.json"));
  constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;
  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<int32_t> types(static_cast<size_t>(vocab_size), kUnused);
  std::vector<bool> set(static_cast<size_t>(vocab_size), false);
  auto put = [&](int64_t id, const std::string& text, int32_t type) {
    if (id < 0 || id >= vocab_size) return;
    tokens[static_cast<size_t>(id)] = text;
    types[static_cast<size_t>(id)] = type;
    set[static_cast<size_t>(id)] = true;
  };
  for (auto it = tok["model"]["vocab"].begin(); it != tok["model"]["vocab"].end(); ++it)
    put(it->get<int64_t>(), it.key(), kNormal);
  for (const Json& a : tok["added_tokens"])
    put(a["id"].get<int64_t>(), a["content"].get<std::string>(), a.value("special", false) ? kControl : kUserDefined);
  for (int64_t i = 0; i < vocab_size; ++i)
    if (!set[static_cast<size_t>(i)]) tokens[static_cast<size_t>(i)] = fmt::format("[PAD{}]", i);
  std::vector<std::string> merges;
  for (const Json& m : tok["model"]["merges"]) {
    QB_ASSIGN_OR_RETURN(auto parts, SplitMerge(m));
    merges.push_back(parts.first + " " + parts.second);
  }
  std::vector<std::pair<std::string, GgufValue>> md;
  md.emplace_back("tokenizer.ggml.model", GgufString("gpt2"));
  md.emplace_back("tokenizer.ggml.pre", GgufString("qwen2"));
  md.emplace_back("tokenizer.ggml.tokens", GgufStringArray(tokens));
  md.emplace_back("tokenizer.ggml.token_type", GgufI32Array(types));
  md.emplace_back("tokenizer.ggml.merges", GgufStringArray(merges));
  md.emplace_back("tokenizer.ggml.eos_token_id", GgufU32(static_cast<uint32_t>(ids.eos)));
  md.emplace_back("tokenizer.ggml.padding_token_id", GgufU32(static_cast<uint32_t>(ids.pad)));
  md.emplace_back("tokenizer.ggml.bos_token_id", GgufU32(static_cast<uint32_t>(ids.bos)));
  md.emplace_back("tokenizer.ggml.add_bos_token", GgufBool(false));
  if (auto ct = cfg.find("chat_template"); ct != cfg.end() && ct->is_string())
    md.emplace_back("tokenizer.chat_template", GgufString(ct->get<std::string>()));
  return md;
}

}  // namespace qb
