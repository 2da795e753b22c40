#include "formats/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>

namespace qb {

GgufValue GgufU32(uint32_t x) { return {GgufType::kU32, uint64_t{x}}; }
GgufValue GgufI32(int32_t x) { return {GgufType::kI32, int64_t{x}}; }
GgufValue GgufU64(uint64_t x) { return {GgufType::kU64, x}; }
GgufValue GgufF32(float x) { return {GgufType::kF32, double{x}}; }
GgufValue GgufBool(bool x) { return {GgufType::kBool, x}; }
GgufValue GgufString(std::string s) { return {GgufType::kString, std::move(s)}; }

GgufValue GgufArrayOf(GgufType elem_type, std::vector<GgufValue> items) {
  auto a = std::make_shared<GgufArray>();
  a->elem_type = elem_type;
  a->items = std::move(items);
  return {GgufType::kArray, std::shared_ptr<const GgufArray>(std::move(a))};
}

GgufValue GgufStringArray(const std::vector<std::string>& items) {
  std::vector<GgufValue> v;
  v.reserve(items.size());
  for (const auto& s : items) v.push_back(GgufString(s));
  return GgufArrayOf(GgufType::kString, std::move(v));
}

GgufValue GgufI32Array(const std::vector<int32_t>& items) {
  std::vector<GgufValue> v;
  v.reserve(items.size());
  for (int32_t x : items) v.push_back(GgufI32(x));
  return GgufArrayOf(GgufType::kI32, std::move(v));
}

GgufValue GgufScalar(GgufType type, double value) {
  switch (type) {
    case GgufType::kU8: case GgufType::kU16: case GgufType::kU32: case GgufType::kU64:
      return {type, static_cast<uint64_t>(value)};
    case GgufType::kI8: case GgufType::kI16: case GgufType::kI32: case GgufType::kI64:
      return {type, static_cast<int64_t>(value)};
    case GgufType::kF32: case GgufType::kF64: return {type, value};
    case GgufType::kBool: return {type, value != 0};
    default: return GgufString(fmt::format("{}", value));
  }
}

namespace {

class Out {
 public:
  explicit Out(FILE* f) : f_(f) {}
  template <typename T>
  void Put(T x) {
    ok_ = ok_ && std::fwrite(&x, sizeof(T), 1, f_) == 1;
    pos_ += sizeof(T);
  }
  void Bytes(const void* p, size_t n) {
    ok_ = ok_ && (n == 0 || std::fwrite(p, 1, n, f_) == n);
    pos_ += n;
  }
  void String(const std::string& s) {
    Put<uint64_t>(s.size());
    Bytes(s.data(), s.size());
  }
  void PadTo(uint64_t alignment) {
    static const uint8_t zeros[64] = {};
    while (pos_ % alignment != 0) Bytes(zeros, std::min<uint64_t>(64, alignment - pos_ % alignment));
  }
  bool ok() const { return ok_; }

 private:
  FILE* f_;
  uint64_t pos_ = 0;
  bool ok_ = true;
};

void PutValue(Out& o, const GgufValue& v) {
  auto u = [&] { return std::get<uint64_t>(v.v); };
  auto i = [&] { return std::get<int64_t>(v.v); };
  auto d = [&] { return std::get<double>(v.v); };
  switch (v.type) {
    case GgufType::kU8: o.Put(static_cast<uint8_t>(u())); break;
    case GgufType::kI8: o.Put(static_cast<int8_t>(i())); break;
    case GgufType::kU16: o.Put(static_cast<uint16_t>(u())); break;
    case GgufType::kI16: o.Put(static_cast<int16_t>(i())); break;
    case GgufType::kU32: o.Put(static_cast<uint32_t>(u())); break;
    case GgufType::kI32: o.Put(static_cast<int32_t>(i())); break;
    case GgufType::kU64: o.Put(u()); break;
    case GgufType::kI64: o.Put(i()); break;
    case GgufType::kF32: o.Put(static_cast<float>(d())); break;
    case GgufType::kF64: o.Put(d()); break;
    case GgufType::kBool: o.Put(static_cast<uint8_t>(std::get<bool>(v.v) ? 1 : 0)); break;
    case GgufType::kString: o.String(std::get<std::string>(v.v)); break;
    case GgufType::kArray: {
      const GgufArray* a = v.AsArray();
      o.Put(static_cast<uint32_t>(a->elem_type));
      o.Put<uint64_t>(a->items.size());
      for (const auto& item : a->items) PutValue(o, item);
      break;
    }
  }
}

}  // namespace

Status GgufWriter::Write(const std::string& path) const {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) return IoError(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  Out o(f.get());
  o.Bytes("GGUF", 4);
  o.Put<uint32_t>(3);
  o.Put<uint64_t>(tensors_.size());
  o.Put<uint64_t>(metadata_.size() + (alignment_ != 32 ? 1 : 0));
  if (alignment_ != 32) {
    o.String("general.alignment");
    o.Put(static_cast<uint32_t>(GgufType::kU32));
    o.Put<uint32_t>(alignment_);
  }
  for (const auto& [key, value] : metadata_) {
    o.String(key);
    o.Put(static_cast<uint32_t>(value.type));
    PutValue(o, value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    auto ggml = GgmlFromDType(t.dtype);
    if (!ggml) return InvalidArgument(fmt::format("{} cannot be stored in GGUF", Name(t.dtype)));
    o.String(t.name);
    o.Put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) o.Put<uint64_t>(static_cast<uint64_t>(*it));
    o.Put<uint32_t>(*ggml);
    o.Put<uint64_t>(offset);
    offset += (t.nbytes() + alignment_ - 1) / alignment_ * alignment_;
  }
  o.PadTo(alignment_);
  std::vector<uint8_t> buf;
  for (const auto& t : tensors_) {
    buf.assign(t.nbytes(), 0);
    t.fill(buf.data());
    o.Bytes(buf.data(), buf.size());
    o.PadTo(alignment_);
  }
  if (!o.ok() || std::fflush(f.get()) != 0)
    return IoError(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
  return Status::Ok();
}

}  // namespace qb
