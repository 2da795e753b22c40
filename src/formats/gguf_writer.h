// Writes GGUF v3 files: metadata of any value type, then tensors at the file's alignment.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "formats/gguf.h"
#include "formats/tensor_sink.h"
#include "util/status.h"

namespace qb {

// Builders for metadata values.
GgufValue GgufU32(uint32_t x);
GgufValue GgufI32(int32_t x);
GgufValue GgufU64(uint64_t x);
GgufValue GgufF32(float x);
GgufValue GgufBool(bool x);
GgufValue GgufString(std::string s);
GgufValue GgufArrayOf(GgufType elem_type, std::vector<GgufValue> items);
GgufValue GgufStringArray(const std::vector<std::string>& items);
GgufValue GgufI32Array(const std::vector<int32_t>& items);
// Any scalar of the given integer/float type (for tests that cover every type).
GgufValue GgufScalar(GgufType type, double value);

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32) : alignment_(alignment) {}
  void Add(std::string key, GgufValue value) { metadata_.emplace_back(std::move(key), std::move(value)); }
  // The tensor's dtype must be storable in GGUF (every DType is).
  void AddTensor(PendingTensor t) { tensors_.push_back(std::move(t)); }
  Status Write(const std::string& path) const;

 private:
  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace qb
