#include "model/tensor_source.h"

#include <fmt/format.h>

#include "formats/gguf.h"
#include "formats/safetensors.h"

namespace qb {

namespace {

class SafetensorsSource final : public TensorSource {
 public:
  SafetensorsSource(std::shared_ptr<const SafetensorsCheckpoint> ck, std::string dir)
      : ck_(std::move(ck)), dir_(std::move(dir)) {}
  bool Has(const std::string& name) const override { return ck_->Has(name); }
  Result<Tensor> Get(const std::string& name) const override {
    const SafetensorsFile* file = nullptr;
    const SafetensorsEntry* e = ck_->Find(name, &file);
    if (e == nullptr) return NotFound(fmt::format("{}: missing tensor {}", dir_, name));
    return file->Load(*e);
  }
  std::vector<std::string> Names() const override { return ck_->Names(); }
  std::string FileOf(const std::string& name) const override {
    const SafetensorsFile* file = nullptr;
    return ck_->Find(name, &file) ? file->path() : dir_;
  }

 private:
  std::shared_ptr<const SafetensorsCheckpoint> ck_;
  std::string dir_;
};

class GgufSource final : public TensorSource {
 public:
  explicit GgufSource(std::shared_ptr<const GgufFile> g) : g_(std::move(g)) {}
  bool Has(const std::string& name) const override { return g_->FindTensor(name) != nullptr; }
  Result<Tensor> Get(const std::string& name) const override {
    const GgufTensorInfo* info = g_->FindTensor(name);
    if (info == nullptr) return NotFound(fmt::format("{}: missing tensor {}", g_->path(), name));
    return g_->Load(*info);
  }
  std::vector<std::string> Names() const override {
    std::vector<std::string> names;
    for (const auto& t : g_->tensors()) names.push_back(t.name);
    return names;
  }
  std::string FileOf(const std::string&) const override { return g_->path(); }

 private:
  std::shared_ptr<const GgufFile> g_;
};

}  // namespace

std::unique_ptr<TensorSource> MakeSafetensorsSource(std::shared_ptr<const SafetensorsCheckpoint> ck,
                                                    std::string dir) {
  return std::make_unique<SafetensorsSource>(std::move(ck), std::move(dir));
}

std::unique_ptr<TensorSource> MakeGgufSource(std::shared_ptr<const GgufFile> gguf) {
  return std::make_unique<GgufSource>(std::move(gguf));
}

}  // namespace qb
