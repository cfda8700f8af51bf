// Batches of the benchmark: the popularity distributions of the Punica paper plus [1, n-1] and no-adapter
// rows, and the graph-replay timer.
#include <algorithm>
#include <cmath>
#include <random>

#include "bench_lora.h"

namespace punica::bench {

const char* workload_name(Workload w) {
  switch (w) {
    case Workload::kDistinct: return "distinct";
    case Workload::kUniform: return "uniform";
    case Workload::kZipf: return "zipf1.5";
    case Workload::kIdentical: return "identical";
    case Workload::kSplit1: return "split1";
    case Workload::kNoAdapterRows: return "noadapt";
    case Workload::kPrefill: return "prefill";
  }
  return "?";
}

Batch make_batch(Workload w, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int> tok;
  switch (w) {
    case Workload::kDistinct:
      for (int t = 0; t < n; ++t) tok.push_back(t);
      break;
    case Workload::kUniform: {
      const int d = static_cast<int>(std::ceil(std::sqrt(double(n))));
      for (int t = 0; t < n; ++t) tok.push_back(t % d);
      break;
    }
    case Workload::kZipf: {
      std::vector<double> p(1000);
      for (size_t k = 0; k < p.size(); ++k) p[k] = 1.0 / std::pow(k + 1.0, 1.5);
      std::discrete_distribution<int> dist(p.begin(), p.end());
      for (int t = 0; t < n; ++t) tok.push_back(dist(rng));
      break;
    }
    case Workload::kIdentical:
      tok.assign(n, 0);
      break;
    case Workload::kSplit1:
      for (int t = 0; t < n; ++t) tok.push_back(t == 0 ? 0 : 1);
      break;
    case Workload::kNoAdapterRows:  // the first half of the rows has no adapter, the rest distinct adapters
      for (int t = 0; t < n; ++t) tok.push_back(t < n / 2 ? -1 : t);
      break;
    case Workload::kPrefill:  // 4 prompts of n / 4 tokens, each its own adapter
      for (int t = 0; t < n; ++t) tok.push_back(t / (n / 4));
      break;
  }
  std::sort(tok.begin(), tok.end());
  Batch b;
  std::vector<int> ids;  // renumber adapters 0..distinct-1
  for (int t = 0; t < n; ++t) {
    if (t == 0 || tok[t] != tok[t - 1]) {
      b.seg_len.push_back(0);
      int local = -1;
      if (tok[t] >= 0) {
        local = b.distinct++;
      }
      b.seg_local.push_back(local);
    }
    ++b.seg_len.back();
  }
  b.tokens = n;
  for (size_t g = 0; g < b.seg_len.size(); ++g) {
    if (b.seg_local[g] >= 0) {
      b.adapted_tokens += b.seg_len[g];
      b.max_adapted_seg_len = std::max(b.max_adapted_seg_len, b.seg_len[g]);
    }
    b.max_seg_len = std::max(b.max_seg_len, b.seg_len[g]);
  }
  return b;
}

double time_graph(cudaStream_t s, int n_inv, int reps, const std::function<void(int)>& body) {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  BENCH_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < n_inv; ++i) body(i);
  BENCH_CUDA(cudaStreamEndCapture(s, &graph));
  BENCH_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (int w = 0; w < 2; ++w) BENCH_CUDA(cudaGraphLaunch(exec, s));
  cudaEvent_t e0, e1;
  BENCH_CUDA(cudaEventCreate(&e0));
  BENCH_CUDA(cudaEventCreate(&e1));
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    BENCH_CUDA(cudaEventRecord(e0, s));
    BENCH_CUDA(cudaGraphLaunch(exec, s));
    BENCH_CUDA(cudaEventRecord(e1, s));
    BENCH_CUDA(cudaEventSynchronize(e1));
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, e0, e1));
    t.push_back(1000.0 * ms / n_inv);
  }
  BENCH_CUDA(cudaEventDestroy(e0));
  BENCH_CUDA(cudaEventDestroy(e1));
  BENCH_CUDA(cudaGraphExecDestroy(exec));
  BENCH_CUDA(cudaGraphDestroy(graph));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace punica::bench
