// The ISA-independent frame of the attention kernels over runs of query tokens
// (attention_avx512.cc, attention_avx2.cc): each query row's running state, the key-tile loop
// with its prefetches, and the final normalization. Each ISA file supplies the key/value
// staging and the per-tile arithmetic (struct with StageKeys, StageValues, Tiles) and includes
// this inside its own compilation flags; internal linkage (an unnamed namespace), as in
// avx2_helpers.h, so no copy built for one ISA can stand in for another's.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <type_traits>

namespace qb::kernels::cpu {
namespace {  // NOLINT(google-build-namespaces): see above

constexpr int64_t kRunTile = 32;        // keys a tile
constexpr int64_t kRunMaxHeadDim = 256;  // (head_dim a multiple of 64)
constexpr int64_t kRunMaxRows = 128;     // query rows (tokens x heads) of one call
// Lines of one key tile (K and V rows of up to kRunTile keys, f32 rows of kRunMaxHeadDim at most).
constexpr int64_t kRunMaxLines = 2 * kRunTile * (4 * kRunMaxHeadDim / 64);

// Running state of a query row: max, sum of exponentials, output (hd floats, unnormalized).
struct RowState {
  const float* q;
  int64_t n_keys;  // keys this row sees (its token's position + 1)
  float max, sum;
  float* out;
};

// The cache lines of a key tile, to prefetch a few at a time while the tile before it is
// computed. A burst of them (the tile's 128-256 lines at once) stalled the thread: a software
// prefetch that misses holds one of the core's few miss buffers, and once they are all taken the
// next prefetch waits; issued one or two per dimension of the score loop, they overlap the
// arithmetic instead (docs/KERNELS.md, "decode attention").
struct TileLines {
  const char* line[kRunMaxLines];
  int64_t n = 0;
};

template <typename Kv>
void CollectTileLines(const void* k, const void* v, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset,
                      int64_t hd, TileLines& out) {
  const int64_t bytes = Kv::RowBytes(hd);
  out.n = 0;
  for (int64_t j = 0; j < nj; ++j) {
    const char* kr = reinterpret_cast<const char*>(Kv::Row(k, rows[j], stride, offset));
    const char* vr = reinterpret_cast<const char*>(Kv::Row(v, rows[j], stride, offset));
    for (int64_t b = 0; b < bytes; b += 64) {
      out.line[out.n++] = kr + b;
      out.line[out.n++] = vr + b;
    }
  }
}

// Issues lines [next, next + count) of `lines` (clamped to its end) and advances next.
inline void PrefetchSome(const TileLines& lines, int64_t& next, int64_t count) {
  for (const int64_t end = next + count < lines.n ? next + count : lines.n; next < end; ++next)
    _mm_prefetch(lines.line[next], _MM_HINT_T0);
}

// The next tile's lines, issued a few at each step of the score loops of all the row blocks of
// a tile (steps: how many steps the whole tile's loops take), so the misses spread over the tile.
class PrefetchCursor {
 public:
  PrefetchCursor(const TileLines& lines, int64_t steps) : lines_(lines), per_step_((lines.n + steps - 1) / steps) {}
  void Step() { PrefetchSome(lines_, next_, per_step_); }

 private:
  const TileLines& lines_;
  int64_t next_ = 0;
  int64_t per_step_;
};

// f(std::integral_constant<int, NR>{}, r0, cursor) for NR = min(rows, MaxRows).
template <int MaxRows, int NR = MaxRows, typename F>
void CallWithRows(int64_t rows, F& f, int64_t r0, PrefetchCursor& cursor) {
  if constexpr (NR > 1) {
    if (rows < NR) return CallWithRows<MaxRows, NR - 1>(rows, f, r0, cursor);
  }
  f(std::integral_constant<int, NR>{}, r0, cursor);
}

// Calls f for each block of up to MaxRows query rows; each block's score loop takes
// steps_per_block steps of the cursor over the next tile's lines.
template <int MaxRows, typename F>
void ForRowBlocks(int64_t n_rows, const TileLines& next_tile, int64_t steps_per_block, F&& f) {
  PrefetchCursor cursor(next_tile, steps_per_block * ((n_rows + MaxRows - 1) / MaxRows));
  for (int64_t r0 = 0; r0 < n_rows; r0 += MaxRows) CallWithRows<MaxRows>(n_rows - r0, f, r0, cursor);
}

// m consecutive tokens (the first sees n_keys0 keys) x n_q query heads of one KV head: Isa's
// Prepare sees the rows first (the integer path quantizes their queries there); then tile by
// tile, StageKeys / StageValues stage the tile (kt transposed, vt by rows) and Tiles updates
// every row; then out = each row's sum of weighted values over its sum of weights.
template <typename Isa, typename Kv>
void AttendRunFrame(const float* q, int64_t q_stride, int64_t m, int64_t n_q, const void* k, const void* v,
                    const int32_t* rows, int64_t n_keys0, int64_t stride, int64_t offset, int64_t hd, float scale,
                    float* scratch, float* out, int64_t out_stride) {
  const int64_t n_rows = m * n_q;
  RowState rs[kRunMaxRows];
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t i = r / n_q, h = r % n_q;
    rs[r] = RowState{q + i * q_stride + h * hd, n_keys0 + i, -__builtin_inff(), 0.f, scratch + r * hd};
    for (int64_t d = 0; d < hd; ++d) rs[r].out[d] = 0.f;
  }
  Isa isa;
  isa.Prepare(rs, n_rows, hd);
  const int64_t n_keys = n_keys0 + m - 1;  // the last token's
  alignas(64) float kt[kRunMaxHeadDim * kRunTile];
  alignas(64) float vt[kRunTile * kRunMaxHeadDim];
  TileLines next;  // the following tile's, prefetched during this one's arithmetic
  for (int64_t j0 = 0; j0 < n_keys; j0 += kRunTile) {
    const int64_t nj = n_keys - j0 < kRunTile ? n_keys - j0 : kRunTile, j1 = j0 + kRunTile;
    if (j1 < n_keys)
      CollectTileLines<Kv>(k, v, rows + j1, n_keys - j1 < kRunTile ? n_keys - j1 : kRunTile, stride, offset, hd, next);
    else
      next.n = 0;
    isa.template StageKeys<Kv>(k, rows + j0, nj, stride, offset, hd, kt);
    isa.template StageValues<Kv>(v, rows + j0, nj, stride, offset, hd, vt);
    isa.Tiles(rs, n_rows, j0, kt, vt, hd, scale, next);
  }
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t i = r / n_q, h = r % n_q;
    const float inv = 1.f / rs[r].sum;
    float* o = out + i * out_stride + h * hd;
    for (int64_t d = 0; d < hd; ++d) o[d] = rs[r].out[d] * inv;
  }
}

}  // namespace
}  // namespace qb::kernels::cpu
