// A read-only memory mapping of a whole file. Weights are used in place from the mapping; the
// page cache backing it is what the kernel charges to the container's memory cgroup.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "util/status.h"

namespace qb {

class MappedFile {
 public:
  static Result<std::shared_ptr<const MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Tells the kernel a range of a mapping will not be read again (weights repacked into other
// memory): its pages leave this process's resident set; file pages stay in the page cache as
// reclaimable. Only whole pages inside the range are affected.
void ReleaseMappedRange(const void* data, size_t size);

}  // namespace qb
