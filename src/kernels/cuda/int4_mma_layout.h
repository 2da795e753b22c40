// Where each int4 code and each activation sits in the tensor-core int4 layout (kInt4Mma), as
// plain functions that both the CUDA kernels (int4_mma.cu) and host code use: the repacking, the
// dequantization and the kernels' activation loads all derive their positions from here, and a
// CPU test (tests/kernels/int4_mma_layout_test.cc) multiplies a matrix through an emulation of
// mma.sync m16n8k16 with these positions to show that codes and activations meet.
//
// The fragments of mma.sync.m16n8k16 (f16 inputs; PTX ISA, "Matrix Fragments for mma.m16n8k16"),
// for lane L = 4 g + t of the warp:
//   A (16 x 16, rows x k): register a0 = (row g,     k 2t, 2t + 1)   a1 = (row g + 8, k 2t, 2t + 1)
//                          register a2 = (row g,     k 2t + 8, + 9)  a3 = (row g + 8, k 2t + 8, + 9)
//   B (16 x 8, k x token): register b0 = (k 2t, 2t + 1; token g)     b1 = (k 2t + 8, 2t + 9; token g)
//   D (16 x 8, f32):       d0, d1 = (row g; tokens 2t, 2t + 1)       d2, d3 = (row g + 8; same tokens)
// The k order inside one mma is free: any one-to-one map of the k-step's 16 inputs to k works if
// A and B use the same. This layout gives lane t the inputs 4t .. 4t + 3 of the k-step (k 2t,
// 2t + 1 -> inputs 4t, 4t + 1; k 2t + 8, 2t + 9 -> inputs 4t + 2, 4t + 3), so a lane's B
// fragment is one aligned 16-byte load of four consecutive activations; a k-step still covers 16
// consecutive inputs, so it lies inside one group (groups are multiples of 32 inputs).
//
// Codes: per 16-row tile and per 64-input chunk (4 k-steps), 32 lanes x 16 bytes; lane L's 16
// bytes are its A fragments of the 4 k-steps (word j = k-step j). Element e = 2 i + h of a word
// (i: fragment register a_i, h: its low or high f16 half) is the 4-bit code at bit 4 i + 16 h:
// bits 0-3 / 16-19 row g (a0), 4-7 / 20-23 row g + 8 (a1), 8-11 / 24-27 row g (a2), 12-15 /
// 28-31 row g + 8 (a3), so that OR-ing a masked nibble pair into f16 1024.0 (0x6400) gives
// {1024 + q, ...} exactly (int4_mma.cu decodes it).
#pragma once

#if defined(__CUDACC__)
#define QB_MMA_LAYOUT_FN __host__ __device__ __forceinline__ constexpr
#else
#define QB_MMA_LAYOUT_FN inline constexpr
#endif

namespace qb::cuda::mma_layout {

inline constexpr int kKStepInputs = 16;  // inputs of one mma (k)
inline constexpr int kChunkInputs = 64;  // inputs of one 16-byte code load per lane: 4 k-steps

// One code of a lane's word: its row within the 16-row tile, its input within the k-step's 16,
// and the bit of its lowest code bit in the word.
struct CodeSlot {
  int row;
  int input;
  int bit;
};

QB_MMA_LAYOUT_FN CodeSlot WordElement(int e, int g, int t) {
  const int i = e >> 1, h = e & 1;
  return CodeSlot{g + 8 * (i & 1), 4 * t + 2 * (i >> 1) + h, 4 * i + 16 * h};
}

// The first of the 4 consecutive inputs (within the k-step) of lane t's B fragment: b0 holds the
// activations of inputs +0, +1 (low, high half), b1 those of +2, +3.
QB_MMA_LAYOUT_FN int ActivationInput(int t) { return 4 * t; }

}  // namespace qb::cuda::mma_layout

#undef QB_MMA_LAYOUT_FN
