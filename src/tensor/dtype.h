// Element types of tensors. Quantized types store blocks of `block_size` elements along the
// last (innermost) dimension, with GGUF's byte layouts (see quant_blocks.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace qb {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kI32,
  kI8,
  kU8,
  kQ8_0,
  kQ4_0,
  kQ4_K,
  kQ6_K,
  kQ4Z,     // 4-bit with a 4-bit zero point per block: GPTQ/AWQ weights repacked at load
  kQ4_0x8,  // Q4_0 repacked for the CPU kernels: 8 rows interleaved per block column
  kQ8_0x8,  // Q8_0 likewise
  // GGUF block types that qwenbox reads and computes with but never writes (quant_blocks.h).
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kIq4Nl,
  kQ2_K,
  kQ3_K,
  kQ5_K,
  kQ5_0x8,  // Q5_0 repacked for the CPU kernels, as kQ4_0x8
  kQ5_1x8,  // Q5_1 likewise
  kIq4Nlx8,  // IQ4_NL likewise (the Q4_0x8 layout)
  kQ4_Kx8,   // Q4_K repacked for the CPU kernels: 8 rows interleaved per super-block column
  kQ6_Kx8,   // Q6_K likewise
  kQ5_Kx8,   // Q5_K likewise
  kQ2_Kx8,   // Q2_K likewise
  kQ3_Kx8,   // Q3_K likewise; keep last (dtype.cc's table checks it)
};

struct DTypeInfo {
  std::string_view name;  // "f32", "q4_k", ...
  int64_t block_size;     // elements per block (1 for plain types)
  int64_t block_bytes;    // bytes per block
  bool is_float;          // plain floating point (f32/f16/bf16)
  bool is_quantized;      // block-quantized weights
  int64_t alignment;      // required byte alignment of the data
  int64_t row_group;      // rows stored interleaved together (1: rows are contiguous)
};

const DTypeInfo& Info(DType t);
inline std::string_view Name(DType t) { return Info(t).name; }
std::optional<DType> DTypeFromName(std::string_view name);  // case-insensitive

// Bytes for `n` consecutive elements (n must be a multiple of the block size).
inline int64_t RowBytes(DType t, int64_t n) {
  const DTypeInfo& i = Info(t);
  return n / i.block_size * i.block_bytes;
}

}  // namespace qb
