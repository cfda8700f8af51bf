// Shared pieces of the LoRA kernel benchmark (bench/lora): workloads, timing, baselines.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace punica::bench {

#define BENCH_CUDA(call)                                                                                    \
  do {                                                                                                      \
    cudaError_t e_ = (call);                                                                                \
    if (e_ != cudaSuccess) {                                                                                \
      std::fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__, __LINE__, #call); \
      std::exit(1);                                                                                         \
    }                                                                                                       \
  } while (0)
#define BENCH_CUBLAS(call)                                                                      \
  do {                                                                                          \
    cublasStatus_t s_ = (call);                                                                 \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
      std::fprintf(stderr, "cuBLAS error %d at %s:%d: %s\n", int(s_), __FILE__, __LINE__, #call); \
      std::exit(1);                                                                             \
    }                                                                                           \
  } while (0)

cudaError_t bench_fill(void* p, int64_t n, bool bf16, float amp, uint64_t seed, cudaStream_t s);
// One launch of the fixed-cost probe (bench_device.cu): mode 0 PDL handshake only, 1 + a 16-CTA cluster
// barrier, 2 + one cold 16-byte load and store per thread at buf + offset_vec16 * 16 bytes, 3 / 4 + 2048
// FMAs per thread as straight-line code / as a loop (sm_90 only).
cudaError_t bench_probe(void* buf, int64_t offset_vec16, int mode, cudaStream_t s);
// One launch of the read-rate probe (bench_device.cu): `ctas` CTAs read `steps` 16 KB stages each at buf through a
// ring of `depth` (4 or 8) stages; tile 1 (128 CTAs x 8 stages only): the prefill kernel's x-tile pattern (256 bytes
// of each of 64 rows 8 KB apart per stage), 0: contiguous, 2 / 3: each CTA its own 64 rows at a pitch of 8 KB /
// 8 KB + 256 bytes (steps <= 32); bulk: one bulk copy per row / stage on an mbarrier, or 16-byte cp.async per thread
// (sm_90 only).
cudaError_t bench_read_probe(const void* buf, int depth, int tile, int bulk, int* out, cudaStream_t s, int ctas = 128,
                             int steps = 8);
// The bytes one such launch spans from buf (what the caller's buffer must hold past it).
int64_t bench_read_probe_span(int tile, int ctas, int steps);

enum class Workload { kDistinct, kUniform, kZipf, kIdentical, kSplit1, kNoAdapterRows, kPrefill };
const char* workload_name(Workload w);

// Segments of one batch, sorted by adapter (local adapter ids 0..distinct-1, -1 = no adapter).
struct Batch {
  std::vector<int> seg_len, seg_local;  // per segment
  int tokens = 0, adapted_tokens = 0, distinct = 0, max_seg_len = 0;
  int max_adapted_seg_len = 0;  // longest segment with an adapter
};
Batch make_batch(Workload w, int n, uint64_t seed);

// Median microseconds per invocation of `body(i)` for i < n_inv, captured once in a CUDA graph and
// replayed `reps` times (after warm-up).
double time_graph(cudaStream_t s, int n_inv, int reps, const std::function<void(int)>& body);

}  // namespace punica::bench
