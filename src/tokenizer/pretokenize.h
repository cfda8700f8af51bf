// Pre-tokenizer splits, written by hand as matchers over code points (no regex engine): the patterns
// of GPT-2 (also the ByteLevel pre-tokenizer's default), Llama-3 and Qwen2, each reproducing the
// leftmost-first alternation and backtracking of the original regex exactly.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace punica::tok {

enum class SplitPattern {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|
  // \s+(?!\S)|\s+
  kLlama3,
  // the Llama-3 pattern with \p{N} instead of \p{N}{1,3}
  kQwen2,
};

// The pattern a tokenizer.json `Split` regex (or GGUF `tokenizer.ggml.pre` name) stands for.
std::optional<SplitPattern> split_pattern_from_regex(std::string_view regex);
std::optional<SplitPattern> split_pattern_from_gguf_pre(std::string_view pre);
const char* split_pattern_name(SplitPattern p);

// Splits valid UTF-8 `text` into consecutive pieces (behavior "Isolated": matches and the gaps between
// them both become pieces). Appends byte lengths of the pieces to `out` (they sum to text.size()).
void split_by_pattern(SplitPattern pattern, std::string_view text, std::vector<size_t>& out);

// The `Digits` pre-tokenizer: digits (\p{N}) isolated, one each (individual) or as runs.
void split_digits(std::string_view text, bool individual, std::vector<size_t>& out);

}  // namespace punica::tok
