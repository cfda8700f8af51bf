#include "backends/cpu/thread_pool.h"

#include <algorithm>

namespace punica::cpu {

ThreadPool::ThreadPool(int num_threads) {
  const int n = std::max(1, num_threads);
  for (int i = 0; i + 1 < n; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  start_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    std::pair<int64_t, int64_t> chunk;
    const std::function<void(int64_t, int64_t)>* job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      start_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
      chunk = static_cast<size_t>(index + 1) < chunks_.size() ? chunks_[index + 1] : std::pair<int64_t, int64_t>{0, 0};
    }
    if (chunk.first < chunk.second) (*job)(chunk.first, chunk.second);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk) {
  if (n <= 0) return;
  const int64_t want = std::min<int64_t>(num_threads(), std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk)));
  if (want <= 1 || workers_.empty()) {
    fn(0, n);
    return;
  }
  std::vector<std::pair<int64_t, int64_t>> chunks;
  const int64_t per = (n + want - 1) / want;
  for (int64_t b = 0; b < n; b += per) chunks.emplace_back(b, std::min(n, b + per));
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    chunks_ = chunks;
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  start_cv_.notify_all();
  fn(chunks[0].first, chunks[0].second);
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return pending_ == 0; });
}

}  // namespace punica::cpu
