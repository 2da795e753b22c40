#include "kernels/exec_context.h"

namespace qb::kernels {

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kReference: return "reference";
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512Vnni: return "avx512vnni";
    case Isa::kAvx512Bf16: return "avx512bf16";
  }
  return "?";
}

std::optional<Isa> IsaFromName(std::string_view name) {
  for (Isa isa : {Isa::kReference, Isa::kScalar, Isa::kAvx2, Isa::kAvx512Vnni, Isa::kAvx512Bf16})
    if (IsaName(isa) == name) return isa;
  return std::nullopt;
}

Isa DetectIsa() {
#if defined(__x86_64__)
  static const Isa isa = [] {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || !__builtin_cpu_supports("f16c"))
      return Isa::kScalar;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
      return __builtin_cpu_supports("avx512bf16") ? Isa::kAvx512Bf16 : Isa::kAvx512Vnni;
    return Isa::kAvx2;
  }();
  return isa;
#else
  return Isa::kScalar;
#endif
}

const ExecContext& ExecContext::Default() {
  static const ExecContext ctx{nullptr, DetectIsa()};
  return ctx;
}

const ExecContext& ExecContext::Reference() {
  static const ExecContext ctx{nullptr, Isa::kReference};
  return ctx;
}

}  // namespace qb::kernels
