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

// The read-rate probe: 128 CTAs of 256 threads read 16 MB (2048 rows of 8 KB, as x of a 4 x 512 prefill at
// h = 4096) through a ring of S stages of 16 KB in shared memory, and nothing else. tile = 1: CTA b reads rows
// 64 (b / 4) .. + 63, bytes 2 KB (b % 4) .. + 2 KB of each, 256 bytes per row per stage (the prefill kernel's x
// tile); tile = 0: a contiguous 128 KB. bulk = 0: 16-byte cp.async per thread, cp.async.wait_group and a block
// barrier per stage (the prefill kernel's pipeline); bulk = 1: thread 0 issues one bulk copy per row (tile) or per
// stage, completion on an mbarrier per slot. What access pattern and copy engine the memory system rewards.
// Other grid sizes and steps (tile 0, 2, 3): each CTA reads steps x 16 KB, with as many CTAs as launched: the rate one
// SM reaches alone (1 CTA), or with a few others (16), against all of them (132).
template <int S>
__global__ void __launch_bounds__(256, 1) read_probe_kernel(const char* buf, int tile, int bulk, int steps, int* out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ uint64_t full[S];
  constexpr int kStage = 16 << 10;
  const int kSteps = steps;  // 8: 128 KB per CTA
  const int b = blockIdx.x, tid = threadIdx.x;
  // tile = 2 / 3: CTA b reads its own 64 rows of pitch 8 KB (A's rows at h_in = 4096) / 8 KB + 256 bytes, 256 bytes of
  // each per stage, at most 32 stages: the same pattern with and without a power-of-two row pitch.
  const int64_t pitch = tile == 3 ? 8192 + 256 : 8192;
  const char* base = tile == 1   ? buf + int64_t(b / 4) * 64 * 8192 + (b % 4) * 2048
                     : tile >= 2 ? buf + int64_t(b) * 64 * pitch
                                 : buf + int64_t(b) * kSteps * kStage;
  const uint32_t ring = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  if (tid == 0)
    for (int i = 0; i < S; ++i)
      asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(static_cast<uint32_t>(__cvta_generic_to_shared(&full[i]))));
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  __syncthreads();
  auto src = [&](int step, int c) {  // byte offset of 16-byte chunk c (0..1023) of a stage
    return tile ? base + int64_t(c >> 4) * pitch + step * 256 + (c & 15) * 16 : base + int64_t(step) * kStage + c * 16;
  };
  auto issue = [&](int step) {
    const uint32_t st = ring + (step % S) * kStage;
    if (bulk) {
      if (tid == 0) {
        const uint32_t bar = static_cast<uint32_t>(__cvta_generic_to_shared(&full[step % S]));
        asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(kStage) : "memory");
        if (tile)
          for (int r = 0; r < 64; ++r)
            asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], 256, [%2];\n" ::"r"(
                             st + r * 256), "l"(src(step, r * 16)), "r"(bar) : "memory");
        else
          asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(st),
                       "l"(src(step, 0)), "r"(kStage), "r"(bar) : "memory");
      }
    } else {
      for (int c = tid; c < 1024; c += 256)
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(st + c * 16), "l"(src(step, c)));
      asm volatile("cp.async.commit_group;\n" ::);
    }
  };
  int acc = 0;
  for (int step = 0; step < S - 1; ++step) {  // empty groups past kSteps keep wait_group's count right
    if (step < kSteps) issue(step);
    else if (!bulk) asm volatile("cp.async.commit_group;\n" ::);
  }
  for (int step = 0; step < kSteps; ++step) {
    if (bulk) {
      const uint32_t bar = static_cast<uint32_t>(__cvta_generic_to_shared(&full[step % S]));
      uint32_t done = 0;
      while (!done)
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(bar), "r"((step / S) & 1) : "memory");
    } else {
      asm volatile("cp.async.wait_group %0;\n" ::"n"(S - 2));
    }
    __syncthreads();
    if (step + S - 1 < kSteps) issue(step + S - 1);
    else if (!bulk) asm volatile("cp.async.commit_group;\n" ::);
    acc += reinterpret_cast<const int*>(smem + (step % S) * kStage)[tid];
  }
  if (acc == 0x12345678) *out = acc;  // keeps the reads; never true for the random fill
#else
  (void)buf, (void)tile, (void)bulk, (void)steps, (void)out;
#endif
}

}  // namespace

int64_t bench_read_probe_span(int tile, int ctas, int steps) {
  if (tile == 1) return int64_t{128} * 8 * (16 << 10);
  if (tile >= 2) return int64_t{ctas} * 64 * (tile == 3 ? 8192 + 256 : 8192);
  return int64_t{ctas} * steps * (16 << 10);
}

cudaError_t bench_read_probe(const void* buf, int depth, int tile, int bulk, int* out, cudaStream_t s, int ctas,
                             int steps) {
  if (tile == 1 && (ctas != 128 || steps != 8)) return cudaErrorInvalidValue;  // the tile pattern covers 128 x 8 stages
  if (tile >= 2 && steps > 32) return cudaErrorInvalidValue;                  // 32 x 256 bytes per row
  if (steps < 1 || ctas < 1) return cudaErrorInvalidValue;
  const int smem = depth * (16 << 10);
  if (depth == 4) {
    static const cudaError_t e = cudaFuncSetAttribute(read_probe_kernel<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, 4 * (16 << 10));
    if (e != cudaSuccess) return e;
    read_probe_kernel<4><<<ctas, 256, smem, s>>>(static_cast<const char*>(buf), tile, bulk, steps, out);
  } else {
    static const cudaError_t e = cudaFuncSetAttribute(read_probe_kernel<8>, cudaFuncAttributeMaxDynamicSharedMemorySize, 8 * (16 << 10));
    if (e != cudaSuccess) return e;
    read_probe_kernel<8><<<ctas, 256, 8 * (16 << 10), s>>>(static_cast<const char*>(buf), tile, bulk, steps, out);
  }
  return cudaGetLastError();
}

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
