#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/unicode.h"

namespace qb::byte_level {

namespace {

bool Printable(int b) { return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff); }

struct Tables {
  std::array<char32_t, 256> to_cp{};
  std::array<int16_t, 0x200> to_byte{};  // code points < 0x200 only
  Tables() {
    to_byte.fill(-1);
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      to_cp[static_cast<size_t>(b)] = Printable(b) ? static_cast<char32_t>(b) : next++;
      to_byte[to_cp[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& T() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t ByteToCodePoint(uint8_t b) { return T().to_cp[b]; }

int CodePointToByte(char32_t cp) { return cp < 0x200 ? T().to_byte[cp] : -1; }

std::string Encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) unicode::AppendUtf8(out, T().to_cp[static_cast<uint8_t>(c)]);
  return out;
}

bool Decode(std::string_view text, std::string* bytes) {
  bytes->clear();
  size_t i = 0;
  while (i < text.size()) {
    size_t len = 0;
    const char32_t cp = unicode::DecodeAt(text, i, &len);
    const int b = CodePointToByte(cp);
    if (b < 0) return false;
    bytes->push_back(static_cast<char>(b));
    i += len;
  }
  return true;
}

}  // namespace qb::byte_level
