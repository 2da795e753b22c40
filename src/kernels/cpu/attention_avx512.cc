// AVX-512 attention over the paged KV cache: a run of consecutive query tokens of one sequence
// (a prefill chunk, or one decoding token) and the query heads of one GQA group, key tiles of 32
// rows shared by all of them (flash-attention's order: each tile's scores, an online softmax,
// the weighted values, then the next tile).
//
// Per query row (token, head) the arithmetic is fixed whatever the run, the group or the batch:
// the score of key j is q . k_j summed over the dimensions in order (lane = key, so there is no
// reduction tree), tiles start at key 0 and every 32 keys, each row keeps its own running max,
// sum and output, and keys past a row's own position contribute exact zeros. So a token's
// result is bit-identical whether it is decoded alone, batched, or computed inside a prefill
// chunk of any length or starting point (recompute after preemption, prefix-cache hits): tested.
// A q8_0 cache is scored in integers instead (Avx512RunQ8 below), with the same guarantees.
//
// Compiled with AVX-512 options and only called after a CPU check; intrinsics only (see
// linear_kernels_avx512vnni.cc).
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cpu/avx512_helpers.h"
#include "kernels/cpu/attention_run.h"
#include "kernels/cpu/linear_kernels.h"
#include "tensor/quant_blocks.h"

// GCC 12 reports the undefined pass-through operand inside its own 512-bit intrinsics as
// uninitialized (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace qb::kernels::cpu {

namespace {

constexpr int64_t kTile = kRunTile;  // keys a tile
constexpr int64_t kRowBlock = 8;       // query rows sharing each key/value load

// Cache rows of one KV head: Row(base, row, stride, offset) is its first element, RowBytes its
// size, Load16(row, d) its values d..d+15 as f32 (exact; d a multiple of 16).
struct KvF32 {
  static const float* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const float*>(base) + row * stride + offset;
  }
  static int64_t RowBytes(int64_t hd) { return 4 * hd; }
  static __m512 Load16(const float* p, int64_t d) { return _mm512_loadu_ps(p + d); }
};
template <typename Cvt>
struct KvHalf {
  static const uint16_t* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const uint16_t*>(base) + row * stride + offset;
  }
  static int64_t RowBytes(int64_t hd) { return 2 * hd; }
  static __m512 Load16(const uint16_t* p, int64_t d) { return Cvt::Load(p + d); }
};
struct KvQ8_0 {  // blocks of 32 (stride and offset multiples of 32): d * q
  static const BlockQ8_0* Row(const void* base, int64_t row, int64_t stride, int64_t offset) {
    return static_cast<const BlockQ8_0*>(base) + (row * stride + offset) / 32;
  }
  static int64_t RowBytes(int64_t hd) { return hd / 32 * static_cast<int64_t>(sizeof(BlockQ8_0)); }
  static __m512 Load16(const BlockQ8_0* p, int64_t d) {
    const BlockQ8_0& b = p[d / 32];
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + (d % 32)));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), _mm512_set1_ps(kF16ToF32Table[b.d]));
  }
};

// r[i] (row i of a 16 x 16 block) becomes column i.
inline void Transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {  // within 128-bit lanes: (a0 b0 a1 b1), (a2 b2 a3 b3)
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  __m512 u[16];
  for (int i = 0; i < 16; i += 4) {  // rows i..i+3, column 4L + c in lane L of u[i + c]
    const __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
    const __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
    u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {  // gather lane L of u[c], u[4 + c], u[8 + c], u[12 + c]
    const __m512 x_lo = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), x_hi = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xee);
    const __m512 y_lo = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44), y_hi = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xee);
    r[c] = _mm512_shuffle_f32x4(x_lo, y_lo, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(x_lo, y_lo, 0xdd);
    r[8 + c] = _mm512_shuffle_f32x4(x_hi, y_hi, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(x_hi, y_hi, 0xdd);
  }
}

// kt[d * kTile + j] = key j's value d (f32) for j < nj, 0 for the rest of the tile.
template <typename Kv>
void StageKeys(const void* k, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset, int64_t hd, float* kt) {
  for (int64_t j0 = 0; j0 < kTile; j0 += 16) {
    decltype(Kv::Row(k, 0, 0, 0)) src[16];
    for (int64_t i = 0; i < 16; ++i) src[i] = j0 + i < nj ? Kv::Row(k, rows[j0 + i], stride, offset) : nullptr;
    for (int64_t d0 = 0; d0 < hd; d0 += 16) {
      __m512 r[16];
      for (int64_t i = 0; i < 16; ++i) r[i] = src[i] != nullptr ? Kv::Load16(src[i], d0) : _mm512_setzero_ps();
      Transpose16(r);
      for (int64_t c = 0; c < 16; ++c) _mm512_store_ps(kt + (d0 + c) * kTile + j0, r[c]);
    }
  }
}

// vt[j * hd + d] = value j's value d (f32), j < nj.
template <typename Kv>
void StageValues(const void* v, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset, int64_t hd, float* vt) {
  for (int64_t j = 0; j < nj; ++j) {
    const auto* src = Kv::Row(v, rows[j], stride, offset);
    for (int64_t d = 0; d < hd; d += 16) _mm512_store_ps(vt + j * hd + d, Kv::Load16(src, d));
  }
}

// A key tile's scores s (keys j0 .. j0 + 32; s[r][0] keys 0-15, s[r][1] keys 16-31) for NR
// query rows: the online-softmax update, then the weighted values added to each row's output.
template <int NR>
[[gnu::always_inline]] inline void SoftmaxAndValues(RowState* rs, int64_t j0, __m512 (&s)[NR][2], const float* vt,
                                                    int64_t hd, float scale) {
  alignas(64) float p[NR][kTile];
  int64_t keys = 0;  // the most keys of this tile any of the rows sees
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  for (int r = 0; r < NR; ++r) {
    RowState& st = rs[r];
    const int64_t c = st.n_keys - j0 < 0 ? 0 : (st.n_keys - j0 > kTile ? kTile : st.n_keys - j0);
    if (c == 0) {
      for (int64_t j = 0; j < kTile; j += 16) _mm512_store_ps(p[r] + j, _mm512_setzero_ps());
      continue;
    }
    keys = c > keys ? c : keys;
    const __mmask16 m0 = c >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << c) - 1);
    const __mmask16 m1 = c >= 32 ? static_cast<__mmask16>(0xffff)
                                 : static_cast<__mmask16>(c > 16 ? (1u << (c - 16)) - 1 : 0u);
    const __m512 a0 = _mm512_mask_mov_ps(neg_inf, m0, _mm512_mul_ps(s[r][0], _mm512_set1_ps(scale)));
    const __m512 a1 = _mm512_mask_mov_ps(neg_inf, m1, _mm512_mul_ps(s[r][1], _mm512_set1_ps(scale)));
    const float tile_max = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
    const float new_max = tile_max > st.max ? tile_max : st.max;
    if (st.max != -__builtin_inff() && new_max != st.max) {  // rescale what the earlier tiles summed
      const float alpha = _mm512_cvtss_f32(Exp16(_mm512_set1_ps(st.max - new_max)));
      st.sum *= alpha;
      const __m512 av = _mm512_set1_ps(alpha);
      for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(st.out + d, _mm512_mul_ps(_mm512_loadu_ps(st.out + d), av));
    }
    st.max = new_max;
    const __m512 mv = _mm512_set1_ps(new_max);
    const __m512 e0 = _mm512_maskz_mov_ps(m0, Exp16(_mm512_sub_ps(a0, mv)));
    const __m512 e1 = _mm512_maskz_mov_ps(m1, Exp16(_mm512_sub_ps(a1, mv)));
    _mm512_store_ps(p[r], e0);
    _mm512_store_ps(p[r] + 16, e1);
    st.sum += _mm512_reduce_add_ps(_mm512_add_ps(e0, e1));
  }
  // out += p . values, 32 dimensions at a time; a row's keys past its own count have p = 0.
  for (int64_t d0 = 0; d0 < hd; d0 += 32) {
    __m512 o[NR][2];
    for (int r = 0; r < NR; ++r) {
      o[r][0] = _mm512_loadu_ps(rs[r].out + d0);
      o[r][1] = _mm512_loadu_ps(rs[r].out + d0 + 16);
    }
    for (int64_t j = 0; j < keys; ++j) {
      const __m512 v0 = _mm512_load_ps(vt + j * hd + d0), v1 = _mm512_load_ps(vt + j * hd + d0 + 16);
      for (int r = 0; r < NR; ++r) {
        const __m512 pj = _mm512_set1_ps(p[r][j]);
        o[r][0] = _mm512_fmadd_ps(pj, v0, o[r][0]);
        o[r][1] = _mm512_fmadd_ps(pj, v1, o[r][1]);
      }
    }
    for (int r = 0; r < NR; ++r) {
      _mm512_storeu_ps(rs[r].out + d0, o[r][0]);
      _mm512_storeu_ps(rs[r].out + d0 + 16, o[r][1]);
    }
  }
}

// One key tile (keys j0 .. j0 + 32) for NR query rows: f32 scores, then the softmax and values.
template <int NR>
void TileRows(RowState* rs, int64_t j0, const float* kt, const float* vt, int64_t hd, float scale,
              PrefetchCursor& next) {
  __m512 s[NR][2];
  for (int r = 0; r < NR; ++r) s[r][0] = s[r][1] = _mm512_setzero_ps();
  for (int64_t d = 0; d < hd; ++d) {
    next.Step();  // the next tile's lines (attention_run.h)
    const __m512 k0 = _mm512_load_ps(kt + d * kTile), k1 = _mm512_load_ps(kt + d * kTile + 16);
    for (int r = 0; r < NR; ++r) {
      const __m512 qd = _mm512_set1_ps(rs[r].q[d]);
      s[r][0] = _mm512_fmadd_ps(qd, k0, s[r][0]);
      s[r][1] = _mm512_fmadd_ps(qd, k1, s[r][1]);
    }
  }
  SoftmaxAndValues<NR>(rs, j0, s, vt, hd, scale);
}

// The staging and per-tile arithmetic that attention_run.h's frame calls (f32 scores).
struct Avx512Run {
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

// A q8_0 cache scored in integers (vpdpbusd), as llama.cpp's CPU attention does: the queries
// arrive rounded to q8_0 (RoundRowQ8_0, by cpu::Attention) and Prepare recovers their codes and
// scales exactly; StageKeys keeps the keys' codes, offset to unsigned (k + 128), transposed by
// 4-byte groups (one vector: 16 keys x 4 dimensions) with each key's block scales beside them.
// Per 32-dimension block, sum (k + 128) q - 128 sum q = sum k q exactly in int32; a row's score
// is the sum over its blocks, in order, of dq * dk * that. A quarter of the f32 path's staging
// transposes and no per-element conversion of the keys; the values are staged as f32 as before.
struct Avx512RunQ8 {
  static constexpr int64_t kBlocks = kRunMaxHeadDim / 32;
  int32_t codes[kRunMaxRows][kRunMaxHeadDim / 4];  // a row's query codes, 4 a dword
  float dq[kRunMaxRows][kBlocks];                  // its block scales
  int32_t bias[kRunMaxRows][kBlocks];              // -128 x the sum of the block's codes

  void Prepare(const RowState* rs, int64_t n_rows, int64_t hd) {
    for (int64_t r = 0; r < n_rows; ++r)
      for (int64_t b = 0; b < hd / 32; ++b) {
        const __m512 x0 = _mm512_loadu_ps(rs[r].q + 32 * b), x1 = _mm512_loadu_ps(rs[r].q + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        const float d = amax / 127.f, inv = d != 0.f ? 1.f / d : 0.f;
        const __m512i c0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, _mm512_set1_ps(inv)));  // nearest: exact codes
        const __m512i c1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, _mm512_set1_ps(inv)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(&codes[r][8 * b]), _mm512_cvtepi32_epi8(c0));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(&codes[r][8 * b + 4]), _mm512_cvtepi32_epi8(c1));
        dq[r][b] = d;
        bias[r][b] = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(c0, c1));
      }
  }

  // The tile as kt holds it: group g's 32 keys (4 bytes each) at byte 128 g, then the scales.
  static uint8_t* KeyCodes(float* kt) { return reinterpret_cast<uint8_t*>(kt); }
  static const uint8_t* KeyCodes(const float* kt) { return reinterpret_cast<const uint8_t*>(kt); }
  static int64_t ScalesAt(int64_t hd) { return hd * kTile / 4; }  // floats: kd[b * 32 + j]

  template <typename Kv>
  static void StageKeys(const void* k, const int32_t* rows, int64_t nj, int64_t stride, int64_t offset, int64_t hd,
                        float* kt) {
    uint8_t* kq = KeyCodes(kt);
    float* kd = kt + ScalesAt(hd);
    const __m512i offset128 = _mm512_set1_epi8(static_cast<char>(0x80));
    for (int64_t j0 = 0; j0 < kTile; j0 += 16) {
      const BlockQ8_0* src[16];
      for (int64_t i = 0; i < 16; ++i) src[i] = j0 + i < nj ? Kv::Row(k, rows[j0 + i], stride, offset) : nullptr;
      for (int64_t i = 0; i < 16; ++i)
        for (int64_t b = 0; b < hd / 32; ++b) kd[b * kTile + j0 + i] = src[i] != nullptr ? kF16ToF32Table[src[i][b].d] : 0.f;
      for (int64_t c64 = 0; c64 < hd / 64; ++c64) {  // 2 blocks: 16 groups of 4 dimensions
        __m512 r[16];
        for (int64_t i = 0; i < 16; ++i) {
          if (src[i] == nullptr) {
            r[i] = _mm512_setzero_ps();
            continue;
          }
          const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[i][2 * c64].qs));
          const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[i][2 * c64 + 1].qs));
          r[i] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
        }
        Transpose16(r);
        for (int64_t c = 0; c < 16; ++c)
          _mm512_store_si512(kq + ((c64 * 16 + c) * kTile + j0) * 4,
                             _mm512_xor_si512(_mm512_castps_si512(r[c]), offset128));
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
    const uint8_t* kq = KeyCodes(kt);
    const float* kd = kt + ScalesAt(hd);
    __m512 s[NR][2];
    for (int half = 0; half < 2; ++half) {
      for (int r = 0; r < NR; ++r) s[r][half] = _mm512_setzero_ps();
      for (int64_t b = 0; b < hd / 32; ++b) {
        __m512i a[NR];
        for (int r = 0; r < NR; ++r) a[r] = _mm512_set1_epi32(bias[r0 + r][b]);
        for (int64_t g = 8 * b; g < 8 * b + 8; ++g) {
          next.Step();
          const __m512i kk = _mm512_load_si512(kq + (g * kTile + 16 * half) * 4);
          for (int r = 0; r < NR; ++r) a[r] = _mm512_dpbusd_epi32(a[r], kk, _mm512_set1_epi32(codes[r0 + r][g]));
        }
        const __m512 kdv = _mm512_load_ps(kd + b * kTile + 16 * half);
        for (int r = 0; r < NR; ++r)
          s[r][half] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a[r]), _mm512_mul_ps(kdv, _mm512_set1_ps(dq[r0 + r][b])),
                                       s[r][half]);
      }
    }
    SoftmaxAndValues<NR>(rs + r0, j0, s, vt, hd, scale);
  }
  void Tiles(RowState* rs, int64_t n_rows, int64_t j0, const float* kt, const float* vt, int64_t hd, float scale,
             const TileLines& next_tile) const {
    ForRowBlocks<kRowBlock>(n_rows, next_tile, hd / 2, [&](auto nr, int64_t r0, PrefetchCursor& next) {
      TileRows<decltype(nr)::value>(rs, r0, j0, kt, vt, hd, scale, next);
    });
  }
};

void AttendRun512(const float* q, int64_t q_stride, int64_t m, int64_t n_q, const void* k, const void* v,
                  DType kv_type, const int32_t* rows, int64_t n_keys0, int64_t stride, int64_t offset, int64_t head_dim,
                  float scale, float* scratch, float* out, int64_t out_stride) {
  auto run = [&](auto isa, auto kv) {
    AttendRunFrame<typename decltype(isa)::type, typename decltype(kv)::type>(
        q, q_stride, m, n_q, k, v, rows, n_keys0, stride, offset, head_dim, scale, scratch, out, out_stride);
  };
  switch (kv_type) {
    case DType::kF16:
      return run(std::type_identity<Avx512Run>{}, std::type_identity<KvHalf<F16To32>>{});
    case DType::kBF16:
      return run(std::type_identity<Avx512Run>{}, std::type_identity<KvHalf<Bf16To32>>{});
    case DType::kQ8_0:
      return run(std::type_identity<Avx512RunQ8>{}, std::type_identity<KvQ8_0>{});
    default:
      return run(std::type_identity<Avx512Run>{}, std::type_identity<KvF32>{});
  }
}

}  // namespace

void AddAvx512AttentionKernels(CpuKernels& k) {
  k.attend_run = AttendRun512;
  k.attend_run_max_rows = kRunMaxRows;
}

}  // namespace qb::kernels::cpu
