// Byte-level BPE: a vocabulary of byte-level strings and ranked merges. Encoding applies the
// lowest-ranked merge first (leftmost on ties), as Hugging Face tokenizers does.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/flat_map.h"
#include "util/status.h"

namespace qb {

class BpeModel {
 public:
  // `tokens[id]` is the byte-level text of a regular token ("" for ids that are not BPE
  // tokens, such as added tokens); `merges` are "left right" pairs in rank order.
  static Result<BpeModel> Build(std::vector<std::string> tokens,
                                const std::vector<std::pair<std::string, std::string>>& merges);

  // Appends the ids of one pre-tokenized piece of raw bytes.
  void Encode(std::string_view piece, std::vector<int32_t>& ids) const;
  // Raw bytes of a regular token (empty for ids that are not BPE tokens).
  const std::string& Bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }
  int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
  // The id of a byte-level token string, or -1.
  int32_t Find(std::string_view token) const;

 private:
  void EncodeUncached(std::string_view piece, std::vector<int32_t>& ids) const;

  std::vector<std::string> bytes_;  // id -> raw bytes
  // id -> byte-level text; held by pointer so the index stays valid when the model moves.
  std::unique_ptr<std::vector<std::string>> texts_ = std::make_unique<std::vector<std::string>>();
  FlatStringIndex index_{nullptr};  // byte-level text -> id
  FlatU64Map merges_;               // (left << 32 | right) -> (rank << 32 | result)
  int32_t byte_id_[256] = {};
  // Pieces seen before (words repeat): bounded, shared between threads.
  struct PieceCache {
    std::shared_mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  std::unique_ptr<PieceCache> cache_ = std::make_unique<PieceCache>();
};

}  // namespace qb
