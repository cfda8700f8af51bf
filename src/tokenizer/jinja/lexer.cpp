#include "tokenizer/jinja/lexer.h"

#include <algorithm>
#include <cstring>

namespace punica::jinja {

const char* token_type_name(TokenType t) {
  switch (t) {
    case TokenType::kData: return "template data";
    case TokenType::kVarBegin: return "'{{'";
    case TokenType::kVarEnd: return "'}}'";
    case TokenType::kBlockBegin: return "'{%'";
    case TokenType::kBlockEnd: return "'%}'";
    case TokenType::kName: return "name";
    case TokenType::kString: return "string";
    case TokenType::kInteger: return "integer";
    case TokenType::kFloat: return "float";
    case TokenType::kOperator: return "operator";
    case TokenType::kEnd: return "end of template";
  }
  return "?";
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

class Lexer {
 public:
  Lexer(std::string_view source, const LexerOptions& opts) : opts_(opts) {
    // Newlines: \r\n and \r become \n; one trailing newline is dropped (jinja2 keep_trailing_newline=False).
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    for (size_t i = 0; i < src_.size(); ++i) {
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t tag = find_tag_start(pos_);
      std::string text = src_.substr(pos_, tag - pos_);
      size_t text_pos = pos_;
      if (tag == src_.size()) {
        emit_data(text, text_pos);
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign != '-' && sign != '+') sign = '\0';
      apply_left_strip(text, sign, kind != '{', line_starting);
      emit_data(text, text_pos);
      size_t body = tag + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        pos_ = lex_comment(tag, body);
      } else if (kind == '%' && is_raw_begin(body)) {
        pos_ = lex_raw(tag);
      } else {
        pos_ = lex_tag(tag, body, kind == '%');
      }
      line_starting = pos_ > 0 && src_[pos_ - 1] == '\n';
    }
    tokens_.push_back(Token{TokenType::kEnd, "", pos_of(src_.size())});
    return std::move(tokens_);
  }

 private:
  SourcePos pos_of(size_t offset) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
    size_t line_start = it == line_starts_.begin() ? 0 : *(it - 1);
    return SourcePos{static_cast<int>(it - line_starts_.begin()) + 1, static_cast<int>(offset - line_start) + 1};
  }

  [[noreturn]] void fail(const std::string& message, size_t offset) const {
    throw JinjaError(ErrorKind::kSyntax, message, pos_of(offset));
  }

  size_t find_tag_start(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return src_.size();
  }

  void apply_left_strip(std::string& text, char sign, bool is_block_or_comment, bool line_starting) const {
    if (sign == '-') {
      size_t end = text.size();
      while (end > 0 && is_space(text[end - 1])) --end;
      text.resize(end);
      return;
    }
    if (sign == '+' || !opts_.lstrip_blocks || !is_block_or_comment) return;
    size_t nl = text.rfind('\n');
    size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting) return;
    if (l_pos == text.size()) return;
    for (size_t i = l_pos; i < text.size(); ++i) {
      if (!is_space(text[i])) return;
    }
    text.resize(l_pos);
  }

  void emit_data(const std::string& text, size_t offset) {
    if (!text.empty()) tokens_.push_back(Token{TokenType::kData, text, pos_of(offset)});
  }

  // After a closing '%}' or '#}': '-' strips all following whitespace, trim_blocks drops one newline.
  size_t skip_after_close(size_t after, char sign) const {
    if (sign == '-') {
      while (after < src_.size() && is_space(src_[after])) ++after;
    } else if (sign != '+' && opts_.trim_blocks && after < src_.size() && src_[after] == '\n') {
      ++after;
    }
    return after;
  }

  size_t lex_comment(size_t tag, size_t body) {
    size_t end = src_.find("#}", body);
    if (end == std::string::npos) fail("missing end of comment tag '#}' for the comment opened here", tag);
    char sign = end > body && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : '\0';
    return skip_after_close(end + 2, sign);
  }

  bool is_raw_begin(size_t body) const {
    size_t i = body;
    while (i < src_.size() && is_space(src_[i])) ++i;
    if (src_.compare(i, 3, "raw") != 0) return false;
    i += 3;
    return i < src_.size() && (is_space(src_[i]) || src_[i] == '-' || src_[i] == '%');
  }

  size_t lex_raw(size_t tag) {
    size_t close = src_.find("%}", tag);
    if (close == std::string::npos) fail("missing '%}' for the raw tag opened here", tag);
    size_t after = close + 2;
    if (src_[close - 1] == '-') {
      while (after < src_.size() && is_space(src_[after])) ++after;
    }
    size_t search = after;
    while (true) {
      size_t start = src_.find("{%", search);
      if (start == std::string::npos) fail("missing '{% endraw %}' for the raw block opened here", tag);
      size_t i = start + 2;
      char sign = src_[i] == '-' || src_[i] == '+' ? src_[i] : '\0';
      if (sign) ++i;
      while (i < src_.size() && is_space(src_[i])) ++i;
      if (src_.compare(i, 6, "endraw") != 0) {
        search = start + 2;
        continue;
      }
      i += 6;
      while (i < src_.size() && is_space(src_[i])) ++i;
      char close_sign = '\0';
      if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) close_sign = src_[i++];
      if (src_.compare(i, 2, "%}") != 0) fail("malformed '{% endraw %}' tag", start);
      std::string text = src_.substr(after, start - after);
      apply_left_strip(text, sign, true, false);
      emit_data(text, after);
      return skip_after_close(i + 2, close_sign);
    }
  }

  size_t lex_tag(size_t tag, size_t body, bool is_block) {
    tokens_.push_back(Token{is_block ? TokenType::kBlockBegin : TokenType::kVarBegin, "", pos_of(tag)});
    std::vector<char> balance;
    size_t i = body;
    while (true) {
      while (i < src_.size() && is_space(src_[i])) ++i;
      if (i >= src_.size()) {
        fail(std::string("unclosed '") + (is_block ? "{%" : "{{") + "' tag: missing '" + (is_block ? "%}" : "}}") +
                 "' before the end of the template",
             tag);
      }
      if (balance.empty()) {
        const char* close = is_block ? "%}" : "}}";
        char sign = (src_[i] == '-' || src_[i] == '+') ? src_[i] : '\0';
        size_t at = i + (sign ? 1 : 0);
        if (!(sign == '+' && !is_block) && src_.compare(at, 2, close) == 0) {
          tokens_.push_back(Token{is_block ? TokenType::kBlockEnd : TokenType::kVarEnd, "", pos_of(i)});
          size_t after = at + 2;
          if (is_block) return skip_after_close(after, sign);
          if (sign == '-') {
            while (after < src_.size() && is_space(src_[after])) ++after;
          }
          return after;
        }
      }
      i = lex_expression_token(i, balance);
    }
  }

  size_t lex_expression_token(size_t i, std::vector<char>& balance) {
    SourcePos p = pos_of(i);
    char c = src_[i];
    if (is_digit(c) || (c == '.' && i + 1 < src_.size() && is_digit(src_[i + 1]) && false)) {
      size_t j = i;
      auto digits = [&](size_t k) {
        size_t start = k;
        while (k < src_.size() && (is_digit(src_[k]) || (src_[k] == '_' && k > start && k + 1 < src_.size() &&
                                                         is_digit(src_[k + 1]))))
          ++k;
        return k;
      };
      j = digits(j);
      bool is_float = false;
      if (j + 1 < src_.size() && src_[j] == '.' && is_digit(src_[j + 1])) {
        is_float = true;
        j = digits(j + 1);
      }
      if (j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
        size_t k = j + 1;
        if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
        if (k < src_.size() && is_digit(src_[k])) {
          is_float = true;
          j = digits(k);
        }
      }
      std::string text;
      for (size_t k = i; k < j; ++k) {
        if (src_[k] != '_') text += src_[k];
      }
      tokens_.push_back(Token{is_float ? TokenType::kFloat : TokenType::kInteger, text, p});
      return j;
    }
    if (is_name_start(c)) {
      size_t j = i;
      while (j < src_.size() && is_name_char(src_[j])) ++j;
      tokens_.push_back(Token{TokenType::kName, src_.substr(i, j - i), p});
      return j;
    }
    if (c == '\'' || c == '"') return lex_string(i);
    static const char* kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(",
                                 ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};
    for (const char* op : kOps) {
      size_t n = std::strlen(op);
      if (src_.compare(i, n, op) != 0) continue;
      if (n == 1 && (c == '(' || c == '[' || c == '{')) {
        balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      } else if (n == 1 && (c == ')' || c == ']' || c == '}')) {
        if (balance.empty()) fail(std::string("unexpected '") + c + "'", i);
        if (balance.back() != c) fail(std::string("unexpected '") + c + "', expected '" + balance.back() + "'", i);
        balance.pop_back();
      }
      tokens_.push_back(Token{TokenType::kOperator, op, p});
      return i + n;
    }
    fail(std::string("unexpected character '") + c + "'", i);
  }

  size_t lex_string(size_t i) {
    char quote = src_[i];
    std::string out;
    size_t j = i + 1;
    while (true) {
      if (j >= src_.size()) fail("unterminated string literal", i);
      char c = src_[j];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++j;
        continue;
      }
      if (j + 1 >= src_.size()) fail("unterminated string literal", i);
      char e = src_[j + 1];
      j += 2;
      // Python's unicode-escape rules (what jinja2 applies to string literals).
      switch (e) {
        case '\n': break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'v': out += '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (j + n > src_.size()) fail(std::string("truncated \\") + e + " escape in string literal", j - 2);
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            char h = src_[j + k];
            int d = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
            if (d < 0) fail(std::string("truncated \\") + e + " escape in string literal", j - 2);
            cp = cp * 16 + static_cast<uint32_t>(d);
          }
          if (cp > 0x10ffff) fail("illegal Unicode character in string literal", j - 2);
          append_utf8(out, cp);
          j += n;
          break;
        }
        case 'N': fail("\\N{...} escapes are not supported in string literals", j - 2);
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && j < src_.size() && src_[j] >= '0' && src_[j] <= '7'; ++k) cp = cp * 8 + (src_[j++] - '0');
            append_utf8(out, cp);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    tokens_.push_back(Token{TokenType::kString, out, pos_of(i)});
    return j + 1;
  }

  LexerOptions opts_;
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<Token> jinja_tokenize(std::string_view source, const LexerOptions& opts) {
  return Lexer(source, opts).run();
}

}  // namespace punica::jinja
