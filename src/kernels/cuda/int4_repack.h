// GPTQ/AWQ weights (loaded as Q4Z, see tensor/quant_blocks.h) repacked into the GPU's int4
// layout (cuda_api.h, WeightFormat::kInt4). Host code; exact (no value changes).
#pragma once

#include <cstdint>
#include <vector>

namespace qb::cuda {

struct Int4Host {
  int64_t rows = 0, cols = 0, group_size = 0;
  std::vector<uint32_t> codes;       // [rows, cols / 8]: nibble i of word w = input 8w + i
  std::vector<uint16_t> scale_zero;  // [rows, cols / group_size][2]: f16 scale, f16 zero
};

// Q4Z blocks [rows, cols / 32]. The group size is recovered as the largest multiple of 32
// dividing cols over which every row's blocks share scale and zero (Q4Z repeats them per 32),
// so a group-128 checkpoint reads one scale per 128 inputs again.
Int4Host RepackQ4Z(const void* blocks, int64_t rows, int64_t cols);

}  // namespace qb::cuda
