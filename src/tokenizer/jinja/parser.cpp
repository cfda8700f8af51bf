#include "tokenizer/jinja/parser.h"

#include <cstdlib>
#include <initializer_list>

namespace punica::jinja {

namespace {

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const ParserOptions& opts) : tokens_(tokens), opts_(opts) {}

  Template parse() {
    Template t;
    std::string found = subparse(t.body, {}, "", {});
    (void)found;
    return t;
  }

 private:
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > p.opts_.max_nesting) {
        throw JinjaError(ErrorKind::kLimit,
                         "template nests deeper than " + std::to_string(p.opts_.max_nesting) + " levels",
                         p.cur().pos);
      }
    }
    ~DepthGuard() { --p.depth_; }
  };

  const Token& cur() const { return tokens_[pos_]; }
  const Token& peek(size_t n = 1) const { return tokens_[std::min(pos_ + n, tokens_.size() - 1)]; }
  void advance() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool is_op(const char* op) const { return cur().type == TokenType::kOperator && cur().text == op; }
  bool is_name(const char* name) const { return cur().type == TokenType::kName && cur().text == name; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    advance();
    return true;
  }
  bool skip_name(const char* name) {
    if (!is_name(name)) return false;
    advance();
    return true;
  }

  std::string describe(const Token& t) const {
    switch (t.type) {
      case TokenType::kOperator:
      case TokenType::kName: return "'" + t.text + "'";
      case TokenType::kString: return "string";
      case TokenType::kInteger:
      case TokenType::kFloat: return "number " + t.text;
      default: return token_type_name(t.type);
    }
  }

  [[noreturn]] void fail(const std::string& message, SourcePos pos) const {
    throw JinjaError(ErrorKind::kSyntax, message, pos);
  }
  [[noreturn]] void fail_here(const std::string& message) const { fail(message + ", found " + describe(cur()), cur().pos); }

  void expect_op(const char* op) {
    if (!skip_op(op)) fail_here(std::string("expected '") + op + "'");
  }
  void expect_block_end() {
    if (cur().type != TokenType::kBlockEnd) fail_here("expected end of statement '%}'");
    advance();
  }
  std::string expect_name(const char* what) {
    if (cur().type != TokenType::kName) fail_here(std::string("expected ") + what);
    std::string n = cur().text;
    advance();
    return n;
  }

  // Parses statements until a block tag whose name is in end_tags; returns that name, leaving the stream
  // just after it. At the top level (no end tags) parses to the end of the template.
  std::string subparse(Body& body, std::initializer_list<const char*> end_tags, const std::string& opener,
                       SourcePos opener_pos) {
    DepthGuard guard(*this);
    while (true) {
      const Token& t = cur();
      switch (t.type) {
        case TokenType::kData: {
          auto s = std::make_unique<Stmt>();
          s->kind = Stmt::Kind::kText;
          s->pos = t.pos;
          s->text = t.text;
          body.push_back(std::move(s));
          advance();
          break;
        }
        case TokenType::kVarBegin: {
          advance();
          auto s = std::make_unique<Stmt>();
          s->kind = Stmt::Kind::kOutput;
          s->pos = t.pos;
          s->expr = parse_tuple(true, {});
          if (cur().type != TokenType::kVarEnd) fail_here("expected end of print statement '}}'");
          advance();
          body.push_back(std::move(s));
          break;
        }
        case TokenType::kBlockBegin: {
          block_pos_ = t.pos;
          advance();
          if (cur().type != TokenType::kName) fail_here("expected a tag name after '{%'");
          for (const char* end : end_tags) {
            if (cur().text == end) {
              std::string name = cur().text;
              advance();
              return name;
            }
          }
          body.push_back(parse_statement());
          break;
        }
        case TokenType::kEnd:
          if (end_tags.size() != 0) {
            std::string expected;
            for (const char* e : end_tags) expected += std::string(expected.empty() ? "" : " or ") + "'" + e + "'";
            fail("unexpected end of template: the '" + opener + "' block opened at line " +
                     std::to_string(opener_pos.line) + " column " + std::to_string(opener_pos.column) +
                     " is never closed (expected " + expected + ")",
                 t.pos);
          }
          return "";
        default: fail_here("unexpected token");
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    const std::string tag = t.text;
    SourcePos pos = block_pos_;  // errors about a tag point at its '{%' 
    advance();
    auto s = std::make_unique<Stmt>();
    s->pos = pos;
    if (tag == "if") return parse_if(std::move(s));
    if (tag == "for") return parse_for(std::move(s));
    if (tag == "set") return parse_set(std::move(s));
    if (tag == "macro") return parse_macro(std::move(s));
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("'" + tag + "' outside of a for loop", pos);
      s->kind = tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      expect_block_end();
      return s;
    }
    if (tag == "filter") {
      s->kind = Stmt::Kind::kFilterBlock;
      s->expr = parse_filter_chain(nullptr);
      expect_block_end();
      subparse(s->body, {"endfilter"}, "filter", pos);
      expect_block_end();
      return s;
    }
    if (tag == "generation") {  // transformers' AssistantTracker extension: renders its body in place
      s->kind = Stmt::Kind::kScope;
      expect_block_end();
      subparse(s->body, {"endgeneration"}, "generation", pos);
      expect_block_end();
      return s;
    }
    static const char* kUnsupported[] = {"call", "include", "import", "from", "extends", "block", "with",
                                         "autoescape", "do", "trans"};
    for (const char* u : kUnsupported) {
      if (tag == u) throw JinjaError(ErrorKind::kUnsupported, "unsupported tag '" + tag + "'", pos);
    }
    if (tag.rfind("end", 0) == 0 || tag == "else" || tag == "elif") {
      fail("unexpected tag '" + tag + "' (no open block expects it here)", pos);
    }
    fail("unknown tag '" + tag + "'", pos);
  }

  StmtPtr parse_if(StmtPtr s) {
    s->kind = Stmt::Kind::kIf;
    SourcePos pos = s->pos;
    while (true) {
      ExprPtr cond = parse_tuple(false, {});
      expect_block_end();
      Body body;
      std::string end = subparse(body, {"elif", "else", "endif"}, "if", pos);
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (end == "elif") continue;
      if (end == "else") {
        expect_block_end();
        Body else_body;
        subparse(else_body, {"endif"}, "if", pos);
        s->branches.emplace_back(nullptr, std::move(else_body));
      }
      expect_block_end();
      return s;
    }
  }

  void parse_assign_names(std::vector<std::string>& out, const char* stop_name) {
    bool parens = skip_op("(");
    while (true) {
      out.push_back(expect_name("a variable name"));
      if (!skip_op(",")) break;
      if (parens ? is_op(")") : (stop_name && is_name(stop_name))) break;
    }
    if (parens) expect_op(")");
  }

  StmtPtr parse_for(StmtPtr s) {
    s->kind = Stmt::Kind::kFor;
    parse_assign_names(s->targets, "in");
    if (!skip_name("in")) fail_here("expected 'in' in the for loop");
    s->expr = parse_tuple(false, {"recursive", "if"});
    if (skip_name("if")) s->filter = parse_expression(true);
    if (is_name("recursive")) throw JinjaError(ErrorKind::kUnsupported, "unsupported recursive for loop", cur().pos);
    expect_block_end();
    ++loop_depth_;
    std::string end = subparse(s->body, {"endfor", "else"}, "for", s->pos);
    --loop_depth_;
    if (end == "else") {
      expect_block_end();
      subparse(s->else_body, {"endfor"}, "for", s->pos);
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_set(StmtPtr s) {
    s->kind = Stmt::Kind::kSet;
    if (cur().type == TokenType::kName && peek().type == TokenType::kOperator && peek().text == ".") {
      s->target_object = cur().text;
      advance();
      advance();
      s->targets.push_back(expect_name("an attribute name after '.'"));
    } else {
      parse_assign_names(s->targets, nullptr);
    }
    if (skip_op("=")) {
      s->expr = parse_tuple(true, {});
      expect_block_end();
      return s;
    }
    if (!s->target_object.empty() || s->targets.size() != 1) fail_here("expected '=' in the set statement");
    s->kind = Stmt::Kind::kSetBlock;
    if (is_op("|")) s->filter = parse_filter_chain(nullptr);
    expect_block_end();
    subparse(s->body, {"endset"}, "set", s->pos);
    expect_block_end();
    return s;
  }

  StmtPtr parse_macro(StmtPtr s) {
    s->kind = Stmt::Kind::kMacro;
    s->name = expect_name("a macro name");
    expect_op("(");
    while (!is_op(")")) {
      if (!s->params.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string param = expect_name("a parameter name");
      ExprPtr def;
      if (skip_op("=")) def = parse_expression(true);
      s->params.emplace_back(param, std::move(def));
    }
    expect_op(")");
    expect_block_end();
    int saved_loops = loop_depth_;
    loop_depth_ = 0;
    subparse(s->body, {"endmacro"}, "macro", s->pos);
    loop_depth_ = saved_loops;
    if (cur().type == TokenType::kName) advance();  // {% endmacro name %}
    expect_block_end();
    return s;
  }

  // ---- expressions ----

  ExprPtr make(Expr::Kind kind, SourcePos pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }

  bool is_tuple_end(std::initializer_list<const char*> extra_end) const {
    if (cur().type == TokenType::kVarEnd || cur().type == TokenType::kBlockEnd || cur().type == TokenType::kEnd) return true;
    if (is_op(")")) return true;
    for (const char* e : extra_end) {
      if (is_name(e)) return true;
    }
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<const char*> extra_end, bool explicit_parens = false) {
    SourcePos pos = cur().pos;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail_here("expected an expression");
    }
    auto e = make(Expr::Kind::kTuple, pos);
    e->args = std::move(items);
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    if (!with_condexpr) return parse_or();
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      SourcePos pos = cur().pos;
      advance();
      auto cond = make(Expr::Kind::kCondExpr, pos);
      cond->args.push_back(parse_or());
      cond->args.push_back(std::move(expr));
      if (skip_name("else")) {
        cond->args.push_back(parse_expression(true));
      } else {
        cond->args.push_back(nullptr);
      }
      expr = std::move(cond);
    }
    return expr;
  }

  ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r, SourcePos pos) {
    auto e = make(Expr::Kind::kBinary, pos);
    e->name = op;
    e->args.push_back(std::move(l));
    e->args.push_back(std::move(r));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      SourcePos pos = cur().pos;
      advance();
      left = binary("or", std::move(left), parse_and(), pos);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      SourcePos pos = cur().pos;
      advance();
      left = binary("and", std::move(left), parse_not(), pos);
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      auto e = make(Expr::Kind::kUnary, cur().pos);
      advance();
      e->name = "not";
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    SourcePos pos = cur().pos;
    ExprPtr expr = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().type == TokenType::kOperator &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == ">" ||
           cur().text == "<=" || cur().text == ">=")) {
        op = cur().text;
        advance();
      } else if (is_name("in")) {
        op = "in";
        advance();
      } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
        op = "notin";
        advance();
        advance();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare, pos);
        cmp->args.push_back(std::move(expr));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(expr);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().text;
      SourcePos pos = cur().pos;
      advance();
      left = binary(op, std::move(left), parse_concat(), pos);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      SourcePos pos = cur().pos;
      advance();
      left = binary("~", std::move(left), parse_math2(), pos);
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().text;
      SourcePos pos = cur().pos;
      advance();
      left = binary(op, std::move(left), parse_pow(), pos);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      SourcePos pos = cur().pos;
      advance();
      left = binary("**", std::move(left), parse_unary(true), pos);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      node = make(Expr::Kind::kUnary, cur().pos);
      node->name = cur().text;
      advance();
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    SourcePos pos = t.pos;
    if (t.type == TokenType::kName) {
      auto e = make(Expr::Kind::kConst, pos);
      if (t.text == "true" || t.text == "True") {
        e->constant = Value::boolean(true);
      } else if (t.text == "false" || t.text == "False") {
        e->constant = Value::boolean(false);
      } else if (t.text == "none" || t.text == "None") {
        e->constant = Value::none();
      } else {
        e->kind = Expr::Kind::kName;
        e->name = t.text;
      }
      advance();
      return e;
    }
    if (t.type == TokenType::kString) {
      std::string s;
      while (cur().type == TokenType::kString) {  // adjacent literals concatenate
        s += cur().text;
        advance();
      }
      auto e = make(Expr::Kind::kConst, pos);
      e->constant = Value::string(std::move(s));
      return e;
    }
    if (t.type == TokenType::kInteger) {
      auto e = make(Expr::Kind::kConst, pos);
      errno = 0;
      long long v = std::strtoll(t.text.c_str(), nullptr, 10);
      if (errno == ERANGE) fail("integer literal out of range", pos);
      e->constant = Value::integer(v);
      advance();
      return e;
    }
    if (t.type == TokenType::kFloat) {
      auto e = make(Expr::Kind::kConst, pos);
      e->constant = Value::floating(std::strtod(t.text.c_str(), nullptr));
      advance();
      return e;
    }
    if (is_op("(")) {
      advance();
      ExprPtr e = parse_tuple(true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      advance();
      auto e = make(Expr::Kind::kList, pos);
      while (!is_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      expect_op("]");
      return e;
    }
    if (is_op("{")) {
      advance();
      auto e = make(Expr::Kind::kDict, pos);
      while (!is_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      expect_op("}");
      return e;
    }
    fail_here("expected an expression");
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter_chain(std::move(node));
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    SourcePos pos = cur().pos;
    if (skip_op(".")) {
      if (cur().type == TokenType::kName) {
        auto e = make(Expr::Kind::kGetAttr, pos);
        e->name = cur().text;
        advance();
        e->args.push_back(std::move(node));
        return e;
      }
      if (cur().type == TokenType::kInteger) {
        auto e = make(Expr::Kind::kGetItem, pos);
        e->args.push_back(std::move(node));
        auto idx = make(Expr::Kind::kConst, cur().pos);
        idx->constant = Value::integer(std::strtoll(cur().text.c_str(), nullptr, 10));
        advance();
        e->args.push_back(std::move(idx));
        return e;
      }
      fail_here("expected an attribute name after '.'");
    }
    expect_op("[");
    // [a], [a:b], [a:b:c], [:], [::-1]
    ExprPtr parts[3];
    bool is_slice = false;
    if (!is_op(":")) parts[0] = parse_expression(true);
    if (skip_op(":")) {
      is_slice = true;
      if (!is_op("]") && !is_op(":")) parts[1] = parse_expression(true);
      if (skip_op(":")) {
        if (!is_op("]")) parts[2] = parse_expression(true);
      }
    }
    if (is_op(",")) throw JinjaError(ErrorKind::kUnsupported, "unsupported tuple subscript", cur().pos);
    expect_op("]");
    if (!is_slice && !parts[0]) fail("empty subscript '[]'", pos);
    auto e = make(is_slice ? Expr::Kind::kSlice : Expr::Kind::kGetItem, pos);
    e->args.push_back(std::move(node));
    if (is_slice) {
      for (auto& p : parts) e->args.push_back(std::move(p));
    } else {
      e->args.push_back(std::move(parts[0]));
    }
    return e;
  }

  // Call arguments into e->args (after any already there) and e->kwargs.
  void parse_call_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) {
        throw JinjaError(ErrorKind::kUnsupported, "unsupported *args / **kwargs in a call", cur().pos);
      }
      if (cur().type == TokenType::kName && peek().type == TokenType::kOperator && peek().text == "=") {
        std::string key = cur().text;
        advance();
        advance();
        e.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail_here("positional argument after a keyword argument");
        e.args.push_back(parse_expression(true));
      }
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(Expr::Kind::kCall, cur().pos);
    e->args.push_back(std::move(node));
    parse_call_args(*e);
    return e;
  }

  ExprPtr parse_filter_chain(ExprPtr node) {
    bool first = true;
    while (first || is_op("|")) {
      if (!first || is_op("|")) expect_op("|");
      first = false;
      SourcePos pos = cur().pos;
      std::string name = expect_name("a filter name after '|'");
      while (is_op(".")) {  // dotted filter names
        advance();
        name += '.';
        name += expect_name("a filter name");
      }
      if (!opts_.is_known_filter || !opts_.is_known_filter(name)) {
        throw JinjaError(ErrorKind::kUnsupported, "unknown filter '" + name + "'", pos);
      }
      auto e = make(Expr::Kind::kFilter, pos);
      e->name = name;
      e->args.push_back(std::move(node));
      if (is_op("(")) parse_call_args(*e);
      node = std::move(e);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    SourcePos pos = cur().pos;
    advance();  // is
    bool negated = skip_name("not");
    std::string name;
    if (cur().type == TokenType::kName) {
      name = cur().text;
      advance();
    } else if (cur().type == TokenType::kOperator && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                                      cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
      name = cur().text;
      advance();
    } else {
      fail_here("expected a test name after 'is'");
    }
    if (!opts_.is_known_test || !opts_.is_known_test(name)) {
      throw JinjaError(ErrorKind::kUnsupported, "unknown test '" + name + "'", pos);
    }
    auto e = make(Expr::Kind::kTest, pos);
    e->name = name;
    e->negated = negated;
    e->args.push_back(std::move(node));
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().type == TokenType::kName || cur().type == TokenType::kString ||
                cur().type == TokenType::kInteger || cur().type == TokenType::kFloat || is_op("(") || is_op("[") ||
                is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail_here("cannot chain multiple tests with 'is'");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }

  const std::vector<Token>& tokens_;
  const ParserOptions& opts_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  SourcePos block_pos_;
};

}  // namespace

Template jinja_parse(const std::vector<Token>& tokens, const ParserOptions& opts) {
  return Parser(tokens, opts).parse();
}

}  // namespace punica::jinja
