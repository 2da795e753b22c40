// How ops run: on which threads and with which instruction set. The caller (model, engine, CLI)
// owns the thread pool; ops only borrow it.
#pragma once

#include <optional>
#include <string_view>

#include "util/thread_pool.h"

namespace qb::kernels {

class Collective;

// CPU code paths, slowest to fastest. kReference is the scalar definition of every op (f32
// activations, f64 sums): exact, slow. The others quantize activations to 8 bits for
// quantized weights (as llama.cpp does) and use plain C++ (kScalar) or SIMD intrinsics:
// kAvx2 (AVX2 + FMA + F16C), kAvx512Vnni (that, plus AVX-512 F/BW/VL/VNNI for the integer dot
// products), kAvx512Bf16 (that, plus AVX512_BF16: BF16 weights meet activations rounded to bf16
// in vdpbf16ps, as llama.cpp and oneDNN do).
enum class Isa { kReference, kScalar, kAvx2, kAvx512Vnni, kAvx512Bf16 };

std::string_view IsaName(Isa isa);  // "reference", "scalar", "avx2", "avx512vnni", "avx512bf16"
std::optional<Isa> IsaFromName(std::string_view name);
// The fastest path this CPU supports (and this build contains).
Isa DetectIsa();

struct ExecContext {
  ThreadPool* pool = nullptr;  // nullptr: run on the calling thread
  Isa isa = DetectIsa();
  // Set on the ranks of a tensor-parallel group (model/tensor_parallel.h): the forward pass
  // adds up the ranks' partial outputs through it. nullptr: the model is whole.
  Collective* collective = nullptr;

  // Single-threaded, fastest ISA.
  static const ExecContext& Default();
  // Single-threaded reference kernels (the correctness tool).
  static const ExecContext& Reference();
};

}  // namespace qb::kernels
