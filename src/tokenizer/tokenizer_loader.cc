// LoadTokenizer: tokenizer.json, vocab.json + merges.txt, or GGUF metadata.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
// simdjson's inlined accessors trip GCC 12's -Wnull-dereference (a false positive in the
// library's templates, instantiated here).
#pragma GCC diagnostic ignored "-Wnull-dereference"
#include <simdjson.h>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/json.h"

namespace qb {

namespace fs = std::filesystem;

namespace {

// The Qwen2 pre-tokenizer regex, as tokenizer.json spells it.
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

using Merges = std::vector<std::pair<std::string, std::string>>;

Result<std::string> ChatTemplateFromConfig(const Json& cfg) {
  auto it = cfg.find("chat_template");
  if (it == cfg.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array())  // [{"name": "default", "template": "..."}, ...]
    for (const Json& t : *it)
      if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
        return t["template"].get<std::string>();
  return std::string();
}

Result<Json> ReadOptionalJson(const fs::path& p) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return Json::object();
  return ReadJsonFile(p.string());
}

Result<std::shared_ptr<const Tokenizer>> Finish(std::vector<std::string> tokens, const Merges& merges,
                                                std::vector<AddedToken> added, std::string chat_template,
                                                const std::string& what) {
  // Added tokens are not BPE tokens.
  for (const auto& a : added)
    if (a.id >= 0 && static_cast<size_t>(a.id) < tokens.size()) tokens[static_cast<size_t>(a.id)].clear();
  auto bpe = BpeModel::Build(std::move(tokens), merges);
  if (!bpe.ok()) return bpe.status().WithContext(what);
  return std::shared_ptr<const Tokenizer>(
      std::make_shared<Tokenizer>(std::move(bpe).value(), std::move(added), std::move(chat_template)));
}

// The big JSON files (tokenizer.json, vocab.json: 151k entries) are read with simdjson: loading
// must stay well under 200 ms, and a DOM parser takes about that long for the text alone.
Status SimdError(simdjson::error_code e, const std::string& path, const char* what) {
  return DataLoss(fmt::format("{}: {}: {}", path, what, simdjson::error_message(e)));
}

Result<std::vector<std::string>> VocabFromObject(simdjson::dom::object vocab, const std::string& path) {
  int64_t max_id = -1;
  for (auto field : vocab) {
    int64_t id = 0;
    if (field.value.get_int64().get(id) || id < 0 || id > (1 << 24))
      return DataLoss(fmt::format("{}: token \"{}\" has an invalid id", path, field.key));
    max_id = std::max(max_id, id);
  }
  std::vector<std::string> tokens(static_cast<size_t>(max_id + 1));
  for (auto field : vocab) tokens[static_cast<size_t>(int64_t(field.value))] = std::string(field.key);
  return tokens;
}

Result<std::pair<std::string, std::string>> SplitMergeText(std::string_view s, const std::string& what) {
  const size_t sp = s.find(' ');
  if (sp == std::string::npos || sp == 0 || sp + 1 == s.size())
    return DataLoss(fmt::format("{}: merge \"{}\" is not two tokens", what, s));
  return std::make_pair(std::string(s.substr(0, sp)), std::string(s.substr(sp + 1)));
}

// qwenbox implements Qwen2's pre-tokenizer natively: a Split on exactly Qwen2's regex, then
// ByteLevel. Anything else would be tokenized wrongly, so it is refused.
Status CheckQwen2PreTokenizer(simdjson::dom::element tok, const std::string& path) {
  simdjson::dom::array list;
  if (tok["pre_tokenizer"]["pretokenizers"].get_array().get(list))
    return Unimplemented(path + ": the pre-tokenizer is not Qwen2's (Split + ByteLevel)");
  bool split = false, byte_level = false;
  for (simdjson::dom::element p : list) {
    std::string_view type;
    if (p["type"].get_string().get(type)) continue;
    if (type == "ByteLevel") byte_level = true;
    if (type == "Split") {
      std::string_view regex;
      if (p["pattern"]["Regex"].get_string().get(regex) || regex != kQwen2Regex)
        return Unimplemented(path + ": the pre-tokenizer regex is not Qwen2's; qwenbox implements Qwen2's split natively");
      split = true;
    }
  }
  if (!split || !byte_level) return Unimplemented(path + ": the pre-tokenizer is not Qwen2's (Split + ByteLevel)");
  return Status::Ok();
}

Result<std::shared_ptr<const Tokenizer>> FromTokenizerJsonText(const simdjson::padded_string& text, const Json& cfg,
                                                               const std::string& path) {
  simdjson::dom::parser parser;
  simdjson::dom::element tok;
  if (auto e = parser.parse(text).get(tok)) return SimdError(e, path, "invalid JSON");
  simdjson::dom::object model;
  if (tok["model"].get_object().get(model)) return DataLoss(path + ": no \"model\" object");
  std::string_view type;
  if (model["type"].get_string().get(type)) type = "BPE";
  if (type != "BPE")
    return Unimplemented(fmt::format("{}: model type {} is not supported (qwenbox reads byte-level BPE)", path, type));
  QB_RETURN_IF_ERROR(CheckQwen2PreTokenizer(tok, path));
  simdjson::dom::object vocab;
  if (model["vocab"].get_object().get(vocab)) return DataLoss(path + ": no model.vocab object");
  QB_ASSIGN_OR_RETURN(std::vector<std::string> tokens, VocabFromObject(vocab, path));
  Merges merges;
  simdjson::dom::array merge_list;
  if (!model["merges"].get_array().get(merge_list)) {
    merges.reserve(merge_list.size());
    for (simdjson::dom::element m : merge_list) {
      std::string_view one;
      simdjson::dom::array two;
      if (!m.get_string().get(one)) {
        QB_ASSIGN_OR_RETURN(auto pair, SplitMergeText(one, path));
        merges.push_back(std::move(pair));
      } else if (!m.get_array().get(two) && two.size() == 2 && two.at(0).is_string() && two.at(1).is_string()) {
        merges.emplace_back(std::string(std::string_view(two.at(0))), std::string(std::string_view(two.at(1))));
      } else {
        return DataLoss(path + ": a merge is neither \"a b\" nor [\"a\", \"b\"]");
      }
    }
  }
  std::vector<AddedToken> added;
  simdjson::dom::array added_list;
  if (!tok["added_tokens"].get_array().get(added_list))
    for (simdjson::dom::element a : added_list) {
      int64_t id = 0;
      std::string_view content;
      bool special = false;
      if (a["id"].get_int64().get(id) || a["content"].get_string().get(content))
        return DataLoss(path + ": an added token lacks an integer id or a string content");
      if (a["special"].get_bool().get(special)) special = false;
      added.push_back({static_cast<int32_t>(id), std::string(content), special});
    }
  QB_ASSIGN_OR_RETURN(std::string tmpl, ChatTemplateFromConfig(cfg));
  return Finish(std::move(tokens), merges, std::move(added), std::move(tmpl), path);
}

Result<std::shared_ptr<const Tokenizer>> FromTokenizerJson(const fs::path& dir) {
  const std::string path = (dir / "tokenizer.json").string();
  simdjson::padded_string text;
  if (auto e = simdjson::padded_string::load(path).get(text)) return SimdError(e, path, "cannot read");
  QB_ASSIGN_OR_RETURN(Json cfg, ReadOptionalJson(dir / "tokenizer_config.json"));
  return FromTokenizerJsonText(text, cfg, path);
}

Result<std::shared_ptr<const Tokenizer>> FromVocabAndMerges(const fs::path& dir) {
  const std::string vocab_path = (dir / "vocab.json").string(), merges_path = (dir / "merges.txt").string();
  simdjson::padded_string vocab_text;
  if (auto e = simdjson::padded_string::load(vocab_path).get(vocab_text)) return SimdError(e, vocab_path, "cannot read");
  simdjson::dom::parser parser;
  simdjson::dom::object vocab;
  if (auto e = parser.parse(vocab_text).get_object().get(vocab)) return SimdError(e, vocab_path, "not a JSON object");
  QB_ASSIGN_OR_RETURN(std::vector<std::string> tokens, VocabFromObject(vocab, vocab_path));
  QB_ASSIGN_OR_RETURN(std::string text, ReadFileToString(merges_path));
  Merges merges;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    QB_ASSIGN_OR_RETURN(auto pair, SplitMergeText(line, merges_path));
    merges.push_back(std::move(pair));
  }
  QB_ASSIGN_OR_RETURN(Json cfg, ReadOptionalJson(dir / "tokenizer_config.json"));
  std::vector<AddedToken> added;
  if (auto it = cfg.find("added_tokens_decoder"); it != cfg.end() && it->is_object())
    for (auto a = it->begin(); a != it->end(); ++a) {
      int32_t id = 0;
      if (std::sscanf(a.key().c_str(), "%d", &id) != 1 || !a->is_object() || !a->contains("content"))
        return DataLoss(fmt::format("{}/tokenizer_config.json: bad added_tokens_decoder entry {}", dir.string(), a.key()));
      added.push_back({id, (*a)["content"].get<std::string>(), a->value("special", false)});
    }
  QB_ASSIGN_OR_RETURN(std::string tmpl, ChatTemplateFromConfig(cfg));
  return Finish(std::move(tokens), merges, std::move(added), std::move(tmpl), vocab_path);
}

Result<std::shared_ptr<const Tokenizer>> FromGguf(const std::string& path) {
  QB_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path));
  const auto model = g.GetString("tokenizer.ggml.model");
  if (!model) return NotFound(path + ": no tokenizer in the GGUF metadata (tokenizer.ggml.model)");
  if (*model != "gpt2")
    return Unimplemented(fmt::format("{}: tokenizer model \"{}\" is not supported (qwenbox reads gpt2-style BPE)", path, *model));
  const auto pre = g.GetString("tokenizer.ggml.pre").value_or("default");
  if (pre != "qwen2")
    return Unimplemented(fmt::format("{}: pre-tokenizer \"{}\" is not supported (qwenbox implements qwen2)", path, pre));
  const GgufValue* tv = g.Find("tokenizer.ggml.tokens");
  const GgufValue* mv = g.Find("tokenizer.ggml.merges");
  const GgufValue* yv = g.Find("tokenizer.ggml.token_type");
  if (!tv || !tv->AsArray() || !mv || !mv->AsArray())
    return DataLoss(path + ": tokenizer.ggml.tokens or tokenizer.ggml.merges is missing");
  const auto& items = tv->AsArray()->items;
  const GgufArray* types = yv ? yv->AsArray() : nullptr;
  std::vector<std::string> tokens(items.size());
  std::vector<AddedToken> added;
  constexpr int64_t kNormal = 1, kControl = 3, kUserDefined = 4;
  for (size_t id = 0; id < items.size(); ++id) {
    const std::string* s = items[id].AsString();
    if (s == nullptr) return DataLoss(fmt::format("{}: token {} is not a string", path, id));
    const int64_t type = types && id < types->items.size() ? types->items[id].AsInt().value_or(kNormal) : kNormal;
    if (type == kNormal) tokens[id] = *s;
    else if (type == kControl || type == kUserDefined)
      added.push_back({static_cast<int32_t>(id), *s, type == kControl});
  }
  Merges merges;
  merges.reserve(mv->AsArray()->items.size());
  for (const auto& m : mv->AsArray()->items) {
    if (!m.AsString()) return DataLoss(path + ": a merge is not a string");
    QB_ASSIGN_OR_RETURN(auto pair, SplitMergeText(*m.AsString(), path));
    merges.push_back(std::move(pair));
  }
  return Finish(std::move(tokens), merges, std::move(added), g.GetString("tokenizer.chat_template").value_or(""), path);
}

}  // namespace

Result<std::shared_ptr<const Tokenizer>> LoadTokenizerFromText(std::string_view tokenizer_json,
                                                               std::string_view tokenizer_config_json,
                                                               const std::string& what) {
  QB_ASSIGN_OR_RETURN(Json cfg, ParseJson(tokenizer_config_json, what + " tokenizer_config.json"));
  return FromTokenizerJsonText(simdjson::padded_string(tokenizer_json), cfg, what + " tokenizer.json");
}

Result<std::shared_ptr<const Tokenizer>> LoadTokenizer(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound(fmt::format("{}: no such file or directory", path));
  if (fs::is_regular_file(path, ec)) {
    if (fs::path(path).extension() == ".gguf" || fs::path(path).extension() != ".json") return FromGguf(path);
    return FromTokenizerJson(fs::path(path).parent_path());
  }
  const fs::path dir(path);
  if (fs::exists(dir / "tokenizer.json", ec)) return FromTokenizerJson(dir);
  if (fs::exists(dir / "vocab.json", ec) && fs::exists(dir / "merges.txt", ec)) return FromVocabAndMerges(dir);
  return NotFound(fmt::format("{}: no tokenizer.json, nor vocab.json + merges.txt", path));
}

}  // namespace qb
