// UTF-8 and the Unicode character classes the pre-tokenizer split patterns use (\p{L}, \p{N}, \s),
// with tables generated from the reference's own regex engine (tools/gen_tokenizer_fixtures.py).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace punica::tok {

enum UnicodeClass : uint8_t {
  kClassOther = 0,
  kClassLetter = 1,      // \p{L}
  kClassNumber = 2,      // \p{N}
  kClassWhitespace = 4,  // \s (Unicode White_Space)
};

uint8_t unicode_class(uint32_t cp);
inline bool unicode_is_letter(uint32_t cp) { return unicode_class(cp) & kClassLetter; }
inline bool unicode_is_number(uint32_t cp) { return unicode_class(cp) & kClassNumber; }
inline bool unicode_is_whitespace(uint32_t cp) { return unicode_class(cp) & kClassWhitespace; }

constexpr uint32_t kReplacementChar = 0xFFFD;

// Appends cp as UTF-8.
void utf8_append(std::string& out, uint32_t cp);

// Decodes valid UTF-8 (callers pass text already made valid by utf8_make_valid) into code points.
std::vector<uint32_t> utf8_to_code_points(std::string_view s);

// Length in bytes of the longest prefix of `s` that is a complete, valid UTF-8 sequence stream, leaving
// out a trailing *incomplete but still completable* sequence (at most 3 bytes). Invalid bytes before that
// tail count as "complete" (they will become U+FFFD whatever follows).
size_t utf8_complete_prefix(std::string_view s);

// Replaces every maximal invalid subpart with U+FFFD (Unicode's recommended practice, the rule of Rust's
// String::from_utf8_lossy and Python's errors="replace").
std::string utf8_make_valid(std::string_view s);
bool utf8_is_valid(std::string_view s);

// The GPT-2 byte <-> printable code point mapping used by byte-level BPE vocabularies.
uint32_t byte_level_char(uint8_t byte);
// -1 when cp is not one of the 256 byte-level characters.
int byte_level_byte(uint32_t cp);

}  // namespace punica::tok
