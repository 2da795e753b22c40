// Byte layouts of GGUF's block-quantized types (as ggml defines them; these are file formats).
#pragma once

#include <cstdint>

namespace qb {

inline constexpr int kQK8_0 = 32;
inline constexpr int kQK4_0 = 32;
inline constexpr int kQK_K = 256;
inline constexpr int kKScaleBytes = 12;

// 32 values: x = d * q, q int8.
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// 32 values: x = d * (q - 8), q in [0, 16); byte j holds element j (low nibble) and j+16 (high).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// 32 values: x = d * (q - z), q and z in [0, 16), nibbles laid out as in Q4_0. GPTQ and AWQ
// weights (an fp16 scale and a 4-bit zero per group of 32..128 inputs) become this at load,
// exactly.
struct BlockQ4Z {
  uint16_t d;
  uint8_t z;
  uint8_t pad;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4Z) == 20);

// 256 values in 8 sub-blocks of 32: x = d * sc[s] * q - dmin * m[s], 6-bit sc/m packed in
// `scales`, 4-bit q. Each 32-byte group of qs holds two sub-blocks (low nibbles, then high).
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// 256 values in 16 sub-blocks of 16: x = d * sc[s] * (q - 32), q 6-bit = 4 low bits in ql and
// 2 high bits in qh, sc int8.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// The GGUF block types below are read from files and computed with, never written by qwenbox
// (llama.cpp's quantizer picks them for official Qwen2.5 GGUFs: Q5_K_M, Q3_K_M, Q2_K, Q5_0, ...,
// and as the fallback where a row length is not a multiple of 256, as in the 0.5B's 896).

// 32 values: x = d * q + m, q in [0, 16), nibbles as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// 32 values: x = d * (q - 16), q 5-bit: the low 4 bits as in Q4_0, bit 4 of element j in bit j
// of qh (a little-endian 32-bit word).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// 32 values: x = d * q + m, q 5-bit laid out as in Q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// 32 values: x = d * kIq4NlValues[q], q 4-bit laid out as in Q4_0 (a non-uniform grid).
struct BlockIq4Nl {
  uint16_t d;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockIq4Nl) == 18);
inline constexpr int8_t kIq4NlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// 256 values in 16 sub-blocks of 16: x = d * (sc & 15) * q - dmin * (sc >> 4), q 2-bit. Each
// 32-byte half of qs holds 128 values: bits 2j..2j+1 of byte l are element 32j + l of the half
// (l < 32; sub-block 2j for l < 16, 2j + 1 above).
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// 256 values in 16 sub-blocks of 16: x = d * (sc - 32) * (q - 4), q = 2 low bits laid out as in
// Q2_K + a high bit (bit 4h + j of hmask[l] for element 128h + 32j + l); 6-bit sc packed in
// 12 bytes (low nibbles in bytes 0-7, high 2-bit pairs in bytes 8-11).
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[kKScaleBytes];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// 256 values in 8 sub-blocks of 32: x = d * sc[s] * q - dmin * m[s] as in Q4_K, q 5-bit: the
// low 4 bits as in Q4_K, bit 4 of element 64g + 32i + l in bit 2g + i of qh[l].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q4_0 of 8 rows, one block column: the 8 scales, then 128 bytes in which 32-bit lane r holds
// row r's values. Lane r of byte group c (c = 0..3, 32 bytes each) has elements 4c..4c+3 of row
// r in its low nibbles and elements 16+4c..16+4c+3 in its high nibbles, so one load, a mask
// and a shift give 4 consecutive values of all 8 rows, one row per 32-bit lane.
struct BlockQ4_0x8 {
  uint16_t d[8];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0));

// Q5_0 of 8 rows, one block column: the 8 scales; the high bits, bit g of byte 4r + k being the
// fifth bit of row r's value at byte 4r + k of element group g (groups 0-3: the low nibbles of
// byte group g of qs, groups 4-7: the high nibbles of byte group g - 4); then the low 4 bits
// laid out as in BlockQ4_0x8. One shift and a mask put group g's fifth bits in place.
struct BlockQ5_0x8 {
  uint16_t d[8];
  uint8_t qh[32];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_0x8) == 8 * sizeof(BlockQ5_0));

// Q5_1 of 8 rows likewise, with the 8 rows' mins (x = d * q + m).
struct BlockQ5_1x8 {
  uint16_t d[8];
  uint16_t m[8];
  uint8_t qh[32];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ5_1x8) == 8 * sizeof(BlockQ5_1));

// IQ4_NL of 8 rows: the Q4_0x8 layout, the codes indexing kIq4NlValues.
struct BlockIq4Nlx8 {
  uint16_t d[8];
  uint8_t qs[128];
};
static_assert(sizeof(BlockIq4Nlx8) == 8 * sizeof(BlockIq4Nl));

// Q8_0 of 8 rows, one block column: the 8 scales, then 256 bytes in which byte group c
// (c = 0..7, 32 bytes each) holds elements 4c..4c+3 of row r in 32-bit lane r.
struct BlockQ8_0x8 {
  uint16_t d[8];
  int8_t qs[256];
};
static_assert(sizeof(BlockQ8_0x8) == 8 * sizeof(BlockQ8_0));

// Q4_K of 8 rows, one super-block column (256 values of each row). The six-bit scales and mins of
// the 8 rows' sub-blocks are stored by index i = 16k + 2r + p for sub-block s = 2k + p of row r
// (so 16 consecutive indices widen to int16 pairs (s = 2k, 2k + 1) in 32-bit lane r): the low 4
// bits of index i in the low nibble of scales_lo[i] (i < 32) or the high nibble of
// scales_lo[i - 32], likewise mins_lo; high[i] holds the top 2 bits of scale i (bits 0-1),
// scale i + 32 (bits 2-3), min i (4-5) and min i + 32 (6-7). The codes: sub-block s takes the
// 128 bytes from q + 128 s, laid out as a BlockQ4_0x8's qs (its 32 values as one Q4_0 block of
// each row).
struct BlockQ4_Kx8 {
  static constexpr int kSubBlockBytes = 128;
  uint16_t d[8];
  uint16_t dmin[8];
  uint8_t scales_lo[32];
  uint8_t mins_lo[32];
  uint8_t high[32];
  uint8_t q[8 * kSubBlockBytes];
};
static_assert(sizeof(BlockQ4_Kx8) == 8 * sizeof(BlockQ4_K));

// Q5_K of 8 rows: the Q4_Kx8 layout with 160 bytes per sub-block (one stream for the
// prefetcher): the low 4 bits as in Q4_Kx8, then 32 bytes of fifth bits laid out as a
// BlockQ5_0x8's qh (bit c of byte 4r + k: the value in the low nibble of byte 4r + k of byte
// group c; bit c + 4: the one in its high nibble).
struct BlockQ5_Kx8 {
  static constexpr int kSubBlockBytes = 160;
  uint16_t d[8];
  uint16_t dmin[8];
  uint8_t scales_lo[32];
  uint8_t mins_lo[32];
  uint8_t high[32];
  uint8_t q[8 * kSubBlockBytes];
};
static_assert(sizeof(BlockQ5_Kx8) == 8 * sizeof(BlockQ5_K));

// Q2_K of 8 rows, one super-block column. scales[16k + 2r + p] is the file's scale byte of
// sub-block 2k + p (16 values) of row r (low nibble: scale, high nibble: min). Sub-block s takes
// the 32 bytes from q + 32 s: byte 4r + k holds the 2-bit code of element 4g + k in bits 2g..2g+1.
struct BlockQ2_Kx8 {
  uint16_t d[8];
  uint16_t dmin[8];
  uint8_t scales[128];
  uint8_t q[16 * 32];
};
static_assert(sizeof(BlockQ2_Kx8) == 8 * sizeof(BlockQ2_K));

// Q3_K of 8 rows, one super-block column. The six-bit scales (stored + 32, as in the file) by
// index i = 16k + 2r + p for sub-block 2k + p of row r: the low 4 bits in nibble i / 64 of scales_lo[i % 64], the top 2
// bits in bits 2 (i / 32)..+1 of scales_hi[i % 32]. Sub-blocks 2j and 2j + 1 take the 96 bytes
// from q + 96 j: the low 2 bits of each (32 bytes, laid out as in Q2_Kx8), then 32 bytes whose
// byte 4r + k holds the third bit of element 4g + k of sub-block 2j in bit g and of sub-block
// 2j + 1 in bit 4 + g. A value is d * (scale - 32) * (code - 4).
struct BlockQ3_Kx8 {
  uint16_t d[8];
  uint8_t scales_lo[64];
  uint8_t scales_hi[32];
  uint8_t q[8 * 96];
};
static_assert(sizeof(BlockQ3_Kx8) == 8 * sizeof(BlockQ3_K));

// Q6_K of 8 rows, one super-block column. scales[16k + 2r + p] is the scale of sub-block
// 2k + p (16 values) of row r. Sub-block s takes 96 consecutive bytes of q (one stream for the
// prefetcher; two streams, low and high bits, read at half the speed): 64 bytes of low bits,
// whose byte group c (c = 0, 1; 32 bytes, lane r = row r) holds the low 4 bits of elements
// 4c..4c+3 of the sub-block in its low nibbles and 8+4c..8+4c+3 in its high nibbles; then 32
// bytes in which byte 4r + k holds the top 2 bits of element 4g + k in bits 2g..2g+1 (g = 0..3).
struct BlockQ6_Kx8 {
  uint16_t d[8];
  int8_t scales[128];
  uint8_t q[16 * 96];
};
static_assert(sizeof(BlockQ6_Kx8) == 8 * sizeof(BlockQ6_K));

}  // namespace qb
