// AVX2 attention over the paged KV cache, the structure of attention_avx512.cc in 8-lane
// vectors: a run of consecutive query tokens of one sequence (a prefill chunk, or one decoding
// token) and the query heads of one GQA group share key tiles of 32 rows (each tile's scores,
// an online softmax, the weighted values, then the next tile).
//
// Per query row (token, head) the arithmetic is fixed whatever the run, the group or the batch
// (score of key j = q . k_j summed over the dimensions in order, lane = key; tiles at key 0 and
// every 32; each row its own running max, sum and output; keys past a row's position add exact
// zeros), so a token's result is the same decoded alone, batched, or inside a prefill chunk.
// A q8_0 cache is scored in integers instead (Avx2RunQ8 below), with the same guarantees.
// The first AVX2 path ran prefill attention token by token (one layer's 2048-token prefill:
// 147 ms against 52 ms for this structure on AVX-512, docs/KERNELS.md).
//
// Compiled with -mavx2 -mfma -mf16c and only called after a CPU check.
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cpu/avx2_helpers.h"
#include "kernels/cpu/attention_run.h"
#include "kernels/cpu/linear_kernels.h"
#include "kernels/cpu/unrolled.h"
#include "tensor/quant_blocks.h"

namespace qb::kernels::cpu {

namespace {

constexpr int64_t kTile = kRunTile;  // keys a tile
constexpr int64_t kRowBlock = 3;      // query rows sharing each key/value load (16 ymm registers)

// Cache rows of one KV head: Row(base, row, stride, offset) is its first element, RowBytes its
// size, Load8(row, d) its values d..d+7 as f32 (exact; d a multiple of 8).
struct KvF32 {
  static const float* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const float*>(base) + row * stride + offset;
  }
  static int64_t RowBytes(int64_t hd) { return 4 * hd; }
  static __m256 Load8(const float* p, int64_t d) { return _mm256_loadu_ps(p + d); }
};
struct KvF16 {
  static const uint16_t* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const uint16_t*>(base) + row * stride + offset;
  }
  static int64_t RowBytes(int64_t hd) { return 2 * hd; }
  static __m256 Load8(const uint16_t* p, int64_t d) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + d)));
  }
};
struct KvBF16 : KvF16 {
  static __m256 Load8(const uint16_t* p, int64_t d) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + d)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
};
struct KvQ8_0 {  // blocks of 32 (stride and offset multiples of 32): d * q
  static const BlockQ8_0* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const BlockQ8_0*>(base) + (row * stride + offset) / 32;
  }
  static int64_t RowBytes(int64_t hd) { return hd / 32 * static_cast<int64_t>(sizeof(BlockQ8_0)); }
  static __m256 Load8(const BlockQ8_0* p, int64_t d) {
    const BlockQ8_0& b = p[d / 32];
    const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.qs + (d % 32)));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), _mm256_set1_ps(F16Table(b.d)));
  }
};

// r[i] (row i of an 8 x 8 block) becomes column i.
inline void Transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

// kt[d * kTile + j] = key j's value d (f32) for j < nj, 0 for the rest of the tile.
template <typename Kv>
void StageKeys(const void* k, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset, int64_t hd, float* kt) {
  for (int64_t j0 = 0; j0 < kTile; j0 += 8) {
    decltype(Kv::Row(k, 0, 0, 0)) src[8];
    for (int64_t i = 0; i < 8; ++i) src[i] = j0 + i < nj ? Kv::Row(k, rows[j0 + i], stride, offset) : nullptr;
    for (int64_t d0 = 0; d0 < hd; d0 += 8) {
      __m256 r[8];
      for (int64_t i = 0; i < 8; ++i) r[i] = src[i] != nullptr ? Kv::Load8(src[i], d0) : _mm256_setzero_ps();
      Transpose8(r);
      for (int64_t c = 0; c < 8; ++c) _mm256_store_ps(kt + (d0 + c) * kTile + j0, r[c]);
    }
  }
}

// vt[j * hd + d] = value j's value d (f32), j < nj.
template <typename Kv>
void StageValues(const void* v, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset, int64_t hd, float* vt) {
  for (int64_t j = 0; j < nj; ++j) {
    const auto* src = Kv::Row(v, rows[j], stride, offset);
    for (int64_t d = 0; d < hd; d += 8) _mm256_store_ps(vt + j * hd + d, Kv::Load8(src, d));
  }
}

inline float Hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

// A key tile's scores s (keys j0 .. j0 + 32, 8 a vector) for NR query rows: the online-softmax
// update, then the weighted values added to each row's output.
template <int NR>
[[gnu::always_inline]] inline void SoftmaxAndValues(RowState* rs, int64_t j0, __m256 (&s)[NR][4], const float* vt,
                                                    int64_t hd, float scale) {
  alignas(32) float p[NR][kTile];
  int64_t keys = 0;  // the most keys of this tile any of the rows sees
  const __m256 neg_inf = _mm256_set1_ps(-__builtin_inff()), vscale = _mm256_set1_ps(scale);
  const __m256 lane = _mm256_setr_ps(0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f);
  QB_UNROLLED for (int r = 0; r < NR; ++r) {
    RowState& st = rs[r];
    const int64_t c = st.n_keys - j0 < 0 ? 0 : (st.n_keys - j0 > kTile ? kTile : st.n_keys - j0);
    if (c == 0) {
      for (int64_t j = 0; j < kTile; j += 8) _mm256_store_ps(p[r] + j, _mm256_setzero_ps());
      continue;
    }
    keys = c > keys ? c : keys;
    __m256 mask[4], a[4];
    QB_UNROLLED for (int v = 0; v < 4; ++v) {  // lanes of keys this row sees: key index < c
      mask[v] = _mm256_cmp_ps(_mm256_add_ps(lane, _mm256_set1_ps(8.f * static_cast<float>(v))),
                              _mm256_set1_ps(static_cast<float>(c)), _CMP_LT_OQ);
      a[v] = _mm256_blendv_ps(neg_inf, _mm256_mul_ps(s[r][v], vscale), mask[v]);
    }
    const float tile_max = Hmax(_mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3])));
    const float new_max = tile_max > st.max ? tile_max : st.max;
    if (st.max != -__builtin_inff() && new_max != st.max) {  // rescale what the earlier tiles summed
      const float alpha = _mm_cvtss_f32(_mm256_castps256_ps128(Exp8(_mm256_set1_ps(st.max - new_max))));
      st.sum *= alpha;
      const __m256 av = _mm256_set1_ps(alpha);
      for (int64_t d = 0; d < hd; d += 8) _mm256_storeu_ps(st.out + d, _mm256_mul_ps(_mm256_loadu_ps(st.out + d), av));
    }
    st.max = new_max;
    const __m256 mv = _mm256_set1_ps(new_max);
    __m256 e[4];
    QB_UNROLLED for (int v = 0; v < 4; ++v) {
      e[v] = _mm256_and_ps(mask[v], Exp8(_mm256_sub_ps(a[v], mv)));
      _mm256_store_ps(p[r] + 8 * v, e[v]);
    }
    st.sum += Hsum(_mm256_add_ps(_mm256_add_ps(e[0], e[1]), _mm256_add_ps(e[2], e[3])));
  }
  // out += p . values, 32 dimensions at a time; a row's keys past its own count have p = 0.
  for (int64_t d0 = 0; d0 < hd; d0 += 32) {
    __m256 o[NR][4];
    QB_UNROLLED for (int r = 0; r < NR; ++r)
      QB_UNROLLED for (int v = 0; v < 4; ++v) o[r][v] = _mm256_loadu_ps(rs[r].out + d0 + 8 * v);
    for (int64_t j = 0; j < keys; ++j) {
      const float* vj = vt + j * hd + d0;
      const __m256 v0 = _mm256_load_ps(vj), v1 = _mm256_load_ps(vj + 8), v2 = _mm256_load_ps(vj + 16),
                   v3 = _mm256_load_ps(vj + 24);
      QB_UNROLLED for (int r = 0; r < NR; ++r) {
        const __m256 pj = _mm256_broadcast_ss(p[r] + j);
        o[r][0] = _mm256_fmadd_ps(pj, v0, o[r][0]);
        o[r][1] = _mm256_fmadd_ps(pj, v1, o[r][1]);
        o[r][2] = _mm256_fmadd_ps(pj, v2, o[r][2]);
        o[r][3] = _mm256_fmadd_ps(pj, v3, o[r][3]);
      }
    }
    QB_UNROLLED for (int r = 0; r < NR; ++r)
      QB_UNROLLED for (int v = 0; v < 4; ++v) _mm256_storeu_ps(rs[r].out + d0 + 8 * v, o[r][v]);
  }
}

// One key tile (keys j0 .. j0 + 32) for NR query rows: f32 scores, then the softmax and values.
template <int NR>
void TileRows(RowState* rs, int64_t j0, const float* kt, const float* vt, int64_t hd, float scale,
              PrefetchCursor& next) {
  __m256 s[NR][4];
  QB_UNROLLED for (int r = 0; r < NR; ++r)
    QB_UNROLLED for (int v = 0; v < 4; ++v) s[r][v] = _mm256_setzero_ps();
  for (int64_t d = 0; d < hd; ++d) {
    next.Step();  // the next tile's lines (attention_run.h)
    const float* kd = kt + d * kTile;
    const __m256 k0 = _mm256_load_ps(kd), k1 = _mm256_load_ps(kd + 8), k2 = _mm256_load_ps(kd + 16),
                 k3 = _mm256_load_ps(kd + 24);
    QB_UNROLLED for (int r = 0; r < NR; ++r) {
      const __m256 qd = _mm256_broadcast_ss(rs[r].q + d);
      s[r][0] = _mm256_fmadd_ps(qd, k0, s[r][0]);
      s[r][1] = _mm256_fmadd_ps(qd, k1, s[r][1]);
      s[r][2] = _mm256_fmadd_ps(qd, k2, s[r][2]);
      s[r][3] = _mm256_fmadd_ps(qd, k3, s[r][3]);
    }
  }
  SoftmaxAndValues<NR>(rs, j0, s, vt, hd, scale);
}

// The staging and per-tile arithmetic that attention_run.h's frame calls (f32 scores).
struct Avx2Run {
  static void Prepare(const RowState*, int64_t, int64_t) {}
  template <typename Kv>
  static void StageKeys(const void* k, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset, int64_t hd,
                        float* kt) {
    cpu::StageKeys<Kv>(k, rows, nj, stride, offset, hd, kt);
  }
  template <typename Kv>
  static void StageValues(const void* v, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset, int64_t hd,
                          float* vt) {
    cpu::StageValues<Kv>(v, rows, nj, stride, offset, hd, vt);
  }
  static void Tiles(RowState* rs, int64_t n_rows, int64_t j0, const float* kt, const float* vt, int64_t hd,
                    float scale, const TileLines& next_tile) {
    ForRowBlocks<kRowBlock>(n_rows, next_tile, hd, [&](auto nr, int64_t r0, PrefetchCursor& next) {
      TileRows<decltype(nr)::value>(rs + r0, j0, kt, vt, hd, scale, next);
    });
  }
};

// A q8_0 cache scored in integers, as llama.cpp's AVX2 q8_0 dot products are: the queries arrive
// rounded to q8_0 (RoundRowQ8_0, by cpu::Attention) and Prepare recovers their codes and scales
// exactly; StageKeys keeps the keys' codes and their magnitudes transposed by 4-byte groups (one
// vector: 8 keys x 4 dimensions) with each key's block scales beside them. Per 32-dimension
// block, vpmaddubsw(|k|, sign(q, k)) then vpmaddwd by ones gives sum k q exactly in int32 (a pair
// of products is at most 2 x 127 x 127, inside int16); a row's score is the sum over its blocks,
// in order, of dq * dk * that. A quarter of the f32 path's staging transposes and no conversion
// of the keys; the score arithmetic itself costs about what the f32 one does on AVX2.
struct Avx2RunQ8 {
  static constexpr int64_t kBlocks = kRunMaxHeadDim / 32;
  int32_t codes[kRunMaxRows][kRunMaxHeadDim / 4];  // a row's query codes, 4 a dword
  float dq[kRunMaxRows][kBlocks];                  // its block scales

  void Prepare(const RowState* rs, int64_t n_rows, int64_t hd) {
    const __m256 sign = _mm256_set1_ps(-0.f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t r = 0; r < n_rows; ++r)
      for (int64_t b = 0; b < hd / 32; ++b) {
        __m256 x[4];
        for (int i = 0; i < 4; ++i) x[i] = _mm256_loadu_ps(rs[r].q + 32 * b + 8 * i);
        const __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, x[0]), _mm256_andnot_ps(sign, x[1])),
                                       _mm256_max_ps(_mm256_andnot_ps(sign, x[2]), _mm256_andnot_ps(sign, x[3])));
        const float amax = Hmax(m);
        const float d = amax / 127.f, inv = d != 0.f ? 1.f / d : 0.f;
        __m256i c[4];  // nearest: the exact codes
        for (int i = 0; i < 4; ++i) c[i] = _mm256_cvtps_epi32(_mm256_mul_ps(x[i], _mm256_set1_ps(inv)));
        const __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(c[0], c[1]), _mm256_packs_epi32(c[2], c[3]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(&codes[r][8 * b]), _mm256_permutevar8x32_epi32(bytes, order));
        dq[r][b] = d;
      }
  }

  // The tile as kt holds it: group g's 32 keys (4 bytes each) at byte 128 g, their magnitudes
  // 32 hd bytes on, then the scales (floats kd[b * 32 + j]).
  static int64_t MagnitudesAt(int64_t hd) { return hd * kTile; }
  static int64_t ScalesAt(int64_t hd) { return hd * kTile / 2; }

  template <typename Kv>
  static void StageKeys(const void* k, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset, int64_t hd,
                        float* kt) {
    auto* kq = reinterpret_cast<uint8_t*>(kt);
    uint8_t* ka = kq + MagnitudesAt(hd);
    float* kd = kt + ScalesAt(hd);
    for (int64_t j0 = 0; j0 < kTile; j0 += 8) {
      const BlockQ8_0* src[8];
      for (int64_t i = 0; i < 8; ++i) src[i] = j0 + i < nj ? Kv::Row(k, rows[j0 + i], stride, offset) : nullptr;
      for (int64_t b = 0; b < hd / 32; ++b) {
        __m256 r[8];
        for (int64_t i = 0; i < 8; ++i) {
          kd[b * kTile + j0 + i] = src[i] != nullptr ? F16Table(src[i][b].d) : 0.f;
          r[i] = src[i] != nullptr ? _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[i][b].qs)))
                                   : _mm256_setzero_ps();
        }
        Transpose8(r);
        for (int64_t c = 0; c < 8; ++c) {
          const __m256i codes = _mm256_castps_si256(r[c]);
          const int64_t at = ((b * 8 + c) * kTile + j0) * 4;
          _mm256_store_si256(reinterpret_cast<__m256i*>(kq + at), codes);
          _mm256_store_si256(reinterpret_cast<__m256i*>(ka + at), _mm256_abs_epi8(codes));
        }
      }
    }
  }
  template <typename Kv>
  static void StageValues(const void* v, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset, int64_t hd,
                          float* vt) {
    cpu::StageValues<Kv>(v, rows, nj, stride, offset, hd, vt);
  }

  template <int NR>
  void TileRows(RowState* rs, int64_t r0, int64_t j0, const float* kt, const float* vt, int64_t hd, float scale,
                PrefetchCursor& next) const {
    const auto* kq = reinterpret_cast<const uint8_t*>(kt);
    const uint8_t* ka = kq + MagnitudesAt(hd);
    const float* kd = kt + ScalesAt(hd);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 s[NR][4];
    for (int v = 0; v < 4; ++v) {  // keys 8 v .. 8 v + 7
      QB_UNROLLED for (int r = 0; r < NR; ++r) s[r][v] = _mm256_setzero_ps();
      for (int64_t b = 0; b < hd / 32; ++b) {
        __m256i a[NR];
        QB_UNROLLED for (int r = 0; r < NR; ++r) a[r] = _mm256_setzero_si256();
        for (int64_t g = 8 * b; g < 8 * b + 8; ++g) {
          next.Step();
          const int64_t at = (g * kTile + 8 * v) * 4;
          const __m256i kk = _mm256_load_si256(reinterpret_cast<const __m256i*>(kq + at));
          const __m256i kabs = _mm256_load_si256(reinterpret_cast<const __m256i*>(ka + at));
          QB_UNROLLED for (int r = 0; r < NR; ++r) {
            const __m256i qs = _mm256_sign_epi8(_mm256_set1_epi32(codes[r0 + r][g]), kk);
            a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(_mm256_maddubs_epi16(kabs, qs), ones));
          }
        }
        const __m256 kdv = _mm256_load_ps(kd + b * kTile + 8 * v);
        QB_UNROLLED for (int r = 0; r < NR; ++r)
          s[r][v] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[r]), _mm256_mul_ps(kdv, _mm256_set1_ps(dq[r0 + r][b])),
                                    s[r][v]);
      }
    }
    SoftmaxAndValues<NR>(rs + r0, j0, s, vt, hd, scale);
  }
  void Tiles(RowState* rs, int64_t n_rows, int64_t j0, const float* kt, const float* vt, int64_t hd, float scale,
             const TileLines& next_tile) const {
    ForRowBlocks<kRowBlock>(n_rows, next_tile, hd, [&](auto nr, int64_t r0, PrefetchCursor& next) {
      TileRows<decltype(nr)::value>(rs, r0, j0, kt, vt, hd, scale, next);
    });
  }
};

void AttendRun256(const float* q, int64_t q_stride, int64_t m, int64_t n_q, const void* k, const void* v,
                  DType kv_type, const int32_t* rows, int64_t n_keys0, int64_t stride, int64_t offset, int64_t head_dim,
                  float scale, float* scratch, float* out, int64_t out_stride) {
  auto run = [&](auto isa, auto kv) {
    AttendRunFrame<typename decltype(isa)::type, typename decltype(kv)::type>(
        q, q_stride, m, n_q, k, v, rows, n_keys0, stride, offset, head_dim, scale, scratch, out, out_stride);
  };
  switch (kv_type) {
    case DType::kF16:
      return run(std::type_identity<Avx2Run>{}, std::type_identity<KvF16>{});
    case DType::kBF16:
      return run(std::type_identity<Avx2Run>{}, std::type_identity<KvBF16>{});
    case DType::kQ8_0:
      return run(std::type_identity<Avx2RunQ8>{}, std::type_identity<KvQ8_0>{});
    default:
      return run(std::type_identity<Avx2Run>{}, std::type_identity<KvF32>{});
  }
}

}  // namespace

void AddAvx2AttentionKernels(CpuKernels& k) {
  k.attend_run = AttendRun256;
  k.attend_run_max_rows = kRunMaxRows;
}

}  // namespace qb::kernels::cpu
