// TokenizerSpec: everything a loader (tokenizer.json or GGUF) fills in and the tokenizer runs: the BPE
// model, the normalizer / pre-tokenizer / decoder steps of the HF pipeline the models use, added tokens
// and the BOS/EOS rules.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"

namespace punica::tok {

struct NormalizerStep {
  enum Kind { kPrepend, kReplace, kNfc } kind;
  std::string a;  // prepend: the prefix; replace: the pattern (a literal string)
  std::string b;  // replace: the replacement
};

struct PreTokenizerStep {
  enum Kind { kSplit, kByteLevel, kMetaspace, kDigits } kind;
  SplitPattern pattern = SplitPattern::kGpt2;  // kSplit, and kByteLevel with use_regex
  bool use_regex = true;                       // kByteLevel
  bool add_prefix_space = false;               // kByteLevel
  enum Prepend { kAlways, kFirst, kNever } prepend = kAlways;  // kMetaspace
  bool split = true;                           // kMetaspace
  std::string replacement = "\xE2\x96\x81";    // kMetaspace ("▁")
  bool individual_digits = false;              // kDigits
};

// How ids become text. Byte-level: every token's characters map back to bytes, and the bytes are
// decoded as UTF-8 with U+FFFD for invalid parts. SentencePiece: "▁" -> " " in each token, runs of
// <0xXX> tokens are joined into bytes (a run that is not valid UTF-8 becomes one U+FFFD per byte), and
// `strip_leading_spaces` spaces are removed from the start of the whole text.
struct DecoderSpec {
  enum Kind { kByteLevel, kSentencePiece, kNone } kind = kNone;
  bool byte_fallback = false;
  std::string replace_from;  // SentencePiece: "▁"
  std::string replace_to;    // " "
  int strip_leading_spaces = 0;
};

struct TokenizerSpec {
  std::string source;  // the file, for messages
  BpeModel bpe;
  std::vector<std::string> tokens;  // id -> token text as the vocabulary spells it (added tokens included)
  std::vector<uint8_t> special;     // id -> 1 when an added token marked special
  std::vector<AddedToken> added;
  std::vector<NormalizerStep> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;
  DecoderSpec decoder;
  std::vector<int32_t> prefix_ids;  // added by add_special_tokens (post-processor)
  std::vector<int32_t> suffix_ids;
  int32_t bos_id = -1, eos_id = -1, eot_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false, add_eos = false;
  std::vector<int32_t> stop_ids;
  std::string chat_template;
};

}  // namespace punica::tok
