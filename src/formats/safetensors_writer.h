// Writes a safetensors file (header padded to 8 bytes, tensors in insertion order).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "formats/tensor_sink.h"
#include "util/status.h"

namespace qb {

class SafetensorsWriter {
 public:
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void AddTensor(PendingTensor t) { tensors_.push_back(std::move(t)); }
  // Only F32, F16, BF16, I32, I8 and U8 can be stored in safetensors.
  Status Write(const std::string& path) const;

 private:
  std::map<std::string, std::string> metadata_;
  std::vector<PendingTensor> tensors_;
};

}  // namespace qb
