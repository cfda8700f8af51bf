// Device pieces of the LoRA benchmark: zero-mean pseudo-random fill (never time on zeros) and the probe
// kernels that measure the fixed cost of one launch under CUDA-graph replay, and the cost of executing code
// for the first time in a launch (straight-line code vs the same work in a loop).
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

// The fixed-cost probe: 16 CTAs of 128 threads, launched with Programmatic Dependent Launch like the LoRA
// kernels. mode 0: nothing but the PDL handshake; mode 1: + one 16-CTA cluster barrier; mode 2: + after the
// wait, every thread reads 16 bytes (cold: the buffer rotates over more than the L2) and writes them back.
__global__ void probe_kernel(uint4* buf, int64_t stride, int mode) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  asm volatile("griddepcontrol.wait;" ::: "memory");
  if (mode >= 1) {
    asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
    asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
  }
  if (mode == 2) {
    uint4* p = buf + stride + blockIdx.x * blockDim.x + threadIdx.x;
    uint4 v = *p;
    v.x += 1;
    *p = v;
  }
  if (mode >= 3) {  // 2048 FMAs in 8 chains: straight-line code (32 KB of instructions) or a 256-trip loop
    float a[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) a[i] = threadIdx.x * (i + 1) * 1e-3f;
    if (mode == 3) {
#pragma unroll
      for (int i = 0; i < 256; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) a[j] = fmaf(a[j], 1.0001f + i * 1e-6f, 1e-7f * (j + 1) + i * 1e-9f);
    } else {
#pragma unroll 1
      for (int i = 0; i < 256; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) a[j] = fmaf(a[j], 1.0001f + i * 1e-6f, 1e-7f * (j + 1) + i * 1e-9f);
    }
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) s += a[i];
    if (s == 12345.f) buf[stride] = uint4{1, 2, 3, 4};  // keeps the work; never true for these inputs
  }
#else
  (void)buf, (void)stride, (void)mode;
#endif
}

}  // namespace

cudaError_t bench_probe(void* buf, int64_t offset_vec16, int mode, cudaStream_t s) {
  static const cudaError_t attr_err = cudaFuncSetAttribute(probe_kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  if (attr_err != cudaSuccess) return attr_err;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(16);
  cfg.blockDim = dim3(128);
  cfg.stream = s;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  attr[1].id = cudaLaunchAttributeClusterDimension;
  attr[1].val.clusterDim.x = 16;
  attr[1].val.clusterDim.y = 1;
  attr[1].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 2;
  return cudaLaunchKernelEx(&cfg, probe_kernel, static_cast<uint4*>(buf), offset_vec16, mode);
}

cudaError_t bench_fill(void* p, int64_t n, bool bf16, float amp, uint64_t seed, cudaStream_t s) {
  if (bf16) fill_kernel<<<1024, 256, 0, s>>>(static_cast<__nv_bfloat16*>(p), n, amp, seed);
  else fill_kernel<<<1024, 256, 0, s>>>(static_cast<__half*>(p), n, amp, seed);
  return cudaGetLastError();
}

}  // namespace punica::bench
