#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <cstdlib>

namespace qb::unicode {

namespace {

// Valid UTF-8 per Unicode Table 3-7: the accepted range of each continuation byte.
struct Lead {
  int len;          // total length, 0 = invalid lead byte
  uint8_t lo2, hi2;  // range of the second byte
};

Lead LeadOf(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b >= 0xc2 && b <= 0xdf) return {2, 0x80, 0xbf};
  if (b == 0xe0) return {3, 0xa0, 0xbf};
  if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) return {3, 0x80, 0xbf};
  if (b == 0xed) return {3, 0x80, 0x9f};
  if (b == 0xf0) return {4, 0x90, 0xbf};
  if (b >= 0xf1 && b <= 0xf3) return {4, 0x80, 0xbf};
  if (b == 0xf4) return {4, 0x80, 0x8f};
  return {0, 0, 0};
}

// How many bytes from s[i] form a valid prefix of one sequence (its maximal subpart), and
// whether that prefix is the whole sequence.
size_t ValidRun(std::string_view s, size_t i, bool* complete) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  const Lead lead = LeadOf(b0);
  *complete = false;
  if (lead.len == 0) return 0;
  if (lead.len == 1) {
    *complete = true;
    return 1;
  }
  size_t n = 1;
  for (int k = 1; k < lead.len; ++k) {
    if (i + n >= s.size()) return n;
    const auto b = static_cast<uint8_t>(s[i + n]);
    const uint8_t lo = k == 1 ? lead.lo2 : 0x80, hi = k == 1 ? lead.hi2 : 0xbf;
    if (b < lo || b > hi) return n;
    ++n;
  }
  *complete = true;
  return n;
}

}  // namespace

char32_t DecodeAt(std::string_view s, size_t i, size_t* len) {
  bool complete = false;
  const size_t n = ValidRun(s, i, &complete);
  if (!complete) {
    *len = 1;
    return 0xfffd;
  }
  *len = n;
  const auto* p = reinterpret_cast<const uint8_t*>(s.data() + i);
  switch (n) {
    case 1: return p[0];
    case 2: return (char32_t{p[0] & 0x1fu} << 6) | (p[1] & 0x3fu);
    case 3: return (char32_t{p[0] & 0x0fu} << 12) | (char32_t{p[1] & 0x3fu} << 6) | (p[2] & 0x3fu);
    default:
      return (char32_t{p[0] & 0x07u} << 18) | (char32_t{p[1] & 0x3fu} << 12) | (char32_t{p[2] & 0x3fu} << 6) |
             (p[3] & 0x3fu);
  }
}

void AppendUtf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

uint8_t Classify(char32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return kLetter;
    if (cp >= '0' && cp <= '9') return kNumber;
    if (cp == '\r' || cp == '\n') return kSpace | kNewline;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d)) return kSpace;
    return kOther;
  }
  if (cp == 0x85) return kSpace;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: return kLetter;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return kNumber;
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP: return kSpace;
    default: return kOther;
  }
}

bool IsAscii(std::string_view s) {
  for (char c : s)
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  return true;
}

std::string Nfc(std::string_view s) {
  if (IsAscii(s)) return std::string(s);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                   &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return std::string(s);
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return r;
}

size_t CompletePrefix(std::string_view s) {
  // Only the last up-to-3 bytes can be an incomplete sequence.
  const size_t start = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = start; i < s.size(); ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    if (b < 0x80 || b >= 0xc0) {  // a lead byte (or ASCII, or invalid)
      bool complete = false;
      const size_t n = ValidRun(s, i, &complete);
      if (!complete && n > 0 && i + n == s.size()) return i;  // incomplete but still possible
    }
  }
  return s.size();
}

std::string Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    bool complete = false;
    const size_t n = ValidRun(bytes, i, &complete);
    if (complete) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += "\xef\xbf\xbd";  // U+FFFD for the maximal subpart (at least one byte)
      i += n == 0 ? 1 : n;
    }
  }
  return out;
}

}  // namespace qb::unicode
