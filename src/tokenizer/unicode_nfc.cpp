#include "tokenizer/unicode_nfc.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tokenizer/unicode.h"

namespace punica::tok {
namespace {

struct Decomposition {
  uint32_t cp;
  uint16_t offset;
  uint8_t length;
};
constexpr Decomposition kDecompositions[] = {
#define PUNICA_NFC_DECOMPOSITIONS
#include "tokenizer/unicode_nfc_tables.inc"
#undef PUNICA_NFC_DECOMPOSITIONS
};
constexpr uint32_t kDecompositionData[] = {
#define PUNICA_NFC_DECOMPOSITION_DATA
#include "tokenizer/unicode_nfc_tables.inc"
#undef PUNICA_NFC_DECOMPOSITION_DATA
};
struct Composition {
  uint32_t first, second, composite;
};
constexpr Composition kCompositions[] = {
#define PUNICA_NFC_COMPOSITIONS
#include "tokenizer/unicode_nfc_tables.inc"
#undef PUNICA_NFC_COMPOSITIONS
};
struct ClassRange {
  uint32_t first, last;
  uint8_t ccc;
};
constexpr ClassRange kClasses[] = {
#define PUNICA_NFC_COMBINING_CLASSES
#include "tokenizer/unicode_nfc_tables.inc"
#undef PUNICA_NFC_COMBINING_CLASSES
};

// Hangul syllables are (de)composed algorithmically (Unicode 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

uint8_t combining_class(uint32_t cp) {
  if (cp < 0x300) return 0;
  auto it = std::upper_bound(std::begin(kClasses), std::end(kClasses), cp,
                             [](uint32_t c, const ClassRange& r) { return c < r.first; });
  if (it == std::begin(kClasses)) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    uint32_t s = cp - kSBase;
    out.push_back(kLBase + s / kNCount);
    out.push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount) out.push_back(kTBase + s % kTCount);
    return;
  }
  auto it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), cp,
                             [](const Decomposition& d, uint32_t c) { return d.cp < c; });
  if (it != std::end(kDecompositions) && it->cp == cp) {
    out.insert(out.end(), kDecompositionData + it->offset, kDecompositionData + it->offset + it->length);
  } else {
    out.push_back(cp);
  }
}

// 0 when the pair has no primary composite.
uint32_t compose(uint32_t a, uint32_t b) {
  if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
    return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
  if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
    return a + (b - kTBase);
  auto it = std::lower_bound(std::begin(kCompositions), std::end(kCompositions), std::pair{a, b},
                             [](const Composition& c, std::pair<uint32_t, uint32_t> k) {
                               return c.first != k.first ? c.first < k.first : c.second < k.second;
                             });
  if (it != std::end(kCompositions) && it->first == a && it->second == b) return it->composite;
  return 0;
}

}  // namespace

std::string unicode_nfc(std::string_view text) {
  bool trivial = true;
  for (char c : text)
    if (static_cast<uint8_t>(c) >= 0xCC) trivial = false;  // lead bytes of U+0300 and above
  if (trivial) return std::string(text);

  std::vector<uint32_t> d;
  d.reserve(text.size());
  for (uint32_t cp : utf8_to_code_points(text)) decompose(cp, d);
  // Canonical ordering: stable sort of each run of non-starters by combining class.
  for (size_t i = 0; i < d.size();) {
    if (combining_class(d[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < d.size() && combining_class(d[j]) != 0) ++j;
    std::stable_sort(d.begin() + i, d.begin() + j,
                     [](uint32_t a, uint32_t b) { return combining_class(a) < combining_class(b); });
    i = j;
  }
  // Canonical composition (UAX #15's reference algorithm).
  if (!d.empty()) {
    size_t starter = 0, out = 1;
    int last_class = combining_class(d[0]) ? 256 : 0;
    for (size_t i = 1; i < d.size(); ++i) {
      uint32_t ch = d[i];
      int ch_class = combining_class(ch);
      uint32_t composite = compose(d[starter], ch);
      if (composite && (last_class < ch_class || last_class == 0)) {
        d[starter] = composite;
      } else {
        if (ch_class == 0) starter = out;
        last_class = ch_class;
        d[out++] = ch;
      }
    }
    d.resize(out);
  }
  std::string result;
  result.reserve(text.size());
  for (uint32_t cp : d) utf8_append(result, cp);
  return result;
}

}  // namespace punica::tok
