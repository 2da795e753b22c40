// GGUF's enumerations: metadata value types and ggml tensor types (ids and block sizes as the
// format defines them).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "tensor/dtype.h"

namespace qb {

enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

std::string_view GgufTypeName(GgufType t);
bool IsValidGgufType(uint32_t t);

struct GgmlTypeInfo {
  uint32_t id;
  std::string_view name;
  uint32_t block_size;
  uint32_t type_size;
};

// Known ggml tensor types, or nullptr for an id qwenbox does not know.
const GgmlTypeInfo* FindGgmlType(uint32_t id);
// The qwenbox DType for a ggml type, if qwenbox can compute with it.
std::optional<DType> DTypeFromGgml(uint32_t id);
// The ggml type id for a DType (every DType that GGUF can store).
std::optional<uint32_t> GgmlFromDType(DType t);

}  // namespace qb
