#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode.h"
#include "tokenizer/unicode_nfc.h"

namespace punica::tok {
namespace {

TEST(Utf8, MakeValidReplacesMaximalSubparts) {
  // Unicode's "maximal subpart" examples: E1 80 is one subpart; ED A0 80 (surrogate) is three.
  EXPECT_EQ(utf8_make_valid("a\xE1\x80" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(utf8_make_valid("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(utf8_make_valid("\xFF"), "\xEF\xBF\xBD");
  EXPECT_EQ(utf8_make_valid("\xF0\x9F\x98"), "\xEF\xBF\xBD");
  EXPECT_EQ(utf8_make_valid("ok \xC3\xA9"), "ok \xC3\xA9");
}

TEST(Utf8, CompletePrefixHoldsOnlyCompletableTail) {
  EXPECT_EQ(utf8_complete_prefix("ab\xF0\x9F\x98"), 2u);  // emoji cut short: hold 3 bytes
  EXPECT_EQ(utf8_complete_prefix("ab\xF0\x9F\x98\x80"), 6u);
  EXPECT_EQ(utf8_complete_prefix("ab\xFF"), 3u);        // never valid: nothing to wait for
  EXPECT_EQ(utf8_complete_prefix("ab\xE1\x80" "c"), 5u);  // broken in the middle: not a tail
}

TEST(Unicode, ClassesComeFromTheReferenceTables) {
  EXPECT_TRUE(unicode_is_letter(U'é'));
  EXPECT_TRUE(unicode_is_letter(0x4E2D));   // 中
  EXPECT_TRUE(unicode_is_number(0x0663));   // ARABIC-INDIC DIGIT THREE
  EXPECT_TRUE(unicode_is_number(0x2167));   // ROMAN NUMERAL EIGHT (Nl)
  EXPECT_TRUE(unicode_is_whitespace(0x3000));
  EXPECT_TRUE(unicode_is_whitespace(0x85));
  EXPECT_FALSE(unicode_is_whitespace(0x200B));  // ZERO WIDTH SPACE is not White_Space
  EXPECT_FALSE(unicode_is_letter(0x0301));      // combining acute: \p{M}, not \p{L}
  EXPECT_FALSE(unicode_is_letter(0x1F600));
}

std::vector<std::string> split(SplitPattern p, std::string_view s) {
  std::vector<size_t> lens;
  split_by_pattern(p, s, lens);
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t l : lens) {
    out.emplace_back(s.substr(pos, l));
    pos += l;
  }
  return out;
}

TEST(SplitPattern, Gpt2) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(SplitPattern::kGpt2, "Hello world, it's 2024!!  ok\n\n"),
            (V{"Hello", " world", ",", " it", "'s", " 2024", "!!", " ", " ok", "\n\n"}));
  EXPECT_EQ(split(SplitPattern::kGpt2, "a   b"), (V{"a", "  ", " b"}));
}

TEST(SplitPattern, Llama3AndQwen2Digits) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split(SplitPattern::kLlama3, "x 1234567 IT'S\r\n\n  (a"),
            (V{"x", " ", "123", "456", "7", " IT", "'S", "\r\n\n", " ", " (", "a"}));
  EXPECT_EQ(split(SplitPattern::kQwen2, "12"), (V{"1", "2"}));
}

// NFC against the reference's normalizer (tests/fixtures/tokenizer/nfc.json): the corpus plus cases for
// decomposition, canonical ordering, Hangul, exclusions and singletons.
TEST(UnicodeNfc, MatchesReference) {
  std::ifstream f(std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/tokenizer/nfc.json");
  std::stringstream ss;
  ss << f.rdbuf();
  auto j = nlohmann::json::parse(ss.str());
  ASSERT_GT(j["inputs"].size(), 300u);
  for (size_t i = 0; i < j["inputs"].size(); ++i) {
    std::string in = j["inputs"][i], want = j["nfc"][i];
    EXPECT_EQ(unicode_nfc(in), want) << i << " " << nlohmann::json(in).dump();
  }
}

}  // namespace
}  // namespace punica::tok
