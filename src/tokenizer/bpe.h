// BpeModel: vocabulary + ranked merges, and the merge loop of HF tokenizers' BPE model (priority queue
// over a linked list of symbols: O(n log n) in the word length, so a 1 MB "word" - SentencePiece
// models do not split on spaces - is fine), with byte fallback, unknown-token fusing and ignore_merges.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace punica::tok {

class BpeModel {
 public:
  struct Options {
    bool byte_fallback = false;  // unknown chars -> <0xXX> tokens
    bool fuse_unk = false;       // consecutive unknowns -> one unk
    bool ignore_merges = false;  // a word that is itself in the vocabulary is one token
    int32_t unk_id = -1;         // -1: unknown chars are dropped (HF: no unk_token)
  };

  // Tokens in id order (duplicates: the later id wins the name lookup, as in a Python dict).
  void set_vocab(std::vector<std::string> tokens);
  // Adds a merge of two token names; the rank is the order of calls. Returns false (caller reports the
  // error) when a side or the merged token is not in the vocabulary.
  bool add_merge(std::string_view left, std::string_view right);
  void set_options(const Options& o) { options_ = o; }
  const Options& options() const { return options_; }

  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }
  const std::string& token(int32_t id) const { return tokens_[id]; }
  int32_t find(std::string_view token) const;  // -1 when absent
  size_t merge_count() const { return merges_.size(); }

  // Appends the ids of one pre-tokenized word (already in the vocabulary's spelling).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void encode_uncached(std::string_view word, std::vector<int32_t>& out) const;

  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_ids_[256];
  Options options_;

  // Word cache: natural text repeats words; bounded so a long input cannot grow it without limit.
  static constexpr size_t kCacheMaxEntries = 1 << 16;
  static constexpr size_t kCacheMaxWordBytes = 64;
  struct WordCache {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  std::unique_ptr<WordCache> cache_ = std::make_unique<WordCache>();
};

}  // namespace punica::tok
