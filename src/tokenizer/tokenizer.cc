#include "tokenizer/tokenizer.h"

#include <algorithm>

#include <fmt/format.h>

#include "tokenizer/pretokenizer.h"
#include "tokenizer/unicode.h"

namespace qb {

Tokenizer::Tokenizer(BpeModel bpe, std::vector<AddedToken> added, std::string chat_template)
    : bpe_(std::move(bpe)), added_(std::move(added)), chat_template_(std::move(chat_template)) {
  std::stable_sort(added_.begin(), added_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  vocab_size_ = bpe_.size();
  for (const auto& a : added_) vocab_size_ = std::max(vocab_size_, a.id + 1);
  special_.assign(static_cast<size_t>(vocab_size_), 0);
  added_bytes_.assign(static_cast<size_t>(vocab_size_), std::string());
  for (const auto& a : added_) {
    if (a.content.empty()) continue;
    first_byte_[static_cast<uint8_t>(a.content[0])] = true;
    special_[static_cast<size_t>(a.id)] = a.special ? 1 : 0;
    added_bytes_[static_cast<size_t>(a.id)] = a.content;
  }
}

const AddedToken* Tokenizer::MatchAdded(std::string_view text, size_t i) const {
  for (const auto& a : added_)  // longest first
    if (!a.content.empty() && text.compare(i, a.content.size(), a.content) == 0) return &a;
  return nullptr;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  size_t start = 0;
  if (parse_special && !added_.empty()) {
    for (size_t i = 0; i < text.size(); ++i) {
      if (!first_byte_[static_cast<uint8_t>(text[i])]) continue;
      const AddedToken* a = MatchAdded(text, i);
      if (a == nullptr) continue;
      EncodeOrdinary(text.substr(start, i - start), ids);
      ids.push_back(a->id);
      i += a->content.size() - 1;
      start = i + 1;
    }
  }
  EncodeOrdinary(text.substr(start), ids);
  return ids;
}

void Tokenizer::EncodeOrdinary(std::string_view text, std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  std::string normalized;
  if (!unicode::IsAscii(text)) {
    normalized = unicode::Nfc(text);
    text = normalized;
  }
  // Reused across calls on this thread (no allocation per call), but not kept at the size of
  // the largest text ever seen: a server's every HTTP thread would hold one such buffer (an 8 MB
  // prompt splits into ~64 MB of pieces) for good.
  thread_local std::vector<std::string_view> pieces;
  constexpr size_t kKeptPieces = size_t{1} << 16;
  pieces.clear();
  SplitQwen2(text, pieces);
  for (std::string_view p : pieces) bpe_.Encode(p, ids);
  if (pieces.capacity() > kKeptPieces) std::vector<std::string_view>().swap(pieces);
}

const std::string* Tokenizer::TokenBytes(int32_t id) const {
  if (id < 0 || id >= vocab_size_) return nullptr;
  const std::string& added = added_bytes_[static_cast<size_t>(id)];
  if (!added.empty()) return &added;
  if (id < bpe_.size() && !bpe_.Bytes(id).empty()) return &bpe_.Bytes(id);
  return nullptr;
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && id < vocab_size_ && special_[static_cast<size_t>(id)] != 0;
}

std::optional<int32_t> Tokenizer::AddedTokenId(std::string_view content) const {
  for (const auto& a : added_)
    if (a.content == content) return a.id;
  return std::nullopt;
}

Result<std::string> Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) {
    const std::string* b = TokenBytes(id);
    if (b == nullptr) return InvalidArgument(fmt::format("token id {} is not in the vocabulary", id));
    if (skip_special && IsSpecial(id)) continue;
    bytes += *b;
  }
  return unicode::Lossy(bytes);
}

}  // namespace qb
