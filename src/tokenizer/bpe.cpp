#include "tokenizer/bpe.h"

#include <cstdio>
#include <queue>

namespace punica::tok {

void BpeModel::set_vocab(std::vector<std::string> tokens) {
  tokens_ = std::move(tokens);
  ids_.clear();
  ids_.reserve(tokens_.size());
  for (size_t i = 0; i < tokens_.size(); ++i) ids_[tokens_[i]] = static_cast<int32_t>(i);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[b] = find(name);
  }
  merges_.clear();
  cache_->map.clear();
}

int32_t BpeModel::find(std::string_view token) const {
  auto it = ids_.find(std::string(token));
  return it == ids_.end() ? -1 : it->second;
}

bool BpeModel::add_merge(std::string_view left, std::string_view right) {
  int32_t a = find(left), b = find(right);
  if (a < 0 || b < 0) return false;
  std::string merged;
  merged.reserve(left.size() + right.size());
  merged.append(left).append(right);
  int32_t r = find(merged);
  if (r < 0) return false;
  // The first (best-ranked) occurrence of a pair wins, as in HF's merges map built in order.
  merges_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(merges_.size()), r});
  return true;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() > kCacheMaxWordBytes) {
    encode_uncached(word, out);
    return;
  }
  std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_->mutex);
    auto it = cache_->map.find(key);
    if (it != cache_->map.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t before = out.size();
  encode_uncached(word, out);
  std::lock_guard<std::mutex> lock(cache_->mutex);
  if (cache_->map.size() >= kCacheMaxEntries) cache_->map.clear();
  cache_->map.emplace(std::move(key), std::vector<int32_t>(out.begin() + before, out.end()));
}

void BpeModel::encode_uncached(std::string_view word, std::vector<int32_t>& out) const {
  if (options_.ignore_merges) {
    int32_t id = find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  // Initial symbols: one per code point (its UTF-8 bytes looked up), else byte fallback, else unk.
  std::vector<int32_t> sym;
  sym.reserve(word.size());
  bool last_was_unk = false;
  size_t i = 0;
  while (i < word.size()) {
    auto b0 = static_cast<uint8_t>(word[i]);
    size_t len = b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4;
    if (i + len > word.size()) len = word.size() - i;
    std::string_view ch = word.substr(i, len);
    int32_t id = find(ch);
    if (id >= 0) {
      sym.push_back(id);
      last_was_unk = false;
    } else {
      bool all_bytes = options_.byte_fallback;
      if (all_bytes)
        for (char c : ch) all_bytes = all_bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all_bytes) {
        for (char c : ch) sym.push_back(byte_ids_[static_cast<uint8_t>(c)]);
        last_was_unk = false;
      } else if (options_.unk_id >= 0) {
        if (!(options_.fuse_unk && last_was_unk)) sym.push_back(options_.unk_id);
        last_was_unk = true;
      }
    }
    i += len;
  }
  const size_t n = sym.size();
  if (n <= 1) {
    out.insert(out.end(), sym.begin(), sym.end());
    return;
  }
  // Linked list over symbol positions; a merged-away symbol gets id -1.
  std::vector<int32_t> prev(n), next(n);
  for (size_t k = 0; k < n; ++k) {
    prev[k] = static_cast<int32_t>(k) - 1;
    next[k] = k + 1 < n ? static_cast<int32_t>(k + 1) : -1;
  }
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push_pair = [&](int32_t pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(pair_key(sym[pos], sym[next[pos]]));
    if (it != merges_.end()) heap.push({it->second.rank, pos, it->second.result});
  };
  for (size_t k = 0; k + 1 < n; ++k) push_pair(static_cast<int32_t>(k));
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    int32_t p = c.pos;
    if (sym[p] < 0 || next[p] < 0) continue;
    auto it = merges_.find(pair_key(sym[p], sym[next[p]]));
    if (it == merges_.end() || it->second.result != c.result) continue;  // stale entry
    int32_t q = next[p];
    sym[p] = c.result;
    sym[q] = -1;
    next[p] = next[q];
    if (next[q] >= 0) prev[next[q]] = p;
    push_pair(prev[p]);
    push_pair(p);
  }
  for (int32_t k = 0; k >= 0; k = next[k]) out.push_back(sym[k]);
}

}  // namespace punica::tok
