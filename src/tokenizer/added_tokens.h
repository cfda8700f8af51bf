// Added tokens (special and not): found in the text before BPE, leftmost-longest like HF's
// Aho-Corasick matcher, with the lstrip / rstrip / single_word flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace punica::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

class AddedTokenMatcher {
 public:
  // Only tokens whose `normalized` flag equals `normalized` are matched by this matcher.
  void build(const std::vector<AddedToken>& tokens, bool normalized);
  bool empty() const { return tokens_.empty(); }

  struct Piece {
    size_t begin, end;  // byte range in the text
    int32_t id;         // -1: plain text to be tokenized; else the added token's id
  };
  // Splits `text` into plain-text pieces and matched added tokens (with their stripped whitespace).
  std::vector<Piece> split(std::string_view text) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> edges;  // byte -> node
    int32_t token = -1;                              // index into tokens_
  };
  int32_t child(int32_t node, uint8_t b) const;
  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  bool first_byte_[256] = {};
};

}  // namespace punica::tok
