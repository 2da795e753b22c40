#include "formats/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace qb {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint64_t kMaxCount = uint64_t{1} << 32;
constexpr uint32_t kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;

// Bounds-checked little-endian reader over the mapped file.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  template <typename T>
  Status Read(T* out, const char* what) {
    if (remaining() < sizeof(T))
      return DataLoss(fmt::format("file ends at byte {} while reading {}", size_, what));
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }
  Status ReadString(std::string* out, const char* what) {
    uint64_t len = 0;
    QB_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining())
      return DataLoss(fmt::format("{} of {} bytes at offset {} runs past the end of the file", what,
                                  len, pos_ - 8));
    out->assign(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return Status::Ok();
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

// Smallest encoded size of one value of a type (to bound array counts before allocating).
uint64_t MinEncodedSize(GgufType t) {
  switch (t) {
    case GgufType::kU8: case GgufType::kI8: case GgufType::kBool: return 1;
    case GgufType::kU16: case GgufType::kI16: return 2;
    case GgufType::kU32: case GgufType::kI32: case GgufType::kF32: return 4;
    case GgufType::kU64: case GgufType::kI64: case GgufType::kF64: case GgufType::kString: return 8;
    case GgufType::kArray: return 12;
  }
  return 1;
}

Status ReadValue(Cursor& c, GgufType type, int depth, GgufValue* out);

template <typename T, typename Store>
Status ReadScalar(Cursor& c, GgufValue* out) {
  T x{};
  QB_RETURN_IF_ERROR(c.Read(&x, "a metadata value"));
  out->v = static_cast<Store>(x);
  return Status::Ok();
}

Status ReadValue(Cursor& c, GgufType type, int depth, GgufValue* out) {
  out->type = type;
  switch (type) {
    case GgufType::kU8: return ReadScalar<uint8_t, uint64_t>(c, out);
    case GgufType::kI8: return ReadScalar<int8_t, int64_t>(c, out);
    case GgufType::kU16: return ReadScalar<uint16_t, uint64_t>(c, out);
    case GgufType::kI16: return ReadScalar<int16_t, int64_t>(c, out);
    case GgufType::kU32: return ReadScalar<uint32_t, uint64_t>(c, out);
    case GgufType::kI32: return ReadScalar<int32_t, int64_t>(c, out);
    case GgufType::kU64: return ReadScalar<uint64_t, uint64_t>(c, out);
    case GgufType::kI64: return ReadScalar<int64_t, int64_t>(c, out);
    case GgufType::kF32: return ReadScalar<float, double>(c, out);
    case GgufType::kF64: return ReadScalar<double, double>(c, out);
    case GgufType::kBool: {
      uint8_t b = 0;
      QB_RETURN_IF_ERROR(c.Read(&b, "a bool"));
      if (b > 1) return DataLoss(fmt::format("bool value {} is neither 0 nor 1", b));
      out->v = b == 1;
      return Status::Ok();
    }
    case GgufType::kString: {
      std::string s;
      QB_RETURN_IF_ERROR(c.ReadString(&s, "a string value"));
      out->v = std::move(s);
      return Status::Ok();
    }
    case GgufType::kArray: {
      if (depth >= kMaxArrayDepth) return DataLoss("arrays nested too deeply");
      uint32_t elem = 0;
      uint64_t n = 0;
      QB_RETURN_IF_ERROR(c.Read(&elem, "an array's element type"));
      if (!IsValidGgufType(elem)) return DataLoss(fmt::format("unknown array element type {}", elem));
      QB_RETURN_IF_ERROR(c.Read(&n, "an array's length"));
      const auto et = static_cast<GgufType>(elem);
      if (n > c.remaining() / MinEncodedSize(et))
        return DataLoss(fmt::format("array of {} {} values cannot fit in the {} bytes left", n,
                                    GgufTypeName(et), c.remaining()));
      auto arr = std::make_shared<GgufArray>();
      arr->elem_type = et;
      arr->items.resize(n);
      for (uint64_t i = 0; i < n; ++i) QB_RETURN_IF_ERROR(ReadValue(c, et, depth + 1, &arr->items[i]));
      out->v = std::shared_ptr<const GgufArray>(std::move(arr));
      return Status::Ok();
    }
  }
  return DataLoss(fmt::format("unknown metadata value type {}", static_cast<uint32_t>(type)));
}

}  // namespace

std::optional<int64_t> GgufValue::AsInt() const {
  if (auto* s = std::get_if<int64_t>(&v)) return *s;
  if (auto* u = std::get_if<uint64_t>(&v)) {
    if (*u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return static_cast<int64_t>(*u);
  }
  return std::nullopt;
}

std::optional<double> GgufValue::AsNumber() const {
  if (auto* d = std::get_if<double>(&v)) return *d;
  if (auto* s = std::get_if<int64_t>(&v)) return static_cast<double>(*s);
  if (auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
  return std::nullopt;
}

std::optional<bool> GgufValue::AsBool() const {
  if (auto* b = std::get_if<bool>(&v)) return *b;
  return std::nullopt;
}

const std::string* GgufValue::AsString() const { return std::get_if<std::string>(&v); }

const GgufArray* GgufValue::AsArray() const {
  auto* a = std::get_if<std::shared_ptr<const GgufArray>>(&v);
  return a ? a->get() : nullptr;
}

Result<GgufFile> GgufFile::Open(const std::string& path) {
  GgufFile f;
  QB_ASSIGN_OR_RETURN(f.file_, MappedFile::Open(path));
  auto fail = [&](const Status& s) { return s.WithContext(path); };
  Cursor c(f.file_->data(), f.file_->size());
  uint32_t magic = 0;
  if (!c.Read(&magic, "the magic").ok() || magic != kMagic)
    return fail(DataLoss("not a GGUF file (no \"GGUF\" magic at the start)"));
  Status s = c.Read(&f.version_, "the version");
  if (!s.ok()) return fail(s);
  if (f.version_ == 1)
    return fail(Unimplemented("GGUF version 1 is not supported (versions 2 and 3 are); "
                              "convert it with a current llama.cpp"));
  if (f.version_ != 2 && f.version_ != 3) {
    if ((f.version_ & 0xffff) == 0 && f.version_ != 0)
      return fail(Unimplemented("big-endian GGUF files are not supported"));
    return fail(Unimplemented(fmt::format("GGUF version {} is not supported (versions 2 and 3 are)", f.version_)));
  }
  uint64_t n_tensors = 0, n_kv = 0;
  if (!(s = c.Read(&n_tensors, "the tensor count")).ok()) return fail(s);
  if (!(s = c.Read(&n_kv, "the metadata count")).ok()) return fail(s);
  if (n_tensors > kMaxCount || n_kv > kMaxCount || n_kv > c.remaining() / 12 ||
      n_tensors > c.remaining() / 24)
    return fail(DataLoss(fmt::format("{} tensors / {} metadata entries cannot fit in the file",
                                     n_tensors, n_kv)));

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key;
    uint32_t type = 0;
    GgufValue value;
    if (!(s = c.ReadString(&key, "a metadata key")).ok()) return fail(s);
    if (!(s = c.Read(&type, "a metadata type")).ok()) return fail(s);
    if (!IsValidGgufType(type))
      return fail(DataLoss(fmt::format("metadata {}: unknown value type {}", key, type)));
    if (!(s = ReadValue(c, static_cast<GgufType>(type), 0, &value)).ok())
      return fail(s.WithContext("metadata " + key));
    if (f.meta_index_.count(key)) return fail(DataLoss("duplicate metadata key " + key));
    f.meta_index_[key] = f.metadata_.size();
    f.metadata_.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* a = f.Find("general.alignment")) {
    auto al = a->AsInt();
    if (!al || *al <= 0 || (*al & (*al - 1)) != 0 || *al > (1 << 20))
      return fail(DataLoss("general.alignment must be a power of two"));
    f.alignment_ = static_cast<uint64_t>(*al);
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    uint32_t n_dims = 0;
    if (!(s = c.ReadString(&t.name, "a tensor name")).ok()) return fail(s);
    auto tfail = [&](const std::string& m) { return fail(DataLoss(fmt::format("tensor {}: {}", t.name, m))); };
    if (!(s = c.Read(&n_dims, "a tensor's dimension count")).ok()) return fail(s);
    if (n_dims == 0 || n_dims > kMaxDims) return tfail(fmt::format("{} dimensions (1 to 4 allowed)", n_dims));
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne = 0;
      if (!(s = c.Read(&ne, "a tensor dimension")).ok()) return fail(s);
      if (ne == 0 || ne > (uint64_t{1} << 40) || numel > (uint64_t{1} << 48) / ne)
        return tfail(fmt::format("dimension {} of size {} is invalid", d, ne));
      numel *= ne;
      t.ne.push_back(ne);
    }
    if (!(s = c.Read(&t.ggml_type, "a tensor type")).ok()) return fail(s);
    if (!(s = c.Read(&t.offset, "a tensor offset")).ok()) return fail(s);
    const GgmlTypeInfo* gt = FindGgmlType(t.ggml_type);
    if (gt == nullptr) return tfail(fmt::format("unknown ggml tensor type {}", t.ggml_type));
    if (t.ne[0] % gt->block_size != 0)
      return tfail(fmt::format("row of {} is not whole {} blocks of {}", t.ne[0], gt->name, gt->block_size));
    t.nbytes = numel / gt->block_size * gt->type_size;
    if (t.offset % f.alignment_ != 0)
      return tfail(fmt::format("offset {} is not a multiple of the alignment {}", t.offset, f.alignment_));
    for (auto it = t.ne.rbegin(); it != t.ne.rend(); ++it) t.shape.push_back(static_cast<int64_t>(*it));
    if (f.tensor_index_.count(t.name)) return tfail("appears twice");
    f.tensor_index_[t.name] = f.tensors_.size();
    f.tensors_.push_back(std::move(t));
  }

  const uint64_t header_end = c.pos();
  f.data_offset_ = (header_end + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  const uint64_t size = f.file_->size();
  const uint64_t data_size = size >= f.data_offset_ ? size - f.data_offset_ : 0;
  std::vector<const GgufTensorInfo*> order;
  for (const auto& t : f.tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      return fail(DataLoss(fmt::format(
          "tensor {}: data [{}, {}) runs past the end of the file (data section holds {} bytes); "
          "the file is truncated",
          t.name, t.offset, t.offset + t.nbytes, data_size)));
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes)
      return fail(DataLoss(fmt::format("tensors {} and {} overlap", order[i - 1]->name, order[i]->name)));
  return f;
}

const GgufValue* GgufFile::Find(const std::string& key) const {
  auto it = meta_index_.find(key);
  return it == meta_index_.end() ? nullptr : &metadata_[it->second].second;
}

std::optional<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Find(key);
  return v ? v->AsInt() : std::nullopt;
}
std::optional<double> GgufFile::GetNumber(const std::string& key) const {
  const GgufValue* v = Find(key);
  return v ? v->AsNumber() : std::nullopt;
}
std::optional<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Find(key);
  if (v == nullptr || v->AsString() == nullptr) return std::nullopt;
  return *v->AsString();
}
std::optional<bool> GgufFile::GetBool(const std::string& key) const {
  const GgufValue* v = Find(key);
  return v ? v->AsBool() : std::nullopt;
}

const GgufTensorInfo* GgufFile::FindTensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<Tensor> GgufFile::Load(const GgufTensorInfo& info) const {
  auto dtype = DTypeFromGgml(info.ggml_type);
  if (!dtype) {
    const GgmlTypeInfo* gt = FindGgmlType(info.ggml_type);
    return Unimplemented(fmt::format(
        "{}: tensor {} has type {}, which qwenbox cannot compute with yet (supported: F32, F16, "
        "BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
        path(), info.name, gt ? gt->name : "?"));
  }
  const uint8_t* p = file_->data() + data_offset_ + info.offset;
  const size_t align = static_cast<size_t>(Info(*dtype).alignment);
  if (reinterpret_cast<uintptr_t>(p) % align == 0) return Tensor::View(*dtype, info.shape, p, file_);
  Tensor t = Tensor::Empty(*dtype, info.shape);
  std::memcpy(t.mutable_raw(), p, info.nbytes);
  return t;
}

}  // namespace qb
