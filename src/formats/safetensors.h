// Reader for Hugging Face safetensors files (one file, or shards listed in
// model.safetensors.index.json). Files are mmap'd; tensors are views into the mapping.
// Every offset, size and shape in the header is checked before any byte is read.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"
#include "util/mapped_file.h"
#include "util/status.h"

namespace qb {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  static Result<SafetensorsFile> Open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* Find(const std::string& name) const;
  // A view of the tensor's bytes (copied to aligned memory if the file leaves them misaligned).
  Tensor Load(const SafetensorsEntry& entry) const;

 private:
  std::shared_ptr<const MappedFile> file_;
  uint64_t data_start_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint directory: model.safetensors, or the shards named by
// model.safetensors.index.json.
class SafetensorsCheckpoint {
 public:
  static Result<SafetensorsCheckpoint> Open(const std::string& dir);

  bool Has(const std::string& name) const { return where_.count(name) != 0; }
  // The tensor's entry and the file it is in, or nullptr.
  const SafetensorsEntry* Find(const std::string& name, const SafetensorsFile** file) const;
  std::vector<std::string> Names() const;
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index in files_
};

}  // namespace qb
