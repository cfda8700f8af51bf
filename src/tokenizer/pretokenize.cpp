#include "tokenizer/pretokenize.h"

#include "tokenizer/unicode.h"

namespace punica::tok {
namespace {

constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Cursor {
  const std::vector<uint32_t>& cp;
  const std::vector<uint8_t>& cls;
  size_t n;
  bool is_l(size_t i) const { return i < n && (cls[i] & kClassLetter); }
  bool is_n(size_t i) const { return i < n && (cls[i] & kClassNumber); }
  bool is_s(size_t i) const { return i < n && (cls[i] & kClassWhitespace); }
  bool is_other(size_t i) const { return i < n && cls[i] == kClassOther; }
  bool is_crlf(size_t i) const { return i < n && (cp[i] == '\r' || cp[i] == '\n'); }
};

uint32_t fold_case(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c == 0x017F) return 's';  // LATIN SMALL LETTER LONG S folds to 's'
  if (c == 0x212A) return 'k';  // KELVIN SIGN (not in the contractions, kept for completeness)
  return c;
}

// 's|'t|'re|'ve|'m|'ll|'d (optionally case-insensitive): length matched or 0.
size_t match_contraction(const Cursor& c, size_t i, bool ignore_case) {
  if (c.cp[i] != '\'' || i + 1 >= c.n) return 0;
  auto at = [&](size_t k) { return ignore_case ? fold_case(c.cp[k]) : c.cp[k]; };
  uint32_t a = at(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 < c.n) {
    uint32_t b = at(i + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  return 0;
}

// \s+(?!\S) then \s+, starting at a whitespace code point i.
size_t match_whitespace_tail(const Cursor& c, size_t i) {
  size_t j = i;
  while (c.is_s(j)) ++j;
  if (j == c.n || j - i == 1) return j - i;
  return j - i - 1;  // leave the last space to prefix the next word
}

size_t match_gpt2(const Cursor& c, size_t i) {
  if (size_t m = match_contraction(c, i, false)) return m;
  size_t start = i;
  if (c.cp[i] == ' ' && i + 1 < c.n && !c.is_s(i + 1)) ++i;  // " ?" before a letter, number or other
  size_t j = i;
  if (c.is_l(i)) {
    while (c.is_l(j)) ++j;
    return j - start;
  }
  if (c.is_n(i)) {
    while (c.is_n(j)) ++j;
    return j - start;
  }
  if (c.is_other(i)) {
    while (c.is_other(j)) ++j;
    return j - start;
  }
  return match_whitespace_tail(c, start);
}

size_t match_llama3(const Cursor& c, size_t i, size_t max_digits) {
  if (size_t m = match_contraction(c, i, true)) return m;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.is_l(i)) {
    size_t j = i;
    while (c.is_l(j)) ++j;
    return j - i;
  }
  if (!c.is_crlf(i) && !c.is_n(i) && c.is_l(i + 1)) {
    size_t j = i + 1;
    while (c.is_l(j)) ++j;
    return j - i;
  }
  // \p{N}{1,max}
  if (c.is_n(i)) {
    size_t j = i;
    while (c.is_n(j) && j - i < max_digits) ++j;
    return j - i;
  }
  // " ?[^\s\p{L}\p{N}]+[\r\n]*"
  {
    size_t k = i;
    if (c.cp[k] == ' ' && c.is_other(k + 1)) ++k;
    if (c.is_other(k)) {
      while (c.is_other(k)) ++k;
      while (c.is_crlf(k)) ++k;
      return k - i;
    }
  }
  // \s*[\r\n]+ : up to the last \r or \n of the whitespace run.
  size_t j = i;
  size_t last_newline = c.n;
  while (c.is_s(j)) {
    if (c.is_crlf(j)) last_newline = j;
    ++j;
  }
  if (last_newline != c.n) return last_newline + 1 - i;
  return match_whitespace_tail(c, i);
}

}  // namespace

std::optional<SplitPattern> split_pattern_from_regex(std::string_view regex) {
  if (regex == kGpt2Regex) return SplitPattern::kGpt2;
  if (regex == kLlama3Regex) return SplitPattern::kLlama3;
  if (regex == kQwen2Regex) return SplitPattern::kQwen2;
  return std::nullopt;
}

std::optional<SplitPattern> split_pattern_from_gguf_pre(std::string_view pre) {
  // The names transformers' GGUF conversion maps to these patterns; unknown names use GPT-2's.
  for (std::string_view p : {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                             "midm-2.0", "lfm2", "dbrx", "smaug-bpe"})
    if (pre == p) return SplitPattern::kLlama3;
  for (std::string_view p : {"qwen2", "deepseek-r1-qwen", "kormo", "megrez"})
    if (pre == p) return SplitPattern::kQwen2;
  for (std::string_view p : {"tekken", "qwen35", "gpt-4o", "llama4", "kanana2", "minimax-m2"})
    if (pre == p) return std::nullopt;  // patterns this build does not implement
  return SplitPattern::kGpt2;
}

const char* split_pattern_name(SplitPattern p) {
  switch (p) {
    case SplitPattern::kGpt2: return "gpt2";
    case SplitPattern::kLlama3: return "llama3";
    case SplitPattern::kQwen2: return "qwen2";
  }
  return "?";
}

void split_by_pattern(SplitPattern pattern, std::string_view text, std::vector<size_t>& out) {
  std::vector<uint32_t> cps = utf8_to_code_points(text);
  std::vector<uint8_t> cls(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) cls[i] = unicode_class(cps[i]);
  Cursor c{cps, cls, cps.size()};
  size_t i = 0;
  while (i < c.n) {
    size_t m = pattern == SplitPattern::kGpt2     ? match_gpt2(c, i)
               : pattern == SplitPattern::kLlama3 ? match_llama3(c, i, 3)
                                                  : match_llama3(c, i, 1);
    if (m == 0) m = 1;  // every code point is matched by some alternative; guard anyway
    size_t bytes = 0;
    for (size_t k = i; k < i + m; ++k) {
      uint32_t v = cps[k];
      bytes += v < 0x80 ? 1 : v < 0x800 ? 2 : v < 0x10000 ? 3 : 4;
    }
    out.push_back(bytes);
    i += m;
  }
}

void split_digits(std::string_view text, bool individual, std::vector<size_t>& out) {
  std::vector<uint32_t> cps = utf8_to_code_points(text);
  size_t run = 0;
  int run_kind = -1;  // 1 digit run, 0 other run
  auto flush = [&] {
    if (run) out.push_back(run);
    run = 0;
  };
  for (uint32_t v : cps) {
    size_t len = v < 0x80 ? 1 : v < 0x800 ? 2 : v < 0x10000 ? 3 : 4;
    int kind = unicode_is_number(v) ? 1 : 0;
    if (kind != run_kind || (kind == 1 && individual)) flush();
    run_kind = kind;
    run += len;
  }
  flush();
}

}  // namespace punica::tok
