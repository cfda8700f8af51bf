// Jinja parser: tokens -> Template. Follows jinja2.parser's grammar and precedence (filters and tests bind
// tighter than arithmetic; `a if b else c` is the loosest). Unknown tags, filters and tests are rejected
// here, at parse time, with the line and column, as jinja2 does for filters and tests.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/lexer.h"

namespace punica::jinja {

struct ParserOptions {
  std::function<bool(std::string_view)> is_known_filter;
  std::function<bool(std::string_view)> is_known_test;
  int max_nesting = 200;  // expression and block nesting: deep input cannot overflow the C++ stack
};

// Throws JinjaError(kSyntax or kUnsupported).
Template jinja_parse(const std::vector<Token>& tokens, const ParserOptions& opts);

}  // namespace punica::jinja
