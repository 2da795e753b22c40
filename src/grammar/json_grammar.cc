#include "grammar/json_grammar.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "grammar/regex_grammar.h"
#include "util/check.h"

namespace qb {

namespace {

using OJson = nlohmann::ordered_json;
using Sequence = GrammarBuilder::Sequence;

constexpr int64_t kMaxWhitespace = 20;
constexpr int64_t kMaxDigits = 16;
constexpr int64_t kMaxBoundedRepeat = 10000;   // rules a bounded repeat may cost
constexpr size_t kMaxRules = 50000;            // the whole grammar (schema compile time and memory)
constexpr int kMaxDepth = 64;                  // schema nesting
constexpr int kMaxValueNesting = 32;           // objects/arrays in a value of any shape

// Keywords that constrain values in ways these grammars do not express: refused.
const std::set<std::string>& Unsupported() {
  static const std::set<std::string> k = {
      "patternProperties", "multipleOf", "uniqueItems", "minProperties", "maxProperties", "not", "if", "then", "else",
      "dependentRequired", "dependentSchemas", "dependencies", "contains", "minContains", "maxContains",
      "propertyNames", "unevaluatedProperties", "unevaluatedItems"};
  return k;
}

// A regular expression for the decimal integers lo..hi (0 <= lo <= hi), no leading zeros: the
// range is cut where the digit count changes and where trailing digits run over all of 0-9, so
// that in each piece every digit position runs over one range independently of the others.
std::string DigitRange(uint64_t lo, uint64_t hi) {
  std::set<uint64_t> stops = {hi};
  for (uint64_t p = 10; p <= 10'000'000'000'000'000'000u / 10; p *= 10) {
    const uint64_t nines = lo / p * p + (p - 1);  // lo with its trailing digits set to 9
    if (nines >= hi) break;
    stops.insert(nines);
  }
  for (uint64_t p = 10; p <= 10'000'000'000'000'000'000u / 10; p *= 10) {
    if (hi + 1 < p) break;
    const uint64_t below = (hi + 1) / p * p;  // hi + 1 with its trailing digits set to 0
    if (below == 0 || below - 1 < lo) break;
    if (below - 1 < hi) stops.insert(below - 1);
  }
  std::string out;
  uint64_t start = lo;
  for (uint64_t stop : stops) {
    if (stop < start) continue;
    const std::string a = std::to_string(start), z = std::to_string(stop);
    if (!out.empty()) out += "|";
    for (size_t i = 0; i < a.size(); ++i) out += a[i] == z[i] ? std::string(1, a[i]) : fmt::format("[{}-{}]", a[i], z[i]);
    start = stop + 1;
  }
  out.insert(out.begin(), '(');
  out.push_back(')');
  return out;
}

// Formats checked by a pattern (the common ones whose shape is fixed); others are annotations.
std::string FormatPattern(const std::string& format) {
  const std::string date = "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])";
  const std::string time = "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])";
  if (format == "date") return "^" + date + "$";
  if (format == "time") return "^" + time + "$";
  if (format == "date-time") return "^" + date + "T" + time + "$";
  if (format == "uuid") return "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
  return "";
}

class JsonGrammarMaker {
 public:
  explicit JsonGrammarMaker(const OJson* root_schema = nullptr) : root_schema_(root_schema) {}

  GrammarBuilder& builder() { return b_; }
  // The document `$ref`s resolve in (one per tool for tool calls).
  void SetRoot(const OJson* root) { root_schema_ = root; }

  GrammarElement Ws() {
    if (!ws_) ws_ = b_.Repeat({b_.Bytes(ByteSet().Add(' ').Add('\t').Add('\n').Add('\r'))}, 0, kMaxWhitespace);
    return *ws_;
  }

  // One character inside a JSON string: printable ASCII but '"' and '\', an escape, or one
  // well-formed UTF-8 sequence (no overlong forms, no surrogates).
  GrammarElement Char() {
    if (char_) return *char_;
    ByteSet plain;
    plain.AddRange(0x20, 0x7f);
    ByteSet p2;  // the same without '"' and '\'
    for (int c = 0x20; c <= 0x7f; ++c)
      if (c != '"' && c != '\\') p2.Add(static_cast<uint8_t>(c));
    ByteSet hex;
    hex.AddRange('0', '9').AddRange('a', 'f').AddRange('A', 'F');
    const GrammarElement h = b_.Bytes(hex);
    // \uXXXX: any code unit but a surrogate, or a high surrogate followed by \u and a low one
    // (a lone surrogate is refused by most JSON parsers).
    const ByteSet hex_not_d = ByteSet().AddRange('0', '9').AddRange('a', 'c').AddRange('e', 'f').AddRange('A', 'C').AddRange('E', 'F');
    const GrammarElement d = b_.Bytes(ByteSet().Add('d').Add('D'));
    const GrammarElement unit = b_.AnyOf({{b_.Bytes(hex_not_d), h, h, h}, {d, b_.Bytes(ByteSet().AddRange('0', '7')), h, h}});
    const GrammarElement pair = b_.AnyOf({{d, b_.Bytes(ByteSet().AddRange('8', '9').AddRange('a', 'b').AddRange('A', 'B')), h, h,
                                           b_.Byte('\\'), b_.Byte('u'), d,
                                           b_.Bytes(ByteSet().AddRange('c', 'f').AddRange('C', 'F')), h, h}});
    const GrammarElement escape = b_.AnyOf({{b_.Bytes(ByteSet().Add('"').Add('\\').Add('/').Add('b').Add('f').Add('n').Add('r').Add('t'))},
                                            {b_.Byte('u'), unit},
                                            {b_.Byte('u'), pair}});
    char_ = b_.AnyOf({{b_.Bytes(p2)}, {b_.Byte('\\'), escape}, {Utf8NonAscii(b_)}});
    return *char_;
  }

  GrammarElement String(int64_t min_len = 0, int64_t max_len = -1) {
    const bool plain = min_len == 0 && max_len < 0;
    if (plain && string_) return *string_;
    const GrammarElement q = b_.Byte('"');
    const GrammarElement s = b_.AnyOf({{q, b_.Repeat({Char()}, min_len, max_len), q}});
    if (plain) string_ = s;
    return s;
  }

  GrammarElement IntegerPart() {
    if (int_part_) return *int_part_;
    const GrammarElement digit = b_.Bytes(ByteSet().AddRange('0', '9'));
    int_part_ = b_.AnyOf({{b_.Byte('0')},
                          {b_.Bytes(ByteSet().AddRange('1', '9')), b_.Repeat({digit}, 0, kMaxDigits - 1)}});
    return *int_part_;
  }

  GrammarElement Integer() {
    if (!integer_) integer_ = b_.AnyOf({{b_.Optional({b_.Byte('-')}), IntegerPart()}});
    return *integer_;
  }

  // What may follow a number's integer part: an optional fraction and exponent.
  GrammarElement FractionAndExponent() {
    if (fraction_exponent_) return *fraction_exponent_;
    const GrammarElement digit = b_.Bytes(ByteSet().AddRange('0', '9'));
    const GrammarElement frac = b_.Optional({b_.Byte('.'), b_.Repeat({digit}, 1, kMaxDigits)});
    const GrammarElement exp = b_.Optional({b_.Bytes(ByteSet().Add('e').Add('E')),
                                            b_.Optional({b_.Bytes(ByteSet().Add('+').Add('-'))}),
                                            b_.Repeat({digit}, 1, 2)});  // e99 at most: every parser takes it
    fraction_exponent_ = b_.AnyOf({{frac, exp}});
    return *fraction_exponent_;
  }

  GrammarElement Number() {
    if (!number_) number_ = b_.AnyOf({{b_.Optional({b_.Byte('-')}), IntegerPart(), FractionAndExponent()}});
    return *number_;
  }

  GrammarElement Literal(const OJson& value) { return b_.AnyOf({b_.Literal(value.dump())}); }

  // "{" members "}" with any string keys, values matching `value`.
  GrammarElement Map(GrammarElement value) {
    const GrammarElement member = b_.AnyOf({{String(), Ws(), b_.Byte(':'), Ws(), value, Ws()}});
    const GrammarElement more = b_.Repeat({b_.Byte(','), Ws(), member}, 0, -1);
    return b_.AnyOf({{b_.Byte('{'), Ws(), b_.Optional({member, more}), b_.Byte('}')}});
  }

  // "[" items "]", count min..max (max < 0: any).
  GrammarElement List(GrammarElement item, int64_t min, int64_t max) {
    if (max == 0) return b_.AnyOf({{b_.Byte('['), Ws(), b_.Byte(']')}});
    const GrammarElement more = b_.Repeat({b_.Byte(','), Ws(), item, Ws()}, min > 0 ? min - 1 : 0, max < 0 ? -1 : max - 1);
    Sequence list = {item, Ws(), more};
    if (min == 0) list = {b_.Optional(std::move(list))};
    Sequence all = {b_.Byte('['), Ws()};
    all.insert(all.end(), list.begin(), list.end());
    all.push_back(b_.Byte(']'));
    return b_.AnyOf({std::move(all)});
  }

  // Any JSON value.
  // Any JSON value, nested at most kMaxValueNesting objects/arrays deep (deeper documents are
  // not what a client asking for JSON wants, and each level costs the recognizer a stack entry).
  GrammarElement Value() {
    if (value_) return *value_;
    const GrammarElement scalar = b_.AnyOf({{String()}, {Number()}, b_.Literal("true"), b_.Literal("false"), b_.Literal("null")});
    GrammarElement inner = scalar;
    for (int level = 0; level < kMaxValueNesting; ++level)
      inner = b_.AnyOf({{Map(inner)}, {List(inner, 0, -1)}, {scalar}});
    value_ = inner;
    return *value_;
  }

  GrammarElement AnyObject() { return Map(Value()); }

  Result<GrammarElement> Schema(const OJson& s, const std::string& path, int depth) {
    if (depth > kMaxDepth) return Bad(path, fmt::format("nested more than {} levels deep", kMaxDepth));
    if (b_.size() > kMaxRules) return Bad(path, fmt::format("the schema needs more than {} grammar rules", kMaxRules));
    if (s.is_boolean()) {
      if (s.get<bool>()) return Value();
      return Bad(path, "the schema false matches nothing");
    }
    if (!s.is_object()) return Bad(path, "a schema must be an object or a boolean");
    for (const auto& [key, unused] : s.items())
      if (Unsupported().count(key))
        return Bad(path, fmt::format("'{}' is not supported (structured output cannot enforce it)", key));
    // $ref, const, enum, anyOf, oneOf and allOf stand alone: other keywords beside them would
    // be further constraints (refused), except annotations, and `type` beside enum/const
    // (which keeps the values of that type).
    for (const char* key : {"$ref", "const", "enum", "anyOf", "oneOf", "allOf"}) {
      if (!s.contains(key)) continue;
      const bool values = std::string(key) == "const" || std::string(key) == "enum";
      for (const auto& [other, unused] : s.items())
        if (other != key && !Annotation(other) && !(values && other == "type"))
          return Bad(path, fmt::format("'{}' beside '{}' is not supported", other, key));
    }
    if (s.contains("$ref")) return Ref(s["$ref"], path, depth);
    if (s.contains("const") || s.contains("enum")) {
      OJson values = OJson::array();
      if (s.contains("const")) {
        values.push_back(s["const"]);
      } else {
        if (!s["enum"].is_array() || s["enum"].empty()) return Bad(path, "'enum' must be a non-empty array");
        values = s["enum"];
      }
      std::vector<Sequence> alts;
      for (const auto& v : values)
        if (!s.contains("type") || OfType(v, s["type"])) alts.push_back(b_.Literal(v.dump()));
      if (alts.empty()) return Bad(path, "no value of the enum / const has the schema's type");
      return b_.AnyOf(std::move(alts));
    }
    for (const char* key : {"anyOf", "oneOf"})
      if (s.contains(key)) {
        const OJson& list = s[key];
        if (!list.is_array() || list.empty()) return Bad(path, fmt::format("'{}' must be a non-empty array", key));
        std::vector<Sequence> alts;
        for (size_t i = 0; i < list.size(); ++i) {
          auto e = Schema(list[i], fmt::format("{}/{}/{}", path, key, i), depth + 1);
          if (!e.ok()) return e.status();
          alts.push_back({*e});
        }
        return b_.AnyOf(std::move(alts));
      }
    if (s.contains("allOf")) {
      const OJson& list = s["allOf"];
      if (!list.is_array() || list.size() != 1) return Bad(path, "'allOf' is supported with exactly one schema");
      return Schema(list[0], path + "/allOf/0", depth + 1);
    }
    if (s.contains("type")) {
      const OJson& t = s["type"];
      if (t.is_array()) {
        if (t.empty()) return Bad(path, "'type' must not be an empty list");
        std::vector<Sequence> alts;
        std::set<std::string> seen;
        for (const auto& one : t) {
          if (one.is_string() && !seen.insert(one.get<std::string>()).second) continue;  // a repeated type
          OJson copy = s;
          copy["type"] = one;
          auto e = Schema(copy, path, depth + 1);
          if (!e.ok()) return e.status();
          alts.push_back({*e});
        }
        return b_.AnyOf(std::move(alts));
      }
      if (!t.is_string()) return Bad(path, "'type' must be a string or a list of strings");
      const std::string type = t.get<std::string>();
      if (type == "object") return Object(s, path, depth);
      if (type == "array") return Array(s, path, depth);
      if (type == "string") return StringSchema(s, path);
      if (type == "integer") return BoundedInteger(s, path);
      if (type == "number") return BoundedNumber(s, path);
      if (type == "boolean") return b_.AnyOf({b_.Literal("true"), b_.Literal("false")});
      if (type == "null") return b_.AnyOf({b_.Literal("null")});
      return Bad(path, fmt::format("unknown type '{}'", type));
    }
    if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required"))
      return Object(s, path, depth);
    if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") || s.contains("maxItems"))
      return Array(s, path, depth);
    if (s.contains("minLength") || s.contains("maxLength")) return StringSchema(s, path);
    if (HasBounds(s)) return Bad(path, "'minimum' / 'maximum' need \"type\": \"integer\" or \"number\"");
    return Value();
  }

 private:
  static bool Annotation(const std::string& key) {
    static const std::set<std::string> k = {"title", "description", "default", "examples", "$schema", "$id",
                                            "$comment", "$defs", "definitions", "deprecated", "readOnly",
                                            "writeOnly", "discriminator"};
    return k.count(key) > 0 || key.rfind("x-", 0) == 0;
  }

  // Whether a JSON value has one of the schema types `type` names.
  static bool OfType(const OJson& v, const OJson& type) {
    if (type.is_array()) {
      for (const auto& t : type)
        if (OfType(v, t)) return true;
      return false;
    }
    if (!type.is_string()) return false;
    const std::string t = type.get<std::string>();
    return (t == "string" && v.is_string()) || (t == "integer" && v.is_number_integer()) ||
           (t == "number" && v.is_number()) || (t == "boolean" && v.is_boolean()) || (t == "null" && v.is_null()) ||
           (t == "object" && v.is_object()) || (t == "array" && v.is_array());
  }

  static Status Bad(const std::string& path, const std::string& what) {
    return InvalidArgument(fmt::format("schema at #{}: {}", path, what));
  }

  Result<int64_t> Count(const OJson& s, const char* key, int64_t fallback, const std::string& path) {
    if (!s.contains(key)) return fallback;
    const OJson& v = s[key];
    const bool non_negative = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
    if (!non_negative) return Bad(path, fmt::format("'{}' must be a non-negative integer", key));
    if (v.get<uint64_t>() > static_cast<uint64_t>(kMaxBoundedRepeat))
      return Bad(path, fmt::format("'{}' above {} is not supported", key, kMaxBoundedRepeat));
    return static_cast<int64_t>(v.get<uint64_t>());
  }

  static bool HasBounds(const OJson& s) {
    return s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") || s.contains("exclusiveMaximum");
  }

  // Integers within minimum / maximum / exclusiveMinimum / exclusiveMaximum (at most 16 digits).
  Result<GrammarElement> BoundedInteger(const OJson& s, const std::string& path) {
    if (!HasBounds(s)) return Integer();
    constexpr double kLimit = 9999999999999999.0;
    double lo = -kLimit, hi = kLimit;
    for (const char* k : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
      if (!s.contains(k)) continue;
      if (!s[k].is_number()) return Bad(path, fmt::format("'{}' must be a number", k));
      const double v = s[k].get<double>();
      const std::string key = k;
      if (key == "minimum") lo = std::max(lo, std::ceil(v));
      if (key == "exclusiveMinimum") lo = std::max(lo, std::floor(v) + 1);
      if (key == "maximum") hi = std::min(hi, std::floor(v));
      if (key == "exclusiveMaximum") hi = std::min(hi, std::ceil(v) - 1);
    }
    lo = std::max(lo, -kLimit);
    hi = std::min(hi, kLimit);
    if (lo > hi) return Bad(path, "no integer lies within the bounds");
    std::string pattern;
    if (lo < 0) {  // the negative part, -1 down to lo
      const auto nlo = static_cast<uint64_t>(hi < 0 ? -hi : 1), nhi = static_cast<uint64_t>(-lo);
      pattern.push_back('-');
      pattern.append(DigitRange(nlo, nhi));
    }
    if (hi >= 0) {
      if (!pattern.empty()) pattern += "|";
      pattern += DigitRange(static_cast<uint64_t>(std::max(lo, 0.0)), static_cast<uint64_t>(hi));
    }
    auto e = AddRegex(b_, pattern, RegexTarget::kRaw);
    if (!e.ok()) return e.status();
    return *e;
  }

  // Numbers: only a lower bound of 0 (inclusive) is expressible here: no minus sign.
  Result<GrammarElement> BoundedNumber(const OJson& s, const std::string& path) {
    if (!HasBounds(s)) return Number();
    if (s.contains("maximum") || s.contains("exclusiveMinimum") || s.contains("exclusiveMaximum") ||
        !s["minimum"].is_number() || s["minimum"].get<double>() != 0.0)
      return Bad(path, "bounds on a 'number' other than \"minimum\": 0 are not supported (an 'integer' takes any)");
    return b_.AnyOf({{IntegerPart(), FractionAndExponent()}});
  }

  Result<GrammarElement> StringSchema(const OJson& s, const std::string& path) {
    std::string pattern;
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) return Bad(path, "'pattern' must be a string");
      pattern = s["pattern"].get<std::string>();
    } else if (s.contains("format") && s["format"].is_string()) {
      pattern = FormatPattern(s["format"].get<std::string>());  // "" for formats left unchecked
    }
    if (!pattern.empty()) {
      if (s.contains("minLength") || s.contains("maxLength"))
        return Bad(path, "'pattern' (or 'format') together with 'minLength' / 'maxLength' is not supported");
      auto inner = AddRegex(b_, pattern, RegexTarget::kJsonString);
      if (!inner.ok()) return Bad(path, fmt::format("'pattern' \"{}\": {}", pattern, inner.status().message()));
      const GrammarElement q = b_.Byte('"');
      return b_.AnyOf({{q, *inner, q}});
    }
    QB_ASSIGN_OR_RETURN(int64_t min, Count(s, "minLength", 0, path));
    QB_ASSIGN_OR_RETURN(int64_t max, Count(s, "maxLength", -1, path));
    if (max >= 0 && max < min) return Bad(path, "'maxLength' is below 'minLength'");
    return String(min, max);
  }

  Result<GrammarElement> Ref(const OJson& ref, const std::string& path, int depth) {
    if (!ref.is_string()) return Bad(path, "'$ref' must be a string");
    const std::string r = ref.get<std::string>();
    if (r.empty() || r[0] != '#' || root_schema_ == nullptr)
      return Bad(path, fmt::format("'$ref' \"{}\": only references into this schema (\"#/...\") are supported", r));
    const std::string key = fmt::format("{}|{}", static_cast<const void*>(root_schema_), r);
    if (auto it = refs_.find(key); it != refs_.end()) return GrammarBuilder::Rule(it->second);
    const OJson* target = nullptr;
    try {
      target = &root_schema_->at(OJson::json_pointer(r.substr(1)));
    } catch (const std::exception&) {
      return Bad(path, fmt::format("'$ref' \"{}\" points at nothing", r));
    }
    const uint32_t rule = b_.NewRule();
    refs_[key] = rule;  // before visiting: the target may refer to itself
    auto e = Schema(*target, r, depth + 1);
    if (!e.ok()) return e.status();
    b_.Define(rule, {{*e}});
    return GrammarBuilder::Rule(rule);
  }

  Result<GrammarElement> Object(const OJson& s, const std::string& path, int depth) {
    static const OJson kEmpty = OJson::object();
    const OJson& props = s.contains("properties") ? s["properties"] : kEmpty;
    if (!props.is_object()) return Bad(path, "'properties' must be an object");
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) return Bad(path, "'required' must be an array of names");
      for (const auto& n : s["required"]) {
        if (!n.is_string()) return Bad(path, "'required' must be an array of names");
        required.insert(n.get<std::string>());
      }
    }
    // Keys besides the listed ones are written only when no properties are listed (then any
    // key, values per additionalProperties). With a list, an extra key could repeat a listed
    // one with a value of another schema; leaving extras out keeps every output valid, since
    // additionalProperties only permits keys.
    std::optional<GrammarElement> extra;
    const OJson* additional = s.contains("additionalProperties") ? &s["additionalProperties"] : nullptr;
    const bool extras_refused = additional != nullptr && additional->is_boolean() && !additional->get<bool>();
    if (props.empty() && !extras_refused) {
      if (additional != nullptr) {
        auto e = Schema(*additional, path + "/additionalProperties", depth + 1);
        if (!e.ok()) return e.status();
        extra = *e;
      } else {
        extra = Value();
      }
    }
    struct Member {
      GrammarElement element;
      bool required;
    };
    std::vector<Member> members;
    for (const auto& [name, schema] : props.items()) {
      auto v = Schema(schema, path + "/properties/" + name, depth + 1);
      if (!v.ok()) return v.status();
      Sequence kv = b_.Literal(OJson(name).dump());
      kv.insert(kv.end(), {Ws(), b_.Byte(':'), Ws(), *v, Ws()});
      members.push_back({b_.AnyOf({std::move(kv)}), required.count(name) > 0});
    }
    for (const std::string& name : required)
      if (!props.contains(name)) {  // required but not described: any value
        if (extras_refused)
          return Bad(path, fmt::format("'{}' is required but not in 'properties', and additionalProperties is false", name));
        Sequence kv = b_.Literal(OJson(name).dump());
        kv.insert(kv.end(), {Ws(), b_.Byte(':'), Ws(), Value(), Ws()});
        members.push_back({b_.AnyOf({std::move(kv)}), true});
      }
    if (members.empty()) {
      if (!extra) return b_.AnyOf({{b_.Byte('{'), Ws(), b_.Byte('}')}});
      return Map(*extra);
    }
    // rest(i): members i.. after at least one was written (each behind a comma);
    // first(i): members i.. when none was written yet.
    const size_t n = members.size();
    std::optional<GrammarElement> extra_kv;
    if (extra) extra_kv = b_.AnyOf({{String(), Ws(), b_.Byte(':'), Ws(), *extra, Ws()}});
    GrammarElement rest = extra_kv ? b_.Repeat({b_.Byte(','), Ws(), *extra_kv}, 0, -1) : b_.AnyOf({Sequence{}});
    GrammarElement first = extra_kv ? b_.Optional({*extra_kv, rest}) : b_.AnyOf({Sequence{}});
    for (size_t i = n; i-- > 0;) {
      const Member& m = members[i];
      Sequence with_comma = {b_.Byte(','), Ws(), m.element, rest};
      Sequence as_first = {m.element, rest};
      const GrammarElement new_rest = m.required ? b_.AnyOf({std::move(with_comma)}) : b_.AnyOf({std::move(with_comma), {rest}});
      first = m.required ? b_.AnyOf({std::move(as_first)}) : b_.AnyOf({std::move(as_first), {first}});
      rest = new_rest;
    }
    return b_.AnyOf({{b_.Byte('{'), Ws(), first, b_.Byte('}')}});
  }

  Result<GrammarElement> Array(const OJson& s, const std::string& path, int depth) {
    QB_ASSIGN_OR_RETURN(int64_t min, Count(s, "minItems", 0, path));
    QB_ASSIGN_OR_RETURN(int64_t max, Count(s, "maxItems", -1, path));
    if (max >= 0 && max < min) return Bad(path, "'maxItems' is below 'minItems'");
    const OJson* prefix = nullptr;
    const bool tuple = !s.contains("prefixItems") && s.contains("items") && s["items"].is_array();  // the older form
    if (s.contains("prefixItems")) prefix = &s["prefixItems"];
    else if (tuple) prefix = &s["items"];
    std::optional<GrammarElement> item;
    const char* items_key = tuple ? "additionalItems" : "items";
    if (!s.contains(items_key)) {
      item = Value();
    } else if (!(s[items_key].is_boolean() && !s[items_key].get<bool>())) {
      auto e = Schema(s[items_key], path + "/" + items_key, depth + 1);
      if (!e.ok()) return e.status();
      item = *e;
    }
    if (prefix == nullptr) {
      if (!item) {
        if (min > 0) return Bad(path, "'minItems' above 0 with items false: no array fits");
        return List(Value(), 0, 0);
      }
      return List(*item, min, max);
    }
    if (!prefix->is_array() || prefix->empty()) return Bad(path, "'prefixItems' must be a non-empty array");
    if (min > 0 || max >= 0) return Bad(path, "'minItems' / 'maxItems' together with 'prefixItems' are not supported");
    // tail(j): the items from prefix j on, each optional, then any number of `item`.
    GrammarElement tail = item ? b_.Repeat({b_.Byte(','), Ws(), *item, Ws()}, 0, -1) : b_.AnyOf({Sequence{}});
    std::vector<GrammarElement> prefix_items;
    for (size_t j = 0; j < prefix->size(); ++j) {
      auto e = Schema((*prefix)[j], fmt::format("{}/prefixItems/{}", path, j), depth + 1);
      if (!e.ok()) return e.status();
      prefix_items.push_back(*e);
    }
    for (size_t j = prefix_items.size(); j-- > 1;)
      tail = b_.Optional({b_.Byte(','), Ws(), prefix_items[j], Ws(), tail});
    return b_.AnyOf({{b_.Byte('['), Ws(), b_.Optional({prefix_items[0], Ws(), tail}), b_.Byte(']')}});
  }

  GrammarBuilder b_;
  const OJson* root_schema_;
  std::optional<GrammarElement> ws_, char_, string_, int_part_, integer_, fraction_exponent_, number_, value_;
  std::map<std::string, uint32_t> refs_;
};

}  // namespace

std::shared_ptr<const Grammar> JsonObjectGrammar() {
  static const std::shared_ptr<const Grammar> g = [] {
    JsonGrammarMaker m;
    const GrammarElement object = m.AnyObject();
    const uint32_t root = m.builder().NewRule();
    m.builder().Define(root, {{object}});
    auto built = m.builder().Build(root);
    QB_CHECK(built.ok(), "the JSON object grammar does not build: {}", built.status().ToString());
    return *built;
  }();
  return g;
}

Result<std::shared_ptr<const Grammar>> JsonSchemaGrammar(const nlohmann::ordered_json& schema) {
  JsonGrammarMaker m(&schema);
  QB_ASSIGN_OR_RETURN(GrammarElement value, m.Schema(schema, "", 0));
  const uint32_t root = m.builder().NewRule();
  m.builder().Define(root, {{value}});
  return m.builder().Build(root);
}

Result<std::shared_ptr<const Grammar>> ToolCallGrammar(const std::vector<ToolSchema>& tools, bool named, bool parallel) {
  if (tools.empty() || (named && tools.size() != 1)) return InvalidArgument("tool-call grammar: bad tool list");
  JsonGrammarMaker m;
  GrammarBuilder& b = m.builder();
  const std::string close = "}\n</tool_call>";
  std::vector<GrammarBuilder::Sequence> calls;
  for (const ToolSchema& t : tools) {
    m.SetRoot(&t.parameters);
    auto args = m.Schema(t.parameters, "", 0);
    if (!args.ok()) return args.status().WithContext(fmt::format("tool '{}' parameters", t.name));
    GrammarBuilder::Sequence call;
    if (!named) call = b.Literal("{\"name\": " + OJson(t.name).dump() + ", \"arguments\": ");
    call.push_back(*args);
    for (const GrammarElement& e : b.Literal(close)) call.push_back(e);
    calls.push_back(std::move(call));
  }
  const GrammarElement call = b.AnyOf(std::move(calls));
  GrammarBuilder::Sequence root_seq = {call};
  if (!named && parallel) {
    GrammarBuilder::Sequence again = b.Literal("\n<tool_call>\n");
    again.push_back(call);
    root_seq.push_back(b.Repeat(again, 0, -1));
  }
  const uint32_t root = b.NewRule();
  b.Define(root, {std::move(root_seq)});
  return b.Build(root);
}

Result<std::shared_ptr<const Grammar>> ChoiceGrammar(const std::vector<std::string>& choices) {
  if (choices.empty()) return InvalidArgument("the list of choices is empty");
  GrammarBuilder b;
  std::vector<GrammarBuilder::Sequence> alts;
  for (const std::string& c : choices) {
    if (c.empty()) return InvalidArgument("a choice is the empty string");
    alts.push_back(b.Literal(c));
  }
  const uint32_t root = b.NewRule();
  b.Define(root, std::move(alts));
  return b.Build(root);
}

}  // namespace qb
