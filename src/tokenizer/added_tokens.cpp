#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace punica::tok {
namespace {

// The code point that ends right before byte `pos` (text is valid UTF-8), and its byte length.
uint32_t code_point_before(std::string_view text, size_t pos, size_t& len) {
  size_t start = pos - 1;
  while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
  len = pos - start;
  auto cps = utf8_to_code_points(text.substr(start, len));
  return cps.empty() ? 0 : cps[0];
}

uint32_t code_point_at(std::string_view text, size_t pos, size_t& len) {
  auto b0 = static_cast<uint8_t>(text[pos]);
  len = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
  len = std::min(len, text.size() - pos);
  auto cps = utf8_to_code_points(text.substr(pos, len));
  return cps.empty() ? 0 : cps[0];
}

bool is_word_char(uint32_t cp) { return cp == '_' || unicode_is_letter(cp) || unicode_is_number(cp); }

}  // namespace

void AddedTokenMatcher::build(const std::vector<AddedToken>& tokens, bool normalized) {
  tokens_.clear();
  nodes_.assign(1, Node{});
  std::fill(std::begin(first_byte_), std::end(first_byte_), false);
  for (const AddedToken& t : tokens) {
    if (t.normalized != normalized || t.content.empty()) continue;
    int32_t node = 0;
    for (char c : t.content) {
      auto b = static_cast<uint8_t>(c);
      int32_t next = child(node, b);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[node].edges.emplace_back(b, next);
        nodes_.push_back(Node{});
      }
      node = next;
    }
    if (nodes_[node].token < 0) {  // the first of duplicate contents wins
      nodes_[node].token = static_cast<int32_t>(tokens_.size());
      tokens_.push_back(t);
    }
    first_byte_[static_cast<uint8_t>(t.content[0])] = true;
  }
}

int32_t AddedTokenMatcher::child(int32_t node, uint8_t b) const {
  for (const auto& [byte, next] : nodes_[node].edges)
    if (byte == b) return next;
  return -1;
}

std::vector<AddedTokenMatcher::Piece> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<Piece> pieces;
  size_t plain_start = 0;  // start of the pending plain-text piece
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    if (!first_byte_[static_cast<uint8_t>(text[i])]) {
      ++i;
      continue;
    }
    // Longest added token starting at i.
    int32_t node = 0, best = -1;
    size_t best_end = 0;
    for (size_t k = i; k < n; ++k) {
      node = child(node, static_cast<uint8_t>(text[k]));
      if (node < 0) break;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = k + 1;
      }
    }
    if (best < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[best];
    size_t begin = i, end = best_end, len = 0;
    if (t.single_word) {
      bool ok = true;
      if (begin > 0 && is_word_char(code_point_before(text, begin, len))) ok = false;
      if (end < n && is_word_char(code_point_at(text, end, len))) ok = false;
      if (!ok) {
        i = best_end;  // HF's matcher moves on past a rejected match
        continue;
      }
    }
    if (t.lstrip)
      while (begin > plain_start && unicode_is_whitespace(code_point_before(text, begin, len))) begin -= len;
    if (t.rstrip)
      while (end < n && unicode_is_whitespace(code_point_at(text, end, len))) end += len;
    if (begin > plain_start) pieces.push_back({plain_start, begin, -1});
    pieces.push_back({begin, end, t.id});
    plain_start = i = end;
  }
  if (plain_start < n) pieces.push_back({plain_start, n, -1});
  return pieces;
}

}  // namespace punica::tok
