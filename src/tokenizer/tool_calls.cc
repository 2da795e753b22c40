#include "tokenizer/tool_calls.h"

namespace qb {

namespace {

constexpr std::string_view kOpen = "<tool_call>";
constexpr std::string_view kClose = "</tool_call>";

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

ParsedReply ParseToolCalls(const std::string& text) {
  ParsedReply r;
  std::string rest;
  size_t pos = 0;
  while (true) {
    const size_t open = text.find(kOpen, pos);
    if (open == std::string::npos) break;
    const size_t close = text.find(kClose, open + kOpen.size());
    if (close == std::string::npos) break;
    const std::string body = text.substr(open + kOpen.size(), close - open - kOpen.size());
    OrderedJson j = OrderedJson::parse(body, nullptr, false);
    if (j.is_object() && j.contains("name") && j["name"].is_string()) {
      rest += text.substr(pos, open - pos);
      r.tool_calls.push_back({j["name"].get<std::string>(), j.contains("arguments") ? j["arguments"] : OrderedJson::object()});
    } else {
      rest += text.substr(pos, close + kClose.size() - pos);  // not a valid call: keep as text
    }
    pos = close + kClose.size();
  }
  rest += text.substr(pos);
  r.content = r.tool_calls.empty() ? text : Trim(rest);
  return r;
}

}  // namespace qb
