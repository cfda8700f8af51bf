// Jinja lexer: template text -> tokens, with jinja2's whitespace rules as transformers configures them
// (trim_blocks=True: the first newline after a block or comment tag is dropped; lstrip_blocks=True: spaces
// and tabs before a block or comment tag on its own line are dropped; '-' strips all whitespace on that
// side, '+' turns lstrip/trim off). Newlines are normalised to '\n' and one trailing newline is dropped
// (keep_trailing_newline=False), exactly like jinja2.lexer.Lexer.tokeniter.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace punica::jinja {

enum class TokenType {
  kData,        // literal template text (already whitespace-controlled)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,
  kString,      // text = decoded value
  kInteger,
  kFloat,
  kOperator,    // text = the operator ("+", "//", "(", ...)
  kEnd,
};

struct Token {
  TokenType type = TokenType::kEnd;
  std::string text;
  SourcePos pos;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Throws JinjaError(kSyntax) with the position of the offending text.
std::vector<Token> jinja_tokenize(std::string_view source, const LexerOptions& opts = {});

const char* token_type_name(TokenType t);

}  // namespace punica::jinja
