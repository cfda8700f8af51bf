// Paged KV cache: per layer, one pool of pages for K and one for V, each page holding page_size token rows
// of kv_dim floats (layout pool[page][slot][kv_head][head_dim], what ops::AttentionParams reads). Each
// sequence owns a page table (list of page ids, in position order). Pages come from one free list shared by
// all layers: page i of a sequence is page i in every layer's pool.
//
// The cache only manages memory; which positions hold valid tokens is the caller's state (the engine knows
// each request's length). Host memory now; a CUDA version keeps the same page tables and swaps the pools.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "punica/status.h"

namespace punica::kv {

struct KvCacheConfig {
  int64_t num_layers = 0;
  int64_t kv_dim = 0;       // num_kv_heads * head_dim
  int64_t page_size = 16;   // tokens per page
  int64_t num_pages = 0;
};

// Free list of page ids [0, num_pages).
class PagePool {
 public:
  explicit PagePool(int64_t num_pages = 0);
  int64_t num_pages() const { return num_pages_; }
  int64_t num_free() const { return static_cast<int64_t>(free_.size()); }
  bool allocate(int64_t n, std::vector<int32_t>* out);   // all n or none
  void release(const std::vector<int32_t>& pages);

 private:
  int64_t num_pages_ = 0;
  std::vector<int32_t> free_;   // stack: the lowest ids are handed out first
};

class KvCache {
 public:
  // Refuses configs whose pools would exceed max_bytes (ResourceExhausted) or have non-positive sizes.
  static Expected<KvCache> create(const KvCacheConfig& config, int64_t max_bytes = int64_t{8} << 30);
  // Pages needed for `tokens` tokens of one layer at this config, and the bytes of all pools.
  static int64_t pages_for_tokens(int64_t tokens, int64_t page_size) { return (tokens + page_size - 1) / page_size; }

  const KvCacheConfig& config() const { return config_; }
  float* k_pool(int64_t layer) { return k_[static_cast<size_t>(layer)].data<float>(); }
  float* v_pool(int64_t layer) { return v_[static_cast<size_t>(layer)].data<float>(); }
  int64_t pool_slots() const { return config_.num_pages * config_.page_size; }

  // Makes sure sequence `seq` has pages for `num_tokens` tokens (grows only). ResourceExhausted when the
  // pool has too few free pages; nothing changes then.
  Status reserve(uint64_t seq, int64_t num_tokens);
  void release(uint64_t seq);
  bool contains(uint64_t seq) const { return tables_.count(seq) != 0; }
  // Page ids of `seq` (empty if unknown).
  const std::vector<int32_t>& page_table(uint64_t seq) const;
  // Flat slot (page * page_size + offset) of position `pos`; the position must be reserved.
  int64_t slot(uint64_t seq, int64_t pos) const;
  int64_t num_free_pages() const { return pages_.num_free(); }

 private:
  KvCacheConfig config_;
  std::vector<HostTensor> k_, v_;
  PagePool pages_;
  std::unordered_map<uint64_t, std::vector<int32_t>> tables_;
};

}  // namespace punica::kv
