#include "formats/gguf_types.h"

#include <array>

namespace qb {

namespace {
constexpr std::array<GgmlTypeInfo, 31> kGgmlTypes = {{
    {0, "F32", 1, 4},        {1, "F16", 1, 2},        {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},     {6, "Q5_0", 32, 22},     {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},     {9, "Q8_1", 32, 36},     {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},  {12, "Q4_K", 256, 144},  {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},  {15, "Q8_K", 256, 292},  {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74}, {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},  {21, "IQ3_S", 256, 110}, {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},       {25, "I16", 1, 2},
    {26, "I32", 1, 4},       {27, "I64", 1, 8},       {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},  {30, "BF16", 1, 2},      {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},
}};

struct DTypeMap {
  uint32_t ggml;
  DType dtype;
};
constexpr std::array<DTypeMap, 16> kDTypeMap = {{
    {0, DType::kF32},
    {1, DType::kF16},
    {30, DType::kBF16},
    {8, DType::kQ8_0},
    {2, DType::kQ4_0},
    {12, DType::kQ4_K},
    {14, DType::kQ6_K},
    {3, DType::kQ4_1},
    {6, DType::kQ5_0},
    {7, DType::kQ5_1},
    {20, DType::kIq4Nl},
    {10, DType::kQ2_K},
    {11, DType::kQ3_K},
    {13, DType::kQ5_K},
    {26, DType::kI32},
    {24, DType::kI8},
}};
}  // namespace

std::string_view GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kU8: return "uint8";
    case GgufType::kI8: return "int8";
    case GgufType::kU16: return "uint16";
    case GgufType::kI16: return "int16";
    case GgufType::kU32: return "uint32";
    case GgufType::kI32: return "int32";
    case GgufType::kF32: return "float32";
    case GgufType::kBool: return "bool";
    case GgufType::kString: return "string";
    case GgufType::kArray: return "array";
    case GgufType::kU64: return "uint64";
    case GgufType::kI64: return "int64";
    case GgufType::kF64: return "float64";
  }
  return "unknown";
}

bool IsValidGgufType(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

const GgmlTypeInfo* FindGgmlType(uint32_t id) {
  for (const auto& t : kGgmlTypes)
    if (t.id == id) return &t;
  return nullptr;
}

std::optional<DType> DTypeFromGgml(uint32_t id) {
  for (const auto& m : kDTypeMap)
    if (m.ggml == id) return m.dtype;
  return std::nullopt;
}

std::optional<uint32_t> GgmlFromDType(DType t) {
  for (const auto& m : kDTypeMap)
    if (m.dtype == t) return m.ggml;
  return std::nullopt;
}

}  // namespace qb
