// Paged causal GQA attention with an online softmax (one pass over the keys, no score matrix).
//
// One thread block per (token, query head); its kWarps warps split the token's keys (warp w
// takes tiles w, w + kWarps, ... of TILE keys), each keeping a running max, sum and weighted
// value sum, merged at the end through shared memory. Within a warp, lane l holds dimensions
// [l * DPL, l * DPL + DPL) of the head, so a key's row is read with one coalesced access and a
// score costs one warp reduction; TILE keys are loaded and reduced together for memory- and
// instruction-level parallelism. The same kernel serves decode (one query per sequence, long key
// runs split across warps) and prefill (many queries, one block each).
#include <algorithm>
#include <atomic>
#include <cfloat>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cuda_api.h"

namespace qb::cuda {

using namespace detail;

namespace {

constexpr int kWarps = 4;
// Keys per warp tile: 4 by default; 8 (head sizes 65-128) halves the dependent memory round
// trips of a short split, for twice the registers (SetAttentionKeyTile, for measurements).
std::atomic<int> g_key_tile{4};

// DPL consecutive elements of type KV at p (aligned to their total size) as floats.
template <typename KV, int DPL>
__device__ __forceinline__ void LoadVec(const KV* p, float* out) {
  constexpr int kBytes = static_cast<int>(sizeof(KV)) * DPL;
  if constexpr (kBytes % 16 == 0) {
    constexpr int kPer = 16 / static_cast<int>(sizeof(KV));
#pragma unroll
    for (int c = 0; c < kBytes / 16; ++c) {
      const uint4 r = reinterpret_cast<const uint4*>(p)[c];
      const KV* e = reinterpret_cast<const KV*>(&r);
#pragma unroll
      for (int i = 0; i < kPer; ++i) out[c * kPer + i] = ToFloat(e[i]);
    }
  } else if constexpr (kBytes == 8) {
    const uint2 r = *reinterpret_cast<const uint2*>(p);
    const KV* e = reinterpret_cast<const KV*>(&r);
#pragma unroll
    for (int i = 0; i < DPL; ++i) out[i] = ToFloat(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < DPL; ++i) out[i] = ToFloat(p[i]);
  }
}

// Entry of the split-key scratch per (token, head, split): head_dim unnormalized value sums,
// then the running max and the sum of exponentials.
__host__ __device__ __forceinline__ int64_t PartialStride(int64_t head_dim) { return head_dim + 2; }

// SPLIT: block (blockIdx.x = token * n_heads + head, blockIdx.y = split) covers keys
// [split * chunk, (split + 1) * chunk) of its token only, chunk = the token's key count over
// gridDim.y rounded up to whole warp tiles (so the splits follow each token's real length, and
// a graph captured once serves any length), and writes its partial softmax to a.partial.
template <typename KV, int DPL, bool SPLIT, int TILE>
__global__ void __launch_bounds__(kWarps * 32) AttentionKernel(AttentionArgs a) {
  WaitForPriorGrids();
  const int64_t t = blockIdx.x / a.n_heads, h = blockIdx.x % a.n_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t kvh = h / (a.n_heads / a.n_kv_heads);
  const int64_t total_keys = static_cast<int64_t>(a.positions[t]) + 1;
  int64_t first_key = 0, n_keys = total_keys;  // keys [first_key, n_keys)
  if constexpr (SPLIT) {
    constexpr int64_t kStep = kWarps * TILE;
    const int64_t chunk = (total_keys + gridDim.y - 1) / gridDim.y;
    const int64_t rounded = (chunk + kStep - 1) / kStep * kStep;
    first_key = static_cast<int64_t>(blockIdx.y) * rounded;
    n_keys = min(first_key + rounded, total_keys);
    if (first_key >= n_keys) {  // nothing left for this split: an empty partial
      if (threadIdx.x == 0) {
        float* p = a.partial + (static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y) * PartialStride(a.head_dim);
        p[a.head_dim] = -INFINITY;
        p[a.head_dim + 1] = 0.f;
      }
      return;
    }
  }
  const int32_t* table = a.tables + static_cast<int64_t>(a.seq_of_token[t]) * a.table_stride;
  const int block_size = static_cast<int>(a.block_size);
  const int64_t kv_ld = a.n_kv_heads * a.head_dim;
  const int64_t d0 = static_cast<int64_t>(lane) * DPL;
  const bool active = d0 < a.head_dim;  // head_dim < 32 * DPL leaves the top lanes idle
  const KV* kbase = static_cast<const KV*>(a.k) + kvh * a.head_dim + d0;
  const KV* vbase = static_cast<const KV*>(a.v) + kvh * a.head_dim + d0;

  float q[DPL];
#pragma unroll
  for (int i = 0; i < DPL; ++i) q[i] = active ? a.q[t * a.q_ld + h * a.head_dim + d0 + i] * a.scale : 0.f;

  float m = -INFINITY, l = 0.f, acc[DPL];
#pragma unroll
  for (int i = 0; i < DPL; ++i) acc[i] = 0.f;

  for (int64_t j0 = first_key + static_cast<int64_t>(warp) * TILE; j0 < n_keys; j0 += kWarps * TILE) {
    float kf[TILE][DPL], vf[TILE][DPL], s[TILE];
    // The tile's first key's block and offset: one 32-bit division per tile (a 64-bit division
    // per key cost more instructions than the key's dot product and softmax update).
    int blk = static_cast<int>(j0) / block_size, off = static_cast<int>(j0) - blk * block_size;
#pragma unroll
    for (int u = 0; u < TILE; ++u) {
      const int64_t j = j0 + u;
      if (j < n_keys && active) {
        const int64_t row = static_cast<int64_t>(table[blk]) * block_size + off;
        LoadVec<KV, DPL>(kbase + row * kv_ld, kf[u]);
        LoadVec<KV, DPL>(vbase + row * kv_ld, vf[u]);
      } else {
#pragma unroll
        for (int i = 0; i < DPL; ++i) kf[u][i] = vf[u][i] = 0.f;
      }
      if (++off == block_size) {
        off = 0;
        ++blk;
      }
    }
#pragma unroll
    for (int u = 0; u < TILE; ++u) {
      float dot = 0.f;
#pragma unroll
      for (int i = 0; i < DPL; ++i) dot += q[i] * kf[u][i];
      s[u] = WarpSum(dot);
      if (j0 + u >= n_keys) s[u] = -INFINITY;
    }
    // s[0] is a real key (j0 < n_keys), so m_new is finite.
    float m_new = m;
#pragma unroll
    for (int u = 0; u < TILE; ++u) m_new = fmaxf(m_new, s[u]);
    const float corr = expf(m - m_new);  // 0 on the first tile (m = -inf)
    l *= corr;
#pragma unroll
    for (int i = 0; i < DPL; ++i) acc[i] *= corr;
#pragma unroll
    for (int u = 0; u < TILE; ++u) {
      const float p = expf(s[u] - m_new);  // 0 for the keys past the end
      l += p;
#pragma unroll
      for (int i = 0; i < DPL; ++i) acc[i] += p * vf[u][i];
    }
    m = m_new;
  }

  // Merge the warps' partial softmaxes: out = sum_w acc_w e^(m_w - M) / sum_w l_w e^(m_w - M).
  __shared__ float sm_m[kWarps], sm_l[kWarps];
  __shared__ float sm_acc[kWarps][32 * DPL];
  if (lane == 0) {
    sm_m[warp] = m;
    sm_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < DPL; ++i) sm_acc[warp][d0 + i] = acc[i];
  __syncthreads();
  float mx = -INFINITY;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm_m[w]);  // finite: warp 0 saw key 0
  float den = 0.f, wgt[kWarps];
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    wgt[w] = expf(sm_m[w] - mx);  // 0 for warps that had no keys
    den += sm_l[w] * wgt[w];
  }
  if constexpr (SPLIT) {
    float* p = a.partial + (static_cast<int64_t>(blockIdx.x) * gridDim.y + blockIdx.y) * PartialStride(a.head_dim);
    for (int64_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
      float num = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) num += sm_acc[w][d] * wgt[w];
      p[d] = num;
    }
    if (threadIdx.x == 0) {
      p[a.head_dim] = mx;
      p[a.head_dim + 1] = den;
    }
  } else {
    for (int64_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
      float num = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) num += sm_acc[w][d] * wgt[w];
      a.out[t * a.out_ld + h * a.head_dim + d] = num / den;
    }
  }
}

// The most splits per (token, head), and the split path's target of blocks per SM (a few per
// SM by default; SetAttentionSplitBlocksPerSm changes it for measurements).
constexpr int kMaxSplits = 64;
constexpr int kMaxSplitBlocksPerSm = 16;
std::atomic<int> g_split_blocks_per_sm{4};
int SplitTargetBlocks() { return g_split_blocks_per_sm.load() * SmCount(); }

// Merges the splits of one (token, head): out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M).
// Split 0 always holds key 0, so M is finite; empty splits (m = -inf, no sums written) are
// skipped. The splits' maxima and sums are staged in shared memory with one parallel load and
// their weights computed once (a loop of dependent global loads per thread cost one memory
// latency per split, three times); each thread's loads of its dimension's sums are independent.
// The same arithmetic in the same order as before: the same bits.
__global__ void AttentionCombineKernel(AttentionArgs a, int splits) {
  WaitForPriorGrids();
  __shared__ float sm_m[kMaxSplits], sm_l[kMaxSplits], sm_w[kMaxSplits];
  const int64_t th = blockIdx.x;  // token * n_heads + head
  const int64_t t = th / a.n_heads, h = th % a.n_heads, stride = PartialStride(a.head_dim);
  const float* p = a.partial + th * splits * stride;
  for (int s = threadIdx.x; s < splits; s += blockDim.x) {
    sm_m[s] = p[s * stride + a.head_dim];
    sm_l[s] = p[s * stride + a.head_dim + 1];
  }
  __syncthreads();
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, sm_m[s]);
  for (int s = threadIdx.x; s < splits; s += blockDim.x) sm_w[s] = sm_m[s] != -INFINITY ? expf(sm_m[s] - mx) : 0.f;
  __syncthreads();
  float den = 0.f;
  for (int s = 0; s < splits; ++s)
    if (sm_m[s] != -INFINITY) den += sm_l[s] * sm_w[s];
  for (int64_t d = threadIdx.x; d < a.head_dim; d += blockDim.x) {
    float num = 0.f;
#pragma unroll 8
    for (int s = 0; s < splits; ++s) {
      const float v = p[s * stride + d];  // (inside the scratch even for an empty split)
      if (sm_m[s] != -INFINITY) num += v * sm_w[s];
    }
    a.out[t * a.out_ld + h * a.head_dim + d] = num / den;
  }
}

template <typename KV, bool SPLIT, int TILE>
void LaunchDpl(const AttentionArgs& a, dim3 grid) {
  const int threads = kWarps * 32;
  if (a.head_dim <= 32) {
    LaunchKernel(AttentionKernel<KV, 1, SPLIT, 4>, grid, threads, a);
  } else if (a.head_dim <= 64) {
    LaunchKernel(AttentionKernel<KV, 2, SPLIT, 4>, grid, threads, a);
  } else if (a.head_dim <= 128) {  // (Qwen2.5's 128: the only size with a choice of tile)
    LaunchKernel(AttentionKernel<KV, 4, SPLIT, TILE>, grid, threads, a);
  } else {
    LaunchKernel(AttentionKernel<KV, 8, SPLIT, 4>, grid, threads, a);  // (8 keys: too many registers)
  }
  QB_CUDA_CHECK_LAUNCH();
}

template <typename KV, bool SPLIT>
void LaunchTile(const AttentionArgs& a, dim3 grid, int tile) {
  tile == 8 ? LaunchDpl<KV, SPLIT, 8>(a, grid) : LaunchDpl<KV, SPLIT, 4>(a, grid);
}

template <typename KV>
void Launch(const AttentionArgs& a) {
  const int64_t pairs = a.n * a.n_heads;
  const int tile = a.head_dim > 64 && a.head_dim <= 128 ? g_key_tile.load() : 4;
  int64_t splits = 1;
  if (a.partial != nullptr) {
    const int64_t max_keys = a.table_stride * a.block_size;
    splits = (SplitTargetBlocks() + pairs - 1) / pairs;
    splits = std::min<int64_t>(splits, kMaxSplits);
    splits = std::min<int64_t>(splits, (max_keys + kWarps * tile - 1) / (kWarps * tile));
    splits = std::min<int64_t>(
        splits, static_cast<int64_t>(a.partial_bytes / sizeof(float)) / (pairs * PartialStride(a.head_dim)));
  }
  if (splits < 2) {
    LaunchTile<KV, false>(a, dim3(static_cast<unsigned>(pairs)), tile);
    return;
  }
  LaunchTile<KV, true>(a, dim3(static_cast<unsigned>(pairs), static_cast<unsigned>(splits)), tile);
  const int threads = a.head_dim >= 128 ? 128 : (a.head_dim >= 64 ? 64 : 32);
  LaunchKernel(AttentionCombineKernel, static_cast<unsigned>(pairs), threads, a, static_cast<int>(splits));
  QB_CUDA_CHECK_LAUNCH();
}

}  // namespace

size_t AttentionScratchBytes(int64_t head_dim) {
  // Splits are only used while pairs < target, so pairs * splits < 2 * target (sized for the
  // largest target SetAttentionSplitBlocksPerSm allows).
  return static_cast<size_t>(2 * kMaxSplitBlocksPerSm * SmCount() + kMaxSplits) *
         static_cast<size_t>(PartialStride(head_dim)) * sizeof(float);
}

void SetAttentionSplitBlocksPerSm(int blocks) {
  QB_CUDA_REQUIRE(blocks >= 1 && blocks <= kMaxSplitBlocksPerSm, "SetAttentionSplitBlocksPerSm: 1 to 16");
  g_split_blocks_per_sm.store(blocks);
}
int AttentionSplitBlocksPerSm() { return g_split_blocks_per_sm.load(); }

void SetAttentionKeyTile(int keys) {
  QB_CUDA_REQUIRE(keys == 4 || keys == 8, "SetAttentionKeyTile: 4 or 8");
  g_key_tile.store(keys);
}
int AttentionKeyTile() { return g_key_tile.load(); }

bool AttentionSupportsHeadDim(int64_t head_dim) {
  if (head_dim <= 0 || head_dim > 256 || head_dim % 2 != 0) return false;
  const int64_t dpl = head_dim <= 32 ? 1 : head_dim <= 64 ? 2 : head_dim <= 128 ? 4 : 8;
  return head_dim % dpl == 0;  // each lane's slice must be whole and aligned
}

void Attention(const AttentionArgs& a) {
  QB_CUDA_REQUIRE(AttentionSupportsHeadDim(a.head_dim), "Attention: unsupported head_dim");
  QB_CUDA_REQUIRE(a.n_kv_heads > 0 && a.n_heads % a.n_kv_heads == 0, "Attention: heads not a multiple of kv heads");
  QB_CUDA_REQUIRE(a.block_size > 0 && a.table_stride > 0, "Attention: bad block size or table stride");
  QB_CUDA_REQUIRE(a.q_ld >= a.n_heads * a.head_dim && a.out_ld >= a.n_heads * a.head_dim, "Attention: row strides");
  if (a.n == 0) return;
  switch (a.kv_type) {
    case DType::kF32: Launch<float>(a); break;
    case DType::kF16: Launch<__half>(a); break;
    case DType::kBF16: Launch<__nv_bfloat16>(a); break;
    default: QB_CUDA_REQUIRE(false, "Attention: the KV pool must be f32, f16 or bf16");
  }
}

}  // namespace qb::cuda
