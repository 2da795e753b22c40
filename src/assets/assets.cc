#include "assets/assets.h"

extern "C" {
extern const char qb_asset_qwen25_tokenizer_json[];
extern const char qb_asset_qwen25_tokenizer_json_end[];
extern const char qb_asset_qwen25_tokenizer_config_json[];
extern const char qb_asset_qwen25_tokenizer_config_json_end[];
}

namespace qb::assets {

std::string_view Qwen25TokenizerJson() {
  return {qb_asset_qwen25_tokenizer_json,
          static_cast<size_t>(qb_asset_qwen25_tokenizer_json_end - qb_asset_qwen25_tokenizer_json)};
}

std::string_view Qwen25TokenizerConfigJson() {
  return {qb_asset_qwen25_tokenizer_config_json,
          static_cast<size_t>(qb_asset_qwen25_tokenizer_config_json_end -
                              qb_asset_qwen25_tokenizer_config_json)};
}

}  // namespace qb::assets
