// Open-addressing hash tables for the tokenizer's hot lookups (a node-based unordered_map
// spends most of its time in cache misses): linear probing over power-of-two slots.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace qb {

// uint64 -> uint64. The key UINT64_MAX is reserved (marks empty slots).
class FlatU64Map {
 public:
  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    keys_.assign(cap, kEmpty);
    values_.assign(cap, 0);
    mask_ = cap - 1;
  }
  // Inserts unless the key is present (the first value wins).
  void Insert(uint64_t key, uint64_t value) {
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return;
      if (keys_[i] == kEmpty) {
        keys_[i] = key;
        values_[i] = value;
        return;
      }
    }
  }
  const uint64_t* Find(uint64_t key) const {
    if (keys_.empty()) return nullptr;
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      if (keys_[i] == key) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = UINT64_MAX;
  size_t Slot(uint64_t key) const { return static_cast<size_t>((key * 0x9e3779b97f4a7c15ull) >> 20) & mask_; }
  std::vector<uint64_t> keys_;
  std::vector<uint64_t> values_;
  size_t mask_ = 0;
};

// string -> int32 id, where the strings live in a caller-owned vector indexed by id.
class FlatStringIndex {
 public:
  explicit FlatStringIndex(const std::vector<std::string>* strings) : strings_(strings) {}
  void Reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    slots_.assign(cap, Slot{0, -1});
    mask_ = cap - 1;
  }
  void Insert(int32_t id) {
    const std::string& s = (*strings_)[static_cast<size_t>(id)];
    const size_t h = std::hash<std::string_view>{}(s);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].id < 0) {
        slots_[i] = {static_cast<uint32_t>(h >> 32), id};
        return;
      }
      if (slots_[i].tag == static_cast<uint32_t>(h >> 32) && (*strings_)[static_cast<size_t>(slots_[i].id)] == s) return;
    }
  }
  int32_t Find(std::string_view s) const {
    if (slots_.empty()) return -1;
    const size_t h = std::hash<std::string_view>{}(s);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].id < 0) return -1;
      if (slots_[i].tag == static_cast<uint32_t>(h >> 32) && (*strings_)[static_cast<size_t>(slots_[i].id)] == s)
        return slots_[i].id;
    }
  }
  void Rebind(const std::vector<std::string>* strings) { strings_ = strings; }

 private:
  struct Slot {
    uint32_t tag;  // high bits of the hash, to skip most string compares
    int32_t id;
  };
  const std::vector<std::string>* strings_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace qb
