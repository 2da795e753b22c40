// Text Generation Inference-compatible /generate and /generate_stream parsing and responses.
#pragma once

#include <variant>

#include "server/api_types.h"
#include "tokenizer/tokenizer.h"

namespace qb::api {

// parameters.adapter_id picks one of the LoRA adapters in `names` (or the model, by its name).
std::variant<ParsedRequest, HttpError> ParseTgiRequest(const OrderedJson& body, const Tokenizer& tok, const Defaults& d,
                                                       const ServedNames& names);
// TGI's finish reasons: "length", "eos_token", "stop_sequence".
std::string TgiFinishReason(FinishReason r, bool by_stop_sequence);

}  // namespace qb::api
