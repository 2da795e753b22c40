#include "loadtest/workload.h"

#include <fstream>

#include <fmt/format.h>

namespace qb::loadtest {

namespace {

// Ordinary tokens only: the byte-level BPE vocabulary below the first added token (151,643),
// so a prompt never contains a control token.
constexpr int32_t kFirstAddedToken = 151643;

std::string DecodeOrEmpty(const Tokenizer& t, const std::vector<int32_t>& ids) {
  auto r = t.Decode(ids);
  return r.ok() ? *r : std::string();
}

// Well-formed UTF-8 (shortest forms, no surrogates) with no C0 control other than tab/newline.
bool IsCleanUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 && c != '\n' && c != '\t') return false;
      if (c == 0x7f) return false;
      ++i;
      continue;
    }
    int n = 0;
    uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) n = 1, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) n = 2, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) n = 3, cp = c & 0x07;
    else return false;
    if (i + static_cast<size_t>(n) >= s.size()) return false;  // truncated
    for (int k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += static_cast<size_t>(n) + 1;
  }
  return true;
}

}  // namespace

std::vector<LoadRequest> RandomWorkload(const Tokenizer& tokenizer, int64_t count, const LengthDist& input,
                                        const LengthDist& output, uint64_t seed) {
  std::mt19937_64 rng(seed);
  // Tokens whose text is whole UTF-8 without control characters, so every prompt is valid JSON
  // text (a byte-level token may hold half a character).
  std::vector<int32_t> clean;
  const int32_t vocab = std::min(tokenizer.vocab_size(), kFirstAddedToken);
  for (int32_t id = 0; id < vocab; ++id) {
    auto text = tokenizer.Decode({id});
    if (text.ok() && !text->empty() && IsCleanUtf8(*text)) clean.push_back(id);
  }
  std::uniform_int_distribution<size_t> pick(0, clean.size() - 1);
  std::vector<LoadRequest> out;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t want = input.Sample(rng);
    // Decoding and encoding again merges some neighbours: add tokens until the text encodes to
    // at least `want`, then cut there (dropping a last token that would split a character).
    std::vector<int32_t> ids, encoded;
    while (static_cast<int64_t>(encoded.size()) < want) {
      for (int64_t k = 0; k < 16 || static_cast<int64_t>(ids.size()) < want; ++k) ids.push_back(clean[pick(rng)]);
      encoded = tokenizer.Encode(DecodeOrEmpty(tokenizer, ids), /*parse_special=*/false);
    }
    encoded.resize(static_cast<size_t>(want));
    std::string text = DecodeOrEmpty(tokenizer, encoded);
    while (!encoded.empty() && !IsCleanUtf8(text)) {
      encoded.pop_back();
      text = DecodeOrEmpty(tokenizer, encoded);
    }
    LoadRequest r;
    r.prompt = std::move(text);
    r.prompt_tokens = static_cast<int64_t>(encoded.size());
    r.max_tokens = output.Sample(rng);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<LoadRequest>> DatasetWorkload(const std::string& path, const Tokenizer& tokenizer, int64_t count,
                                                 const LengthDist& output, uint64_t seed) {
  std::ifstream in(path);
  if (!in) return NotFound(fmt::format("{}: cannot open the dataset", path));
  std::mt19937_64 rng(seed);
  std::vector<LoadRequest> lines;
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto j = ParseJson(line, fmt::format("{} line {}", path, n));
    if (!j.ok()) return j.status();
    if (!j->is_object()) return InvalidArgument(fmt::format("{} line {}: not a JSON object", path, n));
    LoadRequest r;
    if (j->contains("prompt") && (*j)["prompt"].is_string()) {
      r.prompt = (*j)["prompt"].get<std::string>();
      r.prompt_tokens = static_cast<int64_t>(tokenizer.Encode(r.prompt, false).size());
    } else if (j->contains("messages") && (*j)["messages"].is_array()) {
      r.messages = (*j)["messages"];
      for (const Json& m : r.messages)
        if (m.contains("content") && m["content"].is_string())
          r.prompt_tokens += static_cast<int64_t>(tokenizer.Encode(m["content"].get<std::string>(), false).size());
    } else {
      return InvalidArgument(fmt::format("{} line {}: needs \"prompt\" (a string) or \"messages\" (an array)", path, n));
    }
    for (const char* key : {"max_tokens", "output_len"})
      if (j->contains(key)) {
        if (!(*j)[key].is_number_integer() || (*j)[key].get<int64_t>() < 1)
          return InvalidArgument(fmt::format("{} line {}: \"{}\" must be a positive integer", path, n, key));
        r.max_tokens = (*j)[key].get<int64_t>();
      }
    lines.push_back(std::move(r));
  }
  if (lines.empty()) return InvalidArgument(fmt::format("{}: the dataset has no requests", path));
  std::vector<LoadRequest> out;
  for (int64_t i = 0; i < count; ++i) {
    LoadRequest r = lines[static_cast<size_t>(i) % lines.size()];
    if (r.max_tokens == 0) r.max_tokens = output.Sample(rng);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace qb::loadtest
