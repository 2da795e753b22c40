// GPT-2's byte-level alphabet: each byte is shown as a printable code point, so that BPE
// vocabularies are text. Bytes 0x21-0x7e, 0xa1-0xac and 0xae-0xff map to themselves; the other
// 68 bytes map to U+0100.. in byte order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qb::byte_level {

char32_t ByteToCodePoint(uint8_t b);
// The byte a code point stands for, or -1 if it is not in the alphabet.
int CodePointToByte(char32_t cp);
// Raw bytes -> byte-level text (UTF-8).
std::string Encode(std::string_view bytes);
// Byte-level text -> raw bytes; false if a character is outside the alphabet.
bool Decode(std::string_view text, std::string* bytes);

}  // namespace qb::byte_level
