#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace punica::tok {
namespace {

struct ClassRange {
  uint32_t first;
  uint32_t last;
  uint8_t cls;
};

constexpr ClassRange kRanges[] = {
#include "tokenizer/unicode_tables.inc"
};

struct ByteLevelTables {
  std::array<uint32_t, 256> byte_to_char{};
  std::array<int16_t, 324> char_to_byte{};  // every mapped code point is < 324
  ByteLevelTables() {
    char_to_byte.fill(-1);
    // bytes_to_unicode() of GPT-2: printable Latin-1 bytes map to themselves, the rest to 256 + n.
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_to_char[b] = printable ? b : 256 + n++;
      char_to_byte[byte_to_char[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteLevelTables& byte_level_tables() {
  static const ByteLevelTables t;
  return t;
}

// Length of the valid sequence starting at s[i], or 0 if s[i..] is not a valid sequence. Sets
// `maximal_subpart` to the number of bytes that form the maximal invalid subpart (>= 1) when invalid,
// and `incomplete` when the bytes are a valid prefix cut short by the end of the input.
size_t utf8_sequence_at(std::string_view s, size_t i, size_t& maximal_subpart, bool& incomplete) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size();
  uint8_t b0 = p[i];
  incomplete = false;
  maximal_subpart = 1;
  if (b0 < 0x80) return 1;
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < len; ++k) {
    if (i + k >= n) {
      incomplete = true;
      maximal_subpart = k;
      return 0;
    }
    uint8_t b = p[i + k];
    uint8_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      maximal_subpart = k;
      return 0;
    }
  }
  return len;
}

}  // namespace

uint8_t unicode_class(uint32_t cp) {
  if (cp < 0x80) {
    if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) return kClassLetter;
    if (cp >= '0' && cp <= '9') return kClassNumber;
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) return kClassWhitespace;
    return kClassOther;
  }
  auto it = std::upper_bound(std::begin(kRanges), std::end(kRanges), cp,
                             [](uint32_t c, const ClassRange& r) { return c < r.first; });
  if (it == std::begin(kRanges)) return kClassOther;
  --it;
  return cp <= it->last ? it->cls : static_cast<uint8_t>(kClassOther);
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::vector<uint32_t> utf8_to_code_points(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t i = 0, n = s.size();
  while (i < n) {
    size_t sub;
    bool incomplete;
    size_t len = utf8_sequence_at(s, i, sub, incomplete);
    if (len == 0) {
      out.push_back(kReplacementChar);
      i += sub;
      continue;
    }
    uint32_t cp;
    if (len == 1) cp = p[i];
    else if (len == 2) cp = ((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
    else if (len == 3) cp = ((p[i] & 0x0F) << 12) | ((p[i + 1] & 0x3F) << 6) | (p[i + 2] & 0x3F);
    else cp = ((p[i] & 0x07) << 18) | ((p[i + 1] & 0x3F) << 12) | ((p[i + 2] & 0x3F) << 6) | (p[i + 3] & 0x3F);
    out.push_back(cp);
    i += len;
  }
  return out;
}

size_t utf8_complete_prefix(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    size_t sub;
    bool incomplete;
    size_t len = utf8_sequence_at(s, i, sub, incomplete);
    if (len == 0 && incomplete) return i;
    i += len ? len : sub;
  }
  return n;
}

std::string utf8_make_valid(std::string_view s) {
  if (utf8_is_valid(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  size_t i = 0, n = s.size();
  while (i < n) {
    size_t sub;
    bool incomplete;
    size_t len = utf8_sequence_at(s, i, sub, incomplete);
    if (len == 0) {
      utf8_append(out, kReplacementChar);
      i += sub;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return out;
}

bool utf8_is_valid(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t sub;
    bool incomplete;
    size_t len = utf8_sequence_at(s, i, sub, incomplete);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

uint32_t byte_level_char(uint8_t byte) { return byte_level_tables().byte_to_char[byte]; }

int byte_level_byte(uint32_t cp) {
  return cp < 324 ? byte_level_tables().char_to_byte[cp] : -1;
}

}  // namespace punica::tok
