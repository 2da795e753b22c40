#include "kernels/cuda/int4_repack.h"

#include "tensor/quant_blocks.h"
#include "util/check.h"
#include "util/half.h"

namespace qb::cuda {

namespace {

bool SameParams(const BlockQ4Z& a, const BlockQ4Z& b) { return a.d == b.d && a.z == b.z; }

// Whether every group of `g` inputs of every row has one scale and zero.
bool GroupsAreUniform(const BlockQ4Z* blk, int64_t rows, int64_t nb, int64_t g) {
  const int64_t per = g / 32;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t b = 0; b < nb; ++b)
      if (!SameParams(blk[r * nb + b], blk[r * nb + b / per * per])) return false;
  return true;
}

}  // namespace

Int4Host RepackQ4Z(const void* blocks, int64_t rows, int64_t cols) {
  QB_CHECK(cols % 32 == 0, "RepackQ4Z: {} inputs are not whole blocks", cols);
  const auto* blk = static_cast<const BlockQ4Z*>(blocks);
  const int64_t nb = cols / 32;
  Int4Host h;
  h.rows = rows;
  h.cols = cols;
  h.group_size = 32;
  for (int64_t per = nb; per >= 1; --per)
    if (nb % per == 0 && GroupsAreUniform(blk, rows, nb, per * 32)) {
      h.group_size = per * 32;
      break;
    }
  const int64_t groups = cols / h.group_size, per = h.group_size / 32;
  h.codes.assign(static_cast<size_t>(rows * cols / 8), 0u);
  h.scale_zero.assign(static_cast<size_t>(rows * groups * 2), 0u);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ4Z& q = blk[r * nb + b];
      // Q4Z byte j: element j in the low nibble, element j + 16 in the high one.
      for (int j = 0; j < 32; ++j) {
        const uint32_t code = j < 16 ? (q.qs[j] & 15u) : (q.qs[j - 16] >> 4);
        const int64_t k = b * 32 + j;  // input index within the row
        h.codes[static_cast<size_t>(r * (cols / 8) + k / 8)] |= code << (4 * (k % 8));
      }
      if (b % per == 0) {
        const size_t at = static_cast<size_t>((r * groups + b / per) * 2);
        h.scale_zero[at] = q.d;
        h.scale_zero[at + 1] = F32ToF16(static_cast<float>(q.z));
      }
    }
  }
  return h;
}

}  // namespace qb::cuda
