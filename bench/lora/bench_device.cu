// Device fill for the LoRA benchmark: zero-mean pseudo-random values (never time on zeros).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "bench_lora.h"

namespace punica::bench {
namespace {

__device__ float hash_uniform(uint64_t i, uint64_t seed) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull + seed;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.f / 8388608.f) - 1.f;  // [-1, 1)
}

template <typename T>
__global__ void fill_kernel(T* p, int64_t n, float amp, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<T>(amp * hash_uniform(i, seed));
}

}  // namespace

cudaError_t bench_fill(void* p, int64_t n, bool bf16, float amp, uint64_t seed, cudaStream_t s) {
  if (bf16) fill_kernel<<<1024, 256, 0, s>>>(static_cast<__nv_bfloat16*>(p), n, amp, seed);
  else fill_kernel<<<1024, 256, 0, s>>>(static_cast<__half*>(p), n, amp, seed);
  return cudaGetLastError();
}

}  // namespace punica::bench
