// Files built into the binary: the real Qwen2.5 tokenizer (see assets/tokenizer/qwen2.5/SOURCE.md).
#pragma once

#include <string_view>

namespace qb::assets {

std::string_view Qwen25TokenizerJson();
std::string_view Qwen25TokenizerConfigJson();

}  // namespace qb::assets
