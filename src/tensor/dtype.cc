#include "tensor/dtype.h"

#include <array>
#include <cctype>

#include "tensor/quant_blocks.h"

namespace qb {

namespace {
constexpr std::array<DTypeInfo, 28> kInfos = {{
    {"f32", 1, 4, true, false, 4, 1},
    {"f16", 1, 2, true, false, 2, 1},
    {"bf16", 1, 2, true, false, 2, 1},
    {"i32", 1, 4, false, false, 4, 1},
    {"i8", 1, 1, false, false, 1, 1},
    {"u8", 1, 1, false, false, 1, 1},
    {"q8_0", kQK8_0, sizeof(BlockQ8_0), false, true, alignof(BlockQ8_0), 1},
    {"q4_0", kQK4_0, sizeof(BlockQ4_0), false, true, alignof(BlockQ4_0), 1},
    {"q4_k", kQK_K, sizeof(BlockQ4_K), false, true, alignof(BlockQ4_K), 1},
    {"q6_k", kQK_K, sizeof(BlockQ6_K), false, true, alignof(BlockQ6_K), 1},
    {"q4z", kQK4_0, sizeof(BlockQ4Z), false, true, alignof(BlockQ4Z), 1},
    {"q4_0x8", kQK4_0, sizeof(BlockQ4_0), false, true, alignof(BlockQ4_0x8), 8},
    {"q8_0x8", kQK8_0, sizeof(BlockQ8_0), false, true, alignof(BlockQ8_0x8), 8},
    {"q4_1", kQK4_0, sizeof(BlockQ4_1), false, true, alignof(BlockQ4_1), 1},
    {"q5_0", kQK4_0, sizeof(BlockQ5_0), false, true, alignof(BlockQ5_0), 1},
    {"q5_1", kQK4_0, sizeof(BlockQ5_1), false, true, alignof(BlockQ5_1), 1},
    {"iq4_nl", kQK4_0, sizeof(BlockIq4Nl), false, true, alignof(BlockIq4Nl), 1},
    {"q2_k", kQK_K, sizeof(BlockQ2_K), false, true, alignof(BlockQ2_K), 1},
    {"q3_k", kQK_K, sizeof(BlockQ3_K), false, true, alignof(BlockQ3_K), 1},
    {"q5_k", kQK_K, sizeof(BlockQ5_K), false, true, alignof(BlockQ5_K), 1},
    {"q5_0x8", kQK4_0, sizeof(BlockQ5_0), false, true, alignof(BlockQ5_0x8), 8},
    {"q5_1x8", kQK4_0, sizeof(BlockQ5_1), false, true, alignof(BlockQ5_1x8), 8},
    {"iq4_nlx8", kQK4_0, sizeof(BlockIq4Nl), false, true, alignof(BlockIq4Nlx8), 8},
    {"q4_kx8", kQK_K, sizeof(BlockQ4_K), false, true, alignof(BlockQ4_Kx8), 8},
    {"q6_kx8", kQK_K, sizeof(BlockQ6_K), false, true, alignof(BlockQ6_Kx8), 8},
    {"q5_kx8", kQK_K, sizeof(BlockQ5_K), false, true, alignof(BlockQ5_Kx8), 8},
    {"q2_kx8", kQK_K, sizeof(BlockQ2_K), false, true, alignof(BlockQ2_Kx8), 8},
    {"q3_kx8", kQK_K, sizeof(BlockQ3_K), false, true, alignof(BlockQ3_Kx8), 8},
}};
static_assert(kInfos.size() == static_cast<size_t>(DType::kQ3_Kx8) + 1, "one DTypeInfo per DType, in order");
}  // namespace

const DTypeInfo& Info(DType t) { return kInfos[static_cast<size_t>(t)]; }

std::optional<DType> DTypeFromName(std::string_view name) {
  for (size_t i = 0; i < kInfos.size(); ++i) {
    const std::string_view n = kInfos[i].name;
    if (n.size() != name.size()) continue;
    bool same = true;
    for (size_t k = 0; k < n.size(); ++k)
      same = same && std::tolower(static_cast<unsigned char>(name[k])) == n[k];
    if (same) return static_cast<DType>(i);
  }
  return std::nullopt;
}

}  // namespace qb
