// Named tensors from a checkpoint, whatever its format. The loader asks for tensors by name;
// sources give views into their files, with errors that name the file and the tensor.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"
#include "util/status.h"

namespace qb {

class GgufFile;
class SafetensorsCheckpoint;

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual bool Has(const std::string& name) const = 0;
  virtual Result<Tensor> Get(const std::string& name) const = 0;
  virtual std::vector<std::string> Names() const = 0;
  // The file a tensor comes from (for messages).
  virtual std::string FileOf(const std::string& name) const = 0;
};

std::unique_ptr<TensorSource> MakeSafetensorsSource(std::shared_ptr<const SafetensorsCheckpoint> ck,
                                                    std::string dir);
std::unique_ptr<TensorSource> MakeGgufSource(std::shared_ptr<const GgufFile> gguf);

}  // namespace qb
