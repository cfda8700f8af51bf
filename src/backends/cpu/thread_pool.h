// ThreadPool: a fixed set of worker threads for data-parallel loops in the CPU kernels. parallel_for splits
// [0, n) into one contiguous chunk per thread (the caller's thread runs the first chunk), so a kernel's
// result never depends on the number of threads as long as each index is computed by one thread alone.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace punica::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);   // total threads including the caller's; >= 1
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(begin, end) over disjoint chunks covering [0, n). Chunks smaller than min_chunk are not split off.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_chunk = 1);

 private:
  void worker_loop(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_, done_cv_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  std::vector<std::pair<int64_t, int64_t>> chunks_;   // chunk i+1 goes to worker i
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace punica::cpu
