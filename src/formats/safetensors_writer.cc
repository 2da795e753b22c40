#include "formats/safetensors_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/format.h>

#include "util/json.h"

namespace qb {

namespace {
Result<std::string> SafetensorsDTypeName(DType t) {
  switch (t) {
    case DType::kF32: return std::string("F32");
    case DType::kF16: return std::string("F16");
    case DType::kBF16: return std::string("BF16");
    case DType::kI32: return std::string("I32");
    case DType::kI8: return std::string("I8");
    case DType::kU8: return std::string("U8");
    default: return InvalidArgument(fmt::format("{} cannot be stored in safetensors", Name(t)));
  }
}
}  // namespace

Status SafetensorsWriter::Write(const std::string& path) const {
  // nlohmann's ordered_json keeps insertion order, so tensors appear in the order written.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const auto& t : tensors_) {
    QB_ASSIGN_OR_RETURN(std::string dt, SafetensorsDTypeName(t.dtype));
    header[t.name] = {{"dtype", dt}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');

  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!f) return IoError(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  const uint64_t len = text.size();
  bool ok = std::fwrite(&len, 8, 1, f.get()) == 1 && std::fwrite(text.data(), 1, text.size(), f.get()) == text.size();
  std::vector<uint8_t> buf;
  for (const auto& t : tensors_) {
    if (!ok) break;
    buf.assign(t.nbytes(), 0);
    t.fill(buf.data());
    ok = std::fwrite(buf.data(), 1, buf.size(), f.get()) == buf.size();
  }
  if (!ok || std::fflush(f.get()) != 0) return IoError(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
  return Status::Ok();
}

}  // namespace qb
