#include "grammar/regex_grammar.h"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace qb {

namespace {

using Sequence = GrammarBuilder::Sequence;
constexpr uint32_t kMaxCodePoint = 0x10ffff;
constexpr int64_t kMaxRepeat = 1000;
constexpr int kMaxNesting = 64;

// A set of code points as sorted, disjoint, non-adjacent ranges.
class CodePoints {
 public:
  CodePoints& Add(uint32_t lo, uint32_t hi) {
    ranges_.emplace_back(lo, hi);
    return *this;
  }
  CodePoints& Add(const CodePoints& o) {
    ranges_.insert(ranges_.end(), o.ranges_.begin(), o.ranges_.end());
    return *this;
  }
  const std::vector<std::pair<uint32_t, uint32_t>>& ranges() {
    std::sort(ranges_.begin(), ranges_.end());
    std::vector<std::pair<uint32_t, uint32_t>> merged;
    for (const auto& r : ranges_) {
      if (!merged.empty() && r.first <= merged.back().second + 1) merged.back().second = std::max(merged.back().second, r.second);
      else merged.push_back(r);
    }
    ranges_ = std::move(merged);
    return ranges_;
  }
  CodePoints Complement() {
    CodePoints c;
    uint32_t next = 0;
    for (const auto& [lo, hi] : ranges()) {
      if (lo > next) c.Add(next, lo - 1);
      next = hi + 1;
    }
    if (next <= kMaxCodePoint) c.Add(next, kMaxCodePoint);
    return c;
  }

 private:
  std::vector<std::pair<uint32_t, uint32_t>> ranges_;
};

CodePoints Digits() { return CodePoints().Add('0', '9'); }
CodePoints Word() { return CodePoints().Add('0', '9').Add('A', 'Z').Add('a', 'z').Add('_', '_'); }
CodePoints Space() { return CodePoints().Add(' ', ' ').Add('\t', '\r'); }  // \t \n \v \f \r

std::string Utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xc0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xe0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    s += static_cast<char>(0xf0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    s += static_cast<char>(0x80 | (cp & 0x3f));
  }
  return s;
}

int Utf8Length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

// The UTF-8 encodings of the code points lo..hi (one length, no surrogates) as sequences of
// byte ranges: the range is split until, in each piece, every byte position runs over a
// contiguous range independently of the others.
void Utf8Ranges(uint32_t lo, uint32_t hi, std::vector<std::vector<std::pair<uint8_t, uint8_t>>>& out) {
  const int n = Utf8Length(lo);
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (uint32_t{1} << (6 * i)) - 1;  // the low i continuation bytes
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        Utf8Ranges(lo, lo | m, out);
        Utf8Ranges((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        Utf8Ranges(lo, (hi & ~m) - 1, out);
        Utf8Ranges(hi & ~m, hi, out);
        return;
      }
    }
  }
  const std::string a = Utf8(lo), b = Utf8(hi);
  std::vector<std::pair<uint8_t, uint8_t>> seq;
  for (size_t j = 0; j < a.size(); ++j) seq.emplace_back(static_cast<uint8_t>(a[j]), static_cast<uint8_t>(b[j]));
  out.push_back(std::move(seq));
}

void NonAsciiRanges(uint32_t lo, uint32_t hi, std::vector<std::vector<std::pair<uint8_t, uint8_t>>>& out) {
  lo = std::max<uint32_t>(lo, 0x80);
  // Split at the encoding lengths and leave out the surrogates.
  const std::pair<uint32_t, uint32_t> pieces[] = {{0x80, 0x7ff}, {0x800, 0xd7ff}, {0xe000, 0xffff}, {0x10000, kMaxCodePoint}};
  for (const auto& [a, b] : pieces) {
    const uint32_t l = std::max(lo, a), h = std::min(hi, b);
    if (l <= h) Utf8Ranges(l, h, out);
  }
}

std::string JsonEscape(uint32_t c) {
  switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\b': return "\\b";
    case '\f': return "\\f";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return fmt::format("\\u{:04x}", c);
  }
}

class RegexCompiler {
 public:
  RegexCompiler(GrammarBuilder& b, std::string_view p, RegexTarget t) : b_(b), p_(p), target_(t) {}

  Result<GrammarElement> Compile() {
    bool start = false, end = false;
    if (!p_.empty() && p_[0] == '^') {
      start = true;
      i_ = 1;
    }
    size_t stop = p_.size();
    if (stop > i_ && p_[stop - 1] == '$') {
      size_t slashes = 0;
      for (size_t k = stop - 1; k > i_ && p_[k - 1] == '\\'; --k) ++slashes;
      if (slashes % 2 == 0) {
        end = true;
        --stop;
      }
    }
    p_ = p_.substr(0, stop);
    QB_ASSIGN_OR_RETURN(Part whole, Alternation());
    if (i_ < p_.size()) return Error("unbalanced ')'");
    if (target_ == RegexTarget::kRaw) return whole.element;
    // A JSON Schema pattern matches anywhere in the string unless anchored.
    Sequence s;
    const CodePoints any = CodePoints().Add(0, kMaxCodePoint);
    if (!start) s.push_back(b_.Repeat(Emit(any), 0, -1));
    s.push_back(whole.element);
    if (!end) s.push_back(b_.Repeat(Emit(any), 0, -1));
    return b_.AnyOf({std::move(s)});
  }

 private:
  struct Part {
    GrammarElement element;
    bool nullable = false;
  };

  Status Error(const std::string& what) const {
    return InvalidArgument(fmt::format("regular expression at offset {}: {}", i_, what));
  }
  bool AtEnd() const { return i_ >= p_.size(); }

  Result<uint32_t> CodePoint() {
    const auto c = static_cast<uint8_t>(p_[i_]);
    const int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i_ + static_cast<size_t>(n) > p_.size()) return Error("invalid UTF-8");
    uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (int k = 1; k < n; ++k) {
      const auto d = static_cast<uint8_t>(p_[i_ + static_cast<size_t>(k)]);
      if ((d & 0xc0) != 0x80) return Error("invalid UTF-8");
      cp = (cp << 6) | (d & 0x3f);
    }
    i_ += static_cast<size_t>(n);
    return cp;
  }

  // One character of the set, as the target writes it.
  Sequence Emit(CodePoints set) {
    std::vector<Sequence> alts;
    ByteSet plain;
    bool any_plain = false;
    std::vector<std::vector<std::pair<uint8_t, uint8_t>>> multi;
    for (const auto& [lo, hi] : set.ranges()) {
      for (uint32_t c = lo; c <= std::min<uint32_t>(hi, 0x7f); ++c) {
        const bool escape = target_ == RegexTarget::kJsonString && (c < 0x20 || c == '"' || c == '\\');
        if (escape) {
          alts.push_back(b_.Literal(JsonEscape(c)));
        } else {
          plain.Add(static_cast<uint8_t>(c));
          any_plain = true;
        }
      }
      if (hi >= 0x80) NonAsciiRanges(lo, hi, multi);
    }
    if (any_plain) alts.push_back({b_.Bytes(plain)});
    for (const auto& seq : multi) {
      Sequence s;
      for (const auto& [a, z] : seq) s.push_back(b_.Bytes(ByteSet().AddRange(a, z)));
      alts.push_back(std::move(s));
    }
    if (alts.size() == 1) return alts[0];
    return {b_.AnyOf(std::move(alts))};
  }

  // alternation := concat ('|' concat)*
  Result<Part> Alternation() {
    if (++depth_ > kMaxNesting) return Error("nested too deeply");
    std::vector<Sequence> alts;
    bool nullable = false;
    while (true) {
      Sequence seq;
      bool all_nullable = true;
      while (!AtEnd() && p_[i_] != '|' && p_[i_] != ')') {
        QB_ASSIGN_OR_RETURN(Part piece, Piece());
        seq.push_back(piece.element);
        all_nullable &= piece.nullable;
      }
      nullable |= all_nullable;
      alts.push_back(std::move(seq));
      if (AtEnd() || p_[i_] != '|') break;
      ++i_;
    }
    --depth_;
    return Part{b_.AnyOf(std::move(alts)), nullable};
  }

  // piece := atom quantifier?
  Result<Part> Piece() {
    QB_ASSIGN_OR_RETURN(Part atom, Atom());
    if (AtEnd()) return atom;
    int64_t min = 1, max = 1;
    const char q = p_[i_];
    if (q == '*' || q == '+' || q == '?') {
      min = q == '+' ? 1 : 0;
      max = q == '?' ? 1 : -1;
      ++i_;
    } else if (q == '{') {
      size_t j = i_ + 1;
      auto number = [&](int64_t* v) {
        const size_t from = j;
        *v = 0;
        // Every digit is read (a long count is "too large", not a literal '{'); the value
        // stops growing past kMaxRepeat, so it cannot overflow.
        for (; j < p_.size() && p_[j] >= '0' && p_[j] <= '9'; ++j)
          if (*v <= kMaxRepeat) *v = *v * 10 + (p_[j] - '0');
        return j > from;
      };
      int64_t a = 0, z = 0;
      if (!number(&a)) return atom;  // not a quantifier: '{' is a literal next
      if (j < p_.size() && p_[j] == '}') {
        z = a;
      } else if (j < p_.size() && p_[j] == ',') {
        ++j;
        if (!number(&z)) z = -1;
        if (j >= p_.size() || p_[j] != '}') return atom;
      } else {
        return atom;
      }
      i_ = j + 1;
      min = a;
      max = z;
      if (min > kMaxRepeat || max > kMaxRepeat) return Error(fmt::format("repeat counts above {} are not supported", kMaxRepeat));
      if (max >= 0 && max < min) return Error("a repeat's maximum is below its minimum");
    } else {
      return atom;
    }
    if (!AtEnd() && p_[i_] == '?') ++i_;  // lazy: the same language
    else if (!AtEnd() && p_[i_] == '+') return Error("possessive quantifiers are not supported");
    if (!AtEnd() && (p_[i_] == '*' || p_[i_] == '+' || p_[i_] == '?')) return Error("a quantifier follows a quantifier");
    if (atom.nullable && max < 0) return Error("an unbounded repeat of a part that can match nothing");
    return Part{b_.Repeat({atom.element}, min, max), atom.nullable || min == 0};
  }

  Result<Part> Atom() {
    const char c = p_[i_];
    if (c == '(') {
      ++i_;
      if (!AtEnd() && p_[i_] == '?') {
        ++i_;
        if (!AtEnd() && p_[i_] == ':') {
          ++i_;
        } else if (!AtEnd() && (p_[i_] == 'P' || p_[i_] == '<') &&
                   !(p_[i_] == '<' && i_ + 1 < p_.size() && (p_[i_ + 1] == '=' || p_[i_ + 1] == '!'))) {
          const size_t close = p_.find('>', i_);
          if (close == std::string_view::npos) return Error("unterminated group name");
          i_ = close + 1;
        } else {
          return Error("lookaround and inline flags are not supported");
        }
      }
      QB_ASSIGN_OR_RETURN(Part inner, Alternation());
      if (AtEnd() || p_[i_] != ')') return Error("missing ')'");
      ++i_;
      return inner;
    }
    if (c == '*' || c == '+' || c == '?') return Error("nothing to repeat");
    if (c == '^' || c == '$') return Error("'^' and '$' are supported only at the start and the end");
    if (c == '[') {
      ++i_;
      QB_ASSIGN_OR_RETURN(CodePoints set, Class());
      return Part{b_.AnyOf({Emit(set)}), false};
    }
    if (c == '.') {
      ++i_;
      return Part{b_.AnyOf({Emit(CodePoints().Add('\n', '\n').Complement())}), false};
    }
    if (c == '\\') {
      ++i_;
      QB_ASSIGN_OR_RETURN(CodePoints set, Escape(false));
      return Part{b_.AnyOf({Emit(set)}), false};
    }
    QB_ASSIGN_OR_RETURN(uint32_t cp, CodePoint());
    return Part{b_.AnyOf({Emit(CodePoints().Add(cp, cp))}), false};
  }

  // After '\'.
  Result<CodePoints> Escape(bool in_class) {
    if (AtEnd()) return Error("a pattern cannot end with '\\'");
    const char c = p_[i_];
    auto single = [](uint32_t cp) { return CodePoints().Add(cp, cp); };
    auto hex = [&](size_t digits) -> Result<CodePoints> {
      uint32_t v = 0;
      for (size_t k = 0; k < digits; ++k) {
        if (i_ >= p_.size() || !std::isxdigit(static_cast<unsigned char>(p_[i_]))) return Error("bad hexadecimal escape");
        const char h = p_[i_++];
        v = v * 16 + static_cast<uint32_t>(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
      }
      return single(v);
    };
    if (static_cast<uint8_t>(c) >= 0x80) {
      QB_ASSIGN_OR_RETURN(uint32_t cp, CodePoint());
      return single(cp);
    }
    ++i_;
    switch (c) {
      case 'd': return Digits();
      case 'D': return Digits().Complement();
      case 'w': return Word();
      case 'W': return Word().Complement();
      case 's': return Space();
      case 'S': return Space().Complement();
      case 'n': return single('\n');
      case 't': return single('\t');
      case 'r': return single('\r');
      case 'f': return single('\f');
      case 'v': return single('\v');
      case '0': return single(0);
      case 'x': return hex(2);
      case 'u': return hex(4);
      case 'b':
        if (in_class) return single('\b');
        return Error("word boundaries (\\b) are not supported");
      default: break;
    }
    if (c >= '1' && c <= '9') return Error("backreferences are not supported");
    if (std::isalnum(static_cast<unsigned char>(c)))
      return Error(fmt::format("the escape \\{} is not supported", c));
    return single(static_cast<uint8_t>(c));  // an escaped punctuation character
  }

  // After '['.
  Result<CodePoints> Class() {
    bool negate = false;
    if (!AtEnd() && p_[i_] == '^') {
      negate = true;
      ++i_;
    }
    CodePoints set;
    bool first = true;
    while (true) {
      if (AtEnd()) return Error("missing ']'");
      if (p_[i_] == ']' && !first) {
        ++i_;
        break;
      }
      first = false;
      // One item: a character (maybe starting a range) or an escaped class.
      auto item = [&]() -> Result<CodePoints> {
        if (p_[i_] == '\\') {
          ++i_;
          return Escape(true);
        }
        QB_ASSIGN_OR_RETURN(uint32_t cp, CodePoint());
        return CodePoints().Add(cp, cp);
      };
      QB_ASSIGN_OR_RETURN(CodePoints lo, item());
      const auto& lr = lo.ranges();
      const bool one = lr.size() == 1 && lr[0].first == lr[0].second;
      if (one && i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
        ++i_;
        QB_ASSIGN_OR_RETURN(CodePoints hi, item());
        const auto& hr = hi.ranges();
        if (hr.size() != 1 || hr[0].first != hr[0].second) return Error("a range must end with one character");
        if (hr[0].first < lr[0].first) return Error("a range's end is before its start");
        set.Add(lr[0].first, hr[0].first);
      } else {
        set.Add(lo);
      }
    }
    if (negate) set = set.Complement();
    if (set.ranges().empty()) return Error("the class matches nothing");
    return set;
  }

  GrammarBuilder& b_;
  std::string_view p_;
  RegexTarget target_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

GrammarElement Utf8NonAscii(GrammarBuilder& b) {
  std::vector<std::vector<std::pair<uint8_t, uint8_t>>> multi;
  NonAsciiRanges(0x80, kMaxCodePoint, multi);
  std::vector<Sequence> alts;
  for (const auto& seq : multi) {
    Sequence s;
    for (const auto& [a, z] : seq) s.push_back(b.Bytes(ByteSet().AddRange(a, z)));
    alts.push_back(std::move(s));
  }
  return b.AnyOf(std::move(alts));
}

Result<GrammarElement> AddRegex(GrammarBuilder& b, std::string_view pattern, RegexTarget target) {
  return RegexCompiler(b, pattern, target).Compile();
}

Result<std::shared_ptr<const Grammar>> RegexGrammar(std::string_view pattern) {
  GrammarBuilder b;
  QB_ASSIGN_OR_RETURN(GrammarElement e, AddRegex(b, pattern, RegexTarget::kRaw));
  const uint32_t root = b.NewRule();
  b.Define(root, {{e}});
  return b.Build(root);
}

}  // namespace qb
