#include "kv/kv_cache.h"

#include <string>

namespace punica::kv {

PagePool::PagePool(int64_t num_pages) : num_pages_(num_pages) {
  free_.reserve(static_cast<size_t>(num_pages));
  for (int64_t i = num_pages - 1; i >= 0; --i) free_.push_back(static_cast<int32_t>(i));
}

bool PagePool::allocate(int64_t n, std::vector<int32_t>* out) {
  if (n < 0 || n > num_free()) return false;
  for (int64_t i = 0; i < n; ++i) {
    out->push_back(free_.back());
    free_.pop_back();
  }
  return true;
}

void PagePool::release(const std::vector<int32_t>& pages) {
  for (auto it = pages.rbegin(); it != pages.rend(); ++it) free_.push_back(*it);
}

Expected<KvCache> KvCache::create(const KvCacheConfig& c, int64_t max_bytes) {
  if (c.num_layers < 1 || c.kv_dim < 1 || c.page_size < 1 || c.num_pages < 1)
    return invalid_argument("kv cache: num_layers, kv_dim, page_size and num_pages must all be >= 1");
  if (c.num_pages > INT32_MAX) return invalid_argument("kv cache: num_pages must fit in int32");
  const double bytes = 2.0 * c.num_layers * c.num_pages * c.page_size * c.kv_dim * sizeof(float);
  if (bytes > static_cast<double>(max_bytes))
    return resource_exhausted("kv cache: " + std::to_string(static_cast<int64_t>(bytes)) +
                              " bytes requested, limit " + std::to_string(max_bytes));
  KvCache cache;
  cache.config_ = c;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    cache.k_.emplace_back(DType::kF32, std::vector<int64_t>{c.num_pages * c.page_size, c.kv_dim});
    cache.v_.emplace_back(DType::kF32, std::vector<int64_t>{c.num_pages * c.page_size, c.kv_dim});
  }
  cache.pages_ = PagePool(c.num_pages);
  return cache;
}

Status KvCache::reserve(uint64_t seq, int64_t num_tokens) {
  auto& table = tables_[seq];
  const int64_t need = pages_for_tokens(num_tokens, config_.page_size) - static_cast<int64_t>(table.size());
  if (need <= 0) return Status::ok();
  if (!pages_.allocate(need, &table)) {
    if (table.empty()) tables_.erase(seq);
    return resource_exhausted("kv cache: sequence " + std::to_string(seq) + " needs " + std::to_string(need) +
                              " more pages, " + std::to_string(pages_.num_free()) + " free");
  }
  return Status::ok();
}

void KvCache::release(uint64_t seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  pages_.release(it->second);
  tables_.erase(it);
}

const std::vector<int32_t>& KvCache::page_table(uint64_t seq) const {
  static const std::vector<int32_t> kEmpty;
  auto it = tables_.find(seq);
  return it == tables_.end() ? kEmpty : it->second;
}

int64_t KvCache::slot(uint64_t seq, int64_t pos) const {
  const auto& t = page_table(seq);
  const int64_t page = pos / config_.page_size;
  PUNICA_ASSERT(pos >= 0 && page < static_cast<int64_t>(t.size()), "kv slot: position %lld not reserved",
                static_cast<long long>(pos));
  return static_cast<int64_t>(t[static_cast<size_t>(page)]) * config_.page_size + pos % config_.page_size;
}

}  // namespace punica::kv
