// The CUDA backend's host-side API. This header includes no CUDA headers, so plain C++ (the
// device model, tests, benchmarks) can use it; the kernels live in the .cu files beside it.
//
// Everything runs on one CUDA stream owned by the backend, in issue order: the ops below only
// enqueue work (they return before it finishes), CopyToHost and Synchronize wait. Pointers
// passed to ops are device pointers. Activations are f32 row-major [tokens, features] with an
// explicit row stride (`ld*`, in elements) where an op may read or write a column slice of a
// wider buffer (the fused q|k|v and gate|up outputs). Every CUDA and cuBLAS call is checked: a
// failure is a bug or a broken device, reported with the call and aborted (as QB_CHECK does).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tensor/dtype.h"

namespace qb::cuda {

// ---- Devices --------------------------------------------------------------------------------

// Number of CUDA devices; 0 when there is none or no usable driver (never aborts).
int DeviceCount();
// Why DeviceCount() is 0 (the runtime's error, e.g. "CUDA driver version is insufficient").
std::string NoDeviceReason();
// Uses device 0: creates the stream and the cuBLAS handle and registers the allocator for
// Device::kCuda (so Tensor::Empty(..., Device::kCuda) works). Idempotent; aborts without a device.
void Initialize();
// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
std::string DeviceDescription();
struct MemoryInfo {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};
MemoryInfo GetMemoryInfo();

// ---- Memory ---------------------------------------------------------------------------------

void* Malloc(size_t bytes);  // aborts when out of memory (with the size in the message)
void Free(void* p);
void* MallocHost(size_t bytes);  // pinned host memory, for asynchronous copies
void FreeHost(void* p);
void CopyToDevice(void* dst, const void* src, size_t bytes);       // waits until done
void CopyToDeviceAsync(void* dst, const void* src, size_t bytes);  // src must stay valid (pinned)
void CopyToHost(void* dst, const void* src, size_t bytes);         // waits for the stream first
void CopyDeviceToDevice(void* dst, const void* src, size_t bytes);  // on the stream
void MemsetAsync(void* p, int byte, size_t bytes);
void Synchronize();

// Owned device memory (move-only).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) : p_(bytes ? Malloc(bytes) : nullptr), bytes_(bytes) {}
  ~DeviceBuffer() { Free(p_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Free(p_);
      p_ = std::exchange(o.p_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return p_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// ---- Timing and graphs ----------------------------------------------------------------------

// Elapsed device time between two points of the stream (CUDA events).
class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void Start();
  float StopMs();  // records the end, waits for it, returns milliseconds since Start()

 private:
  void* start_ = nullptr;
  void* stop_ = nullptr;
};

// A CUDA graph captured from the stream: Begin, enqueue ops, End; then Launch replays them
// with the same pointers and sizes (the memory they read may change between launches).
class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  void BeginCapture();
  void EndCapture();
  void Launch();
  bool ready() const { return exec_ != nullptr; }

 private:
  void* graph_ = nullptr;
  void* exec_ = nullptr;
};

// Device timestamps at labelled points of the stream (profiling: where a step's time goes).
// Mark() records an event after the work enqueued so far; after Finish() (which waits),
// Intervals() gives each mark's label and the milliseconds since the previous mark (the first
// interval starts at Begin()). Not for use inside a graph capture.
class EventList {
 public:
  EventList() = default;
  ~EventList();
  EventList(const EventList&) = delete;
  EventList& operator=(const EventList&) = delete;
  void Begin();
  void Mark(const char* label);  // label must outlive the list (string literals)
  void Finish();
  std::vector<std::pair<const char*, float>> Intervals() const;

 private:
  void Record();
  std::vector<void*> events_;  // reused across Begin()s
  std::vector<const char*> labels_;
  size_t used_ = 0;
};

// Keeps the stream busy for about `us` microseconds (a spinning kernel), so that work enqueued
// behind it runs back to back on the GPU, free of host launch gaps (profiling).
void SpinWait(int64_t us);

// Programmatic dependent launch (sm_90 and newer; off by default, initially from the
// environment variable QB_CUDA_PDL=1): kernels are launched so that the GPU may schedule each
// before the previous one ends; every kernel waits for its predecessor before touching data it
// wrote (the GEMVs first prefetch their weights), which hides part of the gap between kernels.
// Captured CUDA graphs depend on it (qwen2_cuda.cc keys them by it).
void SetProgrammaticLaunch(bool on);
bool ProgrammaticLaunch();

// Streaming multiprocessors of the device (cached).
int SmCount();

// ---- Elementwise and row ops (f32 activations) ----------------------------------------------

// out[t] = table[ids[t]] as f32; table [rows, d] in f32, f16 or bf16.
void Embedding(const int32_t* ids, int64_t n, const void* table, DType type, int64_t d, float* out);
// y = x / sqrt(mean(x^2) + eps) * w per row of d (y may alias x).
void RmsNorm(const float* x, int64_t n, int64_t d, const float* w, float eps, float* y);
// Fused residual add + RMSNorm (one launch): x += delta, then y = rmsnorm(x) (y must not alias
// x or delta). The same f32 arithmetic as Add followed by RmsNorm.
void AddRmsNorm(float* x, const float* delta, int64_t n, int64_t d, const float* w, float eps, float* y);
// NEOX rotary embedding in place on `heads` heads of head_dim starting at column 0 of each row
// (row stride ld); token t is at positions[t]. inv_freq: device f32 [head_dim / 2].
void Rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t ld, const int32_t* positions,
          const float* inv_freq, float attention_scale);
// Fused RoPE of q and k + KV scatter (one launch), on fused rows [q heads | k heads | v heads]
// (row stride ld): rotates the n_heads q heads and n_kv_heads k heads in place (as Rope with
// heads = n_heads + n_kv_heads) and writes each token's rotated k and its v to pool row
// slots[t] of k_pool / v_pool (rows of n_kv_heads * head_dim elements of pool_type), exactly the
// values Rope followed by two ScatterRows would write.
void RopeScatterKV(float* qkv, int64_t n, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, int64_t ld,
                   const int32_t* positions, const float* inv_freq, float attention_scale, const int32_t* slots,
                   void* k_pool, void* v_pool, DType pool_type);
// out[t, i] = silu(gate[t, i]) * up[t, i] for i < d; gate and up rows have stride ld_in,
// out rows stride ld_out (out may alias gate).
void SiluMul(const float* gate, const float* up, int64_t n, int64_t d, int64_t ld_in, float* out, int64_t ld_out);
// acc[i] += x[i].
void Add(float* acc, const float* x, int64_t count);
// dst row rows[t] (d elements of dst_type: f32, f16, bf16) = src[t, 0:d] (src row stride ld).
void ScatterRows(const float* src, int64_t n, int64_t d, int64_t ld, const int32_t* rows, void* dst, DType dst_type);
// out[i] = x[rows[i]] for i < m (rows of d floats).
void GatherRows(const float* x, int64_t d, const int32_t* rows, int64_t m, float* out);

// ---- Attention ------------------------------------------------------------------------------

// Causal GQA attention over the paged KV pool, the same contract as kernels::Attention: token
// t's key j is pool row tables[seq_of_token[t] * table_stride + j / block_size] * block_size +
// j % block_size, for j = 0..positions[t]; query head h reads kv head h / (n_heads / n_kv_heads).
// Works for any mix of decode (one token per sequence) and prefill/chunked prefill tokens.
struct AttentionArgs {
  const float* q = nullptr;  // [n, q_ld], heads at columns h * head_dim
  int64_t q_ld = 0;
  int64_t n = 0;
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  const void* k = nullptr;  // pool [rows, n_kv_heads * head_dim]
  const void* v = nullptr;
  DType kv_type = DType::kBF16;  // f32, f16 or bf16
  int64_t block_size = 16;
  const int32_t* positions = nullptr;     // [n]
  const int32_t* seq_of_token = nullptr;  // [n]: the row of `tables` each token uses
  const int32_t* tables = nullptr;        // [n_seqs, table_stride]
  int64_t table_stride = 0;
  float scale = 1.0f;
  float* out = nullptr;  // [n, out_ld]
  int64_t out_ld = 0;
  // Optional scratch for split-key (flash-decoding) attention: when few (token, head) pairs
  // would leave most SMs idle (decode), each pair's keys are split over several blocks whose
  // partial softmaxes a second kernel merges. nullptr: one block per (token, head) always.
  float* partial = nullptr;
  size_t partial_bytes = 0;  // AttentionScratchBytes(head_dim) always suffices
};
void Attention(const AttentionArgs& a);
size_t AttentionScratchBytes(int64_t head_dim);
// The split path's target of blocks per SM (default 4; 1 to 16, for measurements): decode
// splits each (token, head)'s keys until the launch has about this many blocks per SM.
void SetAttentionSplitBlocksPerSm(int blocks);
int AttentionSplitBlocksPerSm();
// Keys per warp tile (4, default, or 8; only head sizes 65-128 use 8), for measurements.
void SetAttentionKeyTile(int keys);
int AttentionKeyTile();
// Whether Attention supports this head size (16, 32, 64, 128, 256, ...: see attention.cu).
bool AttentionSupportsHeadDim(int64_t head_dim);

// ---- Linear layers --------------------------------------------------------------------------

// A weight matrix [rows = out_features, cols = in_features] on the device.
enum class WeightFormat : uint8_t {
  kBF16,  // bf16 [rows, cols]
  kF16,   // f16 [rows, cols]
  kInt4,  // codes u32 [rows, cols / 8] (nibble i of word w = element 8w + i, unsigned 0..15) and
          // scale_zero: per (row, group of group_size inputs) an f16 pair {scale, zero}:
          // w = scale * (code - zero). See int4.cu for why this layout.
  kInt4Mma,  // the same codes, scales and zeros, the codes in the tensor cores' fragment order
             // (rows padded to 16; see int4_mma.cu): 1-32 tokens run on the tensor cores
};
const char* WeightFormatName(WeightFormat f);

struct DeviceMatrix {
  WeightFormat format = WeightFormat::kBF16;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;
  const void* scale_zero = nullptr;  // int4 only: uint16 pairs [rows, cols / group_size][2]
  int64_t group_size = 0;            // int4 only
  const int32_t* perm = nullptr;     // GPTQ act-order: column p multiplies x[:, perm[p]]

  // Bytes the matrix occupies (what one pass over it reads).
  int64_t bytes() const;
};

// Which kernel a Linear uses. kAuto: the GEMV for up to GemvMaxTokens() tokens, else cuBLAS
// (int4 weights are dequantized to bf16 into scratch first).
enum class LinearPath : uint8_t { kAuto, kGemv, kGemm };
// 4 for bf16/f16 and int4 (then cuBLAS, after dequantizing int4); 32 for int4 in the mma layout.
int GemvMaxTokens(WeightFormat f);

// The tensor-core int4 layout (kInt4Mma): whether a matrix can have it (in_features a multiple
// of 64, groups of a multiple of 32 inputs), the bytes of its codes, and the repacking of a
// kInt4 matrix's codes into `dst` (Int4MmaCodeBytes bytes, 16-byte aligned): the result shares
// w's scales, zeros and permutation. Exact (no value changes).
bool Int4MmaSupported(const DeviceMatrix& w);
int64_t Int4MmaCodeBytes(int64_t rows, int64_t cols);
DeviceMatrix RepackInt4ForMma(const DeviceMatrix& w, void* dst);
// 16-row tiles per block of the tensor-core kernel for 9-32 tokens: 2 (default) or 1
// (benchmark comparisons).
void SetInt4MmaTiles(int tiles);
int Int4MmaTiles();
// The tensor-core kernel's shape for 1-8 tokens (benchmark comparisons; int4_mma.cu lists them):
// 0 (default) to kInt4MmaVariants - 1; 5-7 are the lean kernel (groups of a multiple of 64),
// which then serves 9-32 tokens too (SetInt4MmaTiles has no effect there).
constexpr int kInt4MmaVariants = 8;
void SetInt4MmaVariant(int variant);
int Int4MmaVariant();

// GEMV kernel generation: 2 (default: more loads in flight per warp; int4 at 3-4 tokens decodes
// each weight once for all tokens, at 1-2 tokens uses v1's kernel), 1 (the first version, kept
// for comparison) or 3 (int4 candidate: v1 software-pipelined, not yet measured on a GPU; float
// weights as 2). Initially from the environment variable QB_CUDA_GEMV ("1", "2" or "3").
void SetGemvVersion(int version);
int GemvVersion();

// Scratch memory for Linear: activations converted/gathered for cuBLAS or a permutation
// (n * cols * 4 bytes suffices), and bf16 weights for int4 GEMMs (rows * cols * 2 bytes).
struct LinearScratch {
  void* act = nullptr;
  size_t act_bytes = 0;
  void* weights = nullptr;
  size_t weight_bytes = 0;
};

// y[t, o] = sum_i x[t, i] w[o, i] + bias[o] for t < n, o < w.rows; x rows have stride w.cols,
// y rows stride ldy (>= w.rows). bias: device f32 [w.rows] or nullptr.
void Linear(const float* x, int64_t n, const DeviceMatrix& w, const float* bias, float* y, int64_t ldy,
            const LinearScratch& scratch, LinearPath path = LinearPath::kAuto);

// Dequantizes an int4 matrix (either layout) to bf16 [rows, cols] (exact values rounded once
// to bf16); `out` 8-byte aligned.
void DequantizeInt4ToBF16(const DeviceMatrix& w, void* out);

// ---- Random fills (benchmarks build weights on the device) ----------------------------------

// Uniform values in [-scale, scale] (bf16, f16 or f32 elements), deterministic in `seed`.
void FillRandom(void* p, DType type, int64_t count, float scale, uint64_t seed);
// Random 4-bit codes (count u32 words) and scale/zero pairs (count pairs: scale in
// [scale/2, scale], zero 8).
void FillRandomInt4(uint32_t* codes, int64_t words, uint64_t seed);
void FillInt4ScaleZero(void* scale_zero, int64_t pairs, float scale, uint64_t seed);
void FillConstant(float* p, int64_t count, float value);

}  // namespace qb::cuda
