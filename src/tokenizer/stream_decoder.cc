#include "tokenizer/stream_decoder.h"

#include <fmt/format.h>

#include "tokenizer/unicode.h"

namespace qb {

Result<std::string> StreamDecoder::Push(int32_t id) {
  const std::string* bytes = tokenizer_.TokenBytes(id);
  if (bytes == nullptr) return InvalidArgument(fmt::format("token id {} is not in the vocabulary", id));
  if (skip_special_ && tokenizer_.IsSpecial(id)) return std::string();
  pending_ += *bytes;
  const size_t ready = unicode::CompletePrefix(pending_);
  std::string out = unicode::Lossy(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return out;
}

std::string StreamDecoder::Finish() {
  std::string out = unicode::Lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace qb
