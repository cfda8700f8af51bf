// Detokenizer: ids in, text out, one token at a time, for streaming. The concatenation of everything
// push() and finish() return equals Tokenizer::decode of the same ids (decode is built on it).
//
// Never returns a broken UTF-8 sequence: bytes of a character split across tokens (byte-level BPE, or
// SentencePiece <0xXX> byte-fallback tokens) are held back until the character is complete. For
// SentencePiece byte fallback a whole run of byte tokens is held until the next non-byte token (or
// finish()), because HF turns a run that is not valid UTF-8 into one U+FFFD per byte, which can change
// text already complete earlier in the run.
#pragma once

#include <cstdint>
#include <string>

namespace punica {

class Tokenizer;

class Detokenizer {
 public:
  Detokenizer(const Tokenizer& tokenizer, bool skip_special_tokens);
  // The text that this token completes (often the token's own text; "" while bytes are held back).
  std::string push(int32_t id);
  // Flushes held bytes (an incomplete character becomes U+FFFD, as in one-shot decode).
  std::string finish();
  // Bytes held back right now.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  std::string emit(std::string text);
  std::string flush_byte_run();

  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;   // byte-level: undecoded bytes; SentencePiece: the current run of fallback bytes
  int strip_left_ = 0;    // leading spaces still to strip from the whole text
  size_t any_token_ = 0;  // tokens decoded so far (no decoder: they are joined with spaces)
};

}  // namespace punica
