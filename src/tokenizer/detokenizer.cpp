#include "tokenizer/detokenizer.h"

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace punica {

Detokenizer::Detokenizer(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {
  strip_left_ = tokenizer.spec().decoder.strip_leading_spaces;
}

std::string Detokenizer::emit(std::string text) {
  while (strip_left_ > 0 && !text.empty()) {
    if (text[0] == ' ') {
      text.erase(0, 1);
      --strip_left_;
    } else {
      strip_left_ = 0;
    }
  }
  return text;
}

std::string Detokenizer::flush_byte_run() {
  if (pending_.empty()) return "";
  std::string text;
  if (tok::utf8_is_valid(pending_)) {
    text = std::move(pending_);
  } else {
    for (size_t i = 0; i < pending_.size(); ++i) tok::utf8_append(text, tok::kReplacementChar);
  }
  pending_.clear();
  return text;
}

std::string Detokenizer::push(int32_t id) {
  const tok::TokenizerSpec& spec = tokenizer_.spec();
  if (id < 0 || id >= tokenizer_.vocab_size()) return "";
  if (skip_special_ && spec.special[id]) return "";
  const std::string& token = spec.tokens[id];
  switch (spec.decoder.kind) {
    case tok::DecoderSpec::kByteLevel: {
      for (uint32_t cp : tok::utf8_to_code_points(token)) {
        int b = tok::byte_level_byte(cp);
        if (b >= 0) pending_ += static_cast<char>(b);
        else tok::utf8_append(pending_, cp);
      }
      size_t complete = tok::utf8_complete_prefix(pending_);
      std::string text = tok::utf8_make_valid(std::string_view(pending_).substr(0, complete));
      pending_.erase(0, complete);
      return emit(std::move(text));
    }
    case tok::DecoderSpec::kSentencePiece: {
      // <0xXX>
      if (spec.decoder.byte_fallback && token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
        auto hex = [](char c) {
          return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        };
        int hi = hex(token[3]), lo = hex(token[4]);
        if (hi >= 0 && lo >= 0) {
          pending_ += static_cast<char>(hi * 16 + lo);
          return "";
        }
      }
      std::string text = flush_byte_run();
      std::string piece = token;
      if (!spec.decoder.replace_from.empty()) {
        size_t pos = 0;
        while ((pos = piece.find(spec.decoder.replace_from, pos)) != std::string::npos) {
          piece.replace(pos, spec.decoder.replace_from.size(), spec.decoder.replace_to);
          pos += spec.decoder.replace_to.size();
        }
      }
      return emit(text + piece);
    }
    case tok::DecoderSpec::kNone:  // HF without a decoder joins the tokens with spaces
      return emit(any_token_++ ? " " + token : token);
  }
  return "";
}

std::string Detokenizer::finish() {
  if (tokenizer_.spec().decoder.kind == tok::DecoderSpec::kSentencePiece) return emit(flush_byte_run());
  std::string text = tok::utf8_make_valid(pending_);
  pending_.clear();
  return emit(std::move(text));
}

}  // namespace punica
