// The ISA-independent frame of the attention kernels over runs of query tokens
// (attention_avx512.cc, attention_avx2.cc): each query row's running state, the key-tile loop
// with its prefetches, and the final normalization. Each ISA file supplies the key/value
// staging and the per-tile arithmetic (struct with StageKeys, StageValues, Tiles) and includes
// this inside its own compilation flags; internal linkage (an unnamed namespace), as in
// avx2_helpers.h, so no copy built for one ISA can stand in for another's.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace qb::kernels::cpu {
namespace {  // NOLINT(google-build-namespaces): see above

constexpr int64_t kRunTile = 32;        // keys a tile
constexpr int64_t kRunMaxHeadDim = 256;  // (head_dim a multiple of 64)
constexpr int64_t kRunMaxRows = 128;     // query rows (tokens x heads) of one call
constexpr int64_t kRunAhead = 2;         // tiles prefetched ahead (into L2)

// Running state of a query row: max, sum of exponentials, output (hd floats, unnormalized).
struct RowState {
  const float* q;
  int64_t n_keys;  // keys this row sees (its token's position + 1)
  float max, sum;
  float* out;
};

template <typename Kv>
void PrefetchTile(const void* k, const void* v, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset,
                  int64_t hd) {
  const int64_t bytes = Kv::RowBytes(hd);
  for (int64_t j = 0; j < nj; ++j) {
    const char* kr = reinterpret_cast<const char*>(Kv::Row(k, rows[j], stride, offset));
    const char* vr = reinterpret_cast<const char*>(Kv::Row(v, rows[j], stride, offset));
    for (int64_t b = 0; b < bytes; b += 64) {
      _mm_prefetch(kr + b, _MM_HINT_T1);
      _mm_prefetch(vr + b, _MM_HINT_T1);
    }
  }
}

// m consecutive tokens (the first sees n_keys0 keys) x n_q query heads of one KV head: tile by
// tile, Isa::StageKeys / StageValues stage the tile (kt transposed, vt by rows) and Isa::Tiles
// updates every row; then out = each row's sum of weighted values over its sum of weights.
template <typename Isa, typename Kv>
void AttendRunFrame(const float* q, int64_t q_stride, int64_t m, int64_t n_q, const void* k, const void* v,
                    const int32_t* rows, int64_t n_keys0, int64_t stride, int64_t offset, int64_t hd, float scale,
                    float* scratch, float* out) {
  const int64_t n_rows = m * n_q;
  RowState rs[kRunMaxRows];
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t i = r / n_q, h = r % n_q;
    rs[r] = RowState{q + i * q_stride + h * hd, n_keys0 + i, -__builtin_inff(), 0.f, scratch + r * hd};
    for (int64_t d = 0; d < hd; ++d) rs[r].out[d] = 0.f;
  }
  const int64_t n_keys = n_keys0 + m - 1;  // the last token's
  alignas(64) float kt[kRunMaxHeadDim * kRunTile];
  alignas(64) float vt[kRunTile * kRunMaxHeadDim];
  for (int64_t j0 = 0; j0 < n_keys && j0 < kRunAhead * kRunTile; j0 += kRunTile)
    PrefetchTile<Kv>(k, v, rows + j0, n_keys - j0 < kRunTile ? n_keys - j0 : kRunTile, stride, offset, hd);
  for (int64_t j0 = 0; j0 < n_keys; j0 += kRunTile) {
    const int64_t nj = n_keys - j0 < kRunTile ? n_keys - j0 : kRunTile;
    const int64_t ahead = j0 + kRunAhead * kRunTile;  // prefetched kRunAhead tiles ahead
    if (ahead < n_keys)
      PrefetchTile<Kv>(k, v, rows + ahead, n_keys - ahead < kRunTile ? n_keys - ahead : kRunTile, stride, offset, hd);
    Isa::template StageKeys<Kv>(k, rows + j0, nj, stride, offset, hd, kt);
    Isa::template StageValues<Kv>(v, rows + j0, nj, stride, offset, hd, vt);
    Isa::Tiles(rs, n_rows, j0, kt, vt, hd, scale);
  }
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t i = r / n_q, h = r % n_q;
    const float inv = 1.f / rs[r].sum;
    float* o = out + i * q_stride + h * hd;
    for (int64_t d = 0; d < hd; ++d) o[d] = rs[r].out[d] * inv;
  }
}

}  // namespace
}  // namespace qb::kernels::cpu
