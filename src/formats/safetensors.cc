#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "util/json.h"

namespace qb {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // the format's own limit is 100 MB

Result<DType> ParseDType(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  if (s == "I32") return DType::kI32;
  if (s == "I8") return DType::kI8;
  if (s == "U8") return DType::kU8;
  return Unimplemented(fmt::format("dtype {} is not supported (F32, F16, BF16, I32, I8, U8 are)", s));
}

Status ParseEntry(const std::string& name, const Json& v, uint64_t data_size, SafetensorsEntry* e) {
  if (!v.is_object()) return DataLoss("header entry is not an object");
  auto dt = v.find("dtype");
  auto shape = v.find("shape");
  auto offsets = v.find("data_offsets");
  if (dt == v.end() || !dt->is_string()) return DataLoss("missing or non-string \"dtype\"");
  if (shape == v.end() || !shape->is_array()) return DataLoss("missing or non-array \"shape\"");
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2)
    return DataLoss("\"data_offsets\" must be [begin, end]");
  e->name = name;
  QB_ASSIGN_OR_RETURN(e->dtype, ParseDType(dt->get<std::string>()));
  uint64_t numel = 1;
  for (const Json& d : *shape) {
    if (!d.is_number_unsigned()) return DataLoss("shape entries must be non-negative integers");
    const uint64_t n = d.get<uint64_t>();
    if (n != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / n)
      return DataLoss("shape is too large");
    numel *= n;
    e->shape.push_back(static_cast<int64_t>(n));
  }
  for (const Json& o : *offsets)
    if (!o.is_number_unsigned()) return DataLoss("data_offsets must be non-negative integers");
  e->begin = (*offsets)[0].get<uint64_t>();
  e->end = (*offsets)[1].get<uint64_t>();
  if (e->begin > e->end) return DataLoss(fmt::format("data_offsets [{}, {}] run backwards", e->begin, e->end));
  if (e->end > data_size)
    return DataLoss(fmt::format("data_offsets end {} is past the end of the data ({} bytes)", e->end,
                                data_size));
  const uint64_t want = numel * static_cast<uint64_t>(Info(e->dtype).block_bytes);
  if (e->end - e->begin != want)
    return DataLoss(fmt::format("{} {} needs {} bytes but data_offsets span {}",
                                Name(e->dtype), ShapeToString(e->shape), want, e->end - e->begin));
  return Status::Ok();
}

}  // namespace

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile f;
  QB_ASSIGN_OR_RETURN(f.file_, MappedFile::Open(path));
  const uint64_t size = f.file_->size();
  auto err = [&](const std::string& m) { return DataLoss(fmt::format("{}: {}", path, m)); };
  if (size < 8) return err(fmt::format("file of {} bytes is too short for a safetensors header", size));
  uint64_t header_len = 0;
  std::memcpy(&header_len, f.file_->data(), 8);
  if (header_len > size - 8)
    return err(fmt::format("header length {} is past the end of the file ({} bytes)", header_len, size));
  if (header_len > kMaxHeaderBytes) return err(fmt::format("header length {} is over 100 MB", header_len));
  f.data_start_ = 8 + header_len;
  const uint64_t data_size = size - f.data_start_;
  std::string_view text(reinterpret_cast<const char*>(f.file_->data() + 8), header_len);
  auto header = ParseJson(text, path + " header");
  if (!header.ok()) return header.status();
  if (!header->is_object()) return err("header is not a JSON object");
  for (auto it = header->begin(); it != header->end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return err("__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) f.metadata_[m.key()] = m->get<std::string>();
      continue;
    }
    SafetensorsEntry e;
    Status s = ParseEntry(it.key(), *it, data_size, &e);
    if (!s.ok()) return s.WithContext(fmt::format("{}: tensor {}", path, it.key()));
    f.index_[e.name] = f.entries_.size();
    f.entries_.push_back(std::move(e));
  }
  // Tensors may not share bytes.
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : f.entries_) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    if (by_offset[i]->begin < by_offset[i - 1]->end && by_offset[i]->begin != by_offset[i]->end)
      return err(fmt::format("tensors {} and {} overlap", by_offset[i - 1]->name, by_offset[i]->name));
  }
  return f;
}

const SafetensorsEntry* SafetensorsFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::Load(const SafetensorsEntry& e) const {
  const uint8_t* p = file_->data() + data_start_ + e.begin;
  const size_t align = static_cast<size_t>(Info(e.dtype).alignment);
  if (reinterpret_cast<uintptr_t>(p) % align == 0) return Tensor::View(e.dtype, e.shape, p, file_);
  Tensor t = Tensor::Empty(e.dtype, e.shape);
  std::memcpy(t.mutable_raw(), p, e.end - e.begin);
  return t;
}

Result<SafetensorsCheckpoint> SafetensorsCheckpoint::Open(const std::string& dir) {
  namespace fs = std::filesystem;
  SafetensorsCheckpoint ck;
  const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
  const std::string single_path = (fs::path(dir) / "model.safetensors").string();
  std::error_code ec;
  if (fs::exists(index_path, ec)) {
    QB_ASSIGN_OR_RETURN(Json index, ReadJsonFile(index_path));
    auto wm = index.is_object() ? index.find("weight_map") : index.end();
    if (wm == index.end() || !wm->is_object())
      return DataLoss(index_path + ": missing \"weight_map\" object");
    std::map<std::string, size_t> shard_of_file;
    std::set<std::string> listed;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it->is_string()) return DataLoss(fmt::format("{}: weight_map[{}] is not a file name", index_path, it.key()));
      const std::string shard = it->get<std::string>();
      if (shard.find('/') != std::string::npos || shard == "..")
        return DataLoss(fmt::format("{}: shard name {} is not a plain file name", index_path, shard));
      if (!shard_of_file.count(shard)) {
        QB_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open((fs::path(dir) / shard).string()));
        shard_of_file[shard] = ck.files_.size();
        ck.files_.push_back(std::move(f));
      }
      const SafetensorsFile& f = ck.files_[shard_of_file[shard]];
      if (f.Find(it.key()) == nullptr)
        return DataLoss(fmt::format("{}: {} says {} holds {}, but it does not", index_path, shard, f.path(), it.key()));
      ck.where_[it.key()] = shard_of_file[shard];
    }
  } else if (fs::exists(single_path, ec)) {
    QB_ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(single_path));
    for (const auto& e : f.entries()) ck.where_[e.name] = 0;
    ck.files_.push_back(std::move(f));
  } else {
    return NotFound(fmt::format("{}: no model.safetensors or model.safetensors.index.json", dir));
  }
  return ck;
}

const SafetensorsEntry* SafetensorsCheckpoint::Find(const std::string& name,
                                                    const SafetensorsFile** file) const {
  auto it = where_.find(name);
  if (it == where_.end()) return nullptr;
  *file = &files_[it->second];
  return files_[it->second].Find(name);
}

std::vector<std::string> SafetensorsCheckpoint::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, _] : where_) names.push_back(name);
  return names;
}

}  // namespace qb
