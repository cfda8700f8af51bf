// Device helpers shared by the LoRA kernels: cp.async, ldmatrix, mma.sync wrappers and Programmatic
// Dependent Launch controls. Plain inline PTX; every wrapper is one instruction.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backends/cuda/lora/lora_args.h"

namespace punica::cuda::lora_detail {

// Wait until the grids this one depends on (PDL) have finished and their writes are visible. A no-op when
// the kernel was launched without the PDL attribute (or before sm_90).
__device__ __forceinline__ void griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Let the next kernel in the stream (if launched with PDL) start its prologue now.
__device__ __forceinline__ void griddep_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global -> shared at a shared-state-space address (smem_addr); src_bytes = 0 writes zeros and
// reads nothing.
__device__ __forceinline__ void cp_async_16_at(uint32_t saddr, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(saddr), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
  cp_async_16_at(smem_addr(smem), gmem, src_bytes);
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// saddr: a shared-state-space address (smem_addr). Loops that step it as a 32-bit integer keep ptxas from
// converting a generic pointer at every step: in a cluster kernel that conversion is ~8 instructions.
__device__ __forceinline__ void ldmatrix_x4_at(uint32_t r[4], uint32_t saddr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(saddr));
}
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* smem) { ldmatrix_x4_at(r, smem_addr(smem)); }
// Four 8x8 16-bit matrices to shared memory, each thread giving the pair of (row lane / 4, columns 2 * (lane % 4))
// of each, lanes 8i..8i+7 the row addresses of matrix i: the layout of an mma accumulator rounded to 16 bits
// (sm_90).
__device__ __forceinline__ void stmatrix_x4_at(uint32_t saddr, const uint32_t r[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1,%2,%3,%4};\n" ::"r"(saddr), "r"(r[0]), "r"(r[1]),
               "r"(r[2]), "r"(r[3])
               : "memory");
}
// x, through an identity shuffle: ptxas cannot rebuild the value from its inputs, so a loop keeps it in one
// register instead of recomputing a shared address (~8 instructions in a cluster kernel) at every use. Every
// lane of the warp must call it.
__device__ __forceinline__ uint32_t pinned_u32(uint32_t x) { return __shfl_sync(0xffffffffu, x, threadIdx.x & 31); }

// Thread-block clusters (sm_90): the cluster barrier in two halves, and addresses in other CTAs' shared memory.
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void cluster_arrive_relaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
}
// The address `local` has in CTA `rank` of the cluster (shared::cluster window).
__device__ __forceinline__ uint32_t map_remote(const void* local, int rank) {
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(smem_addr(local)), "r"(rank));
  return remote;
}

// mbarrier wrappers (sm_90), one instruction each but the wait loop.
__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void fence_mbar_init() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
  uint32_t done = 0;
  while (!done)
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
}
// st.async of 4 bytes to an address mapped by map_remote, counted on the mapped mbarrier `rbar`.
__device__ __forceinline__ void st_async_mapped(uint32_t remote, float v, uint32_t rbar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.f32 [%0], %1, [%2];\n" ::"r"(remote), "f"(v),
               "r"(rbar)
               : "memory");
}
// st.async of 16 bytes to a shared::cluster address (map_remote), counted on the mapped mbarrier `rbar` of the
// receiving CTA: it waits for its own bytes; the sender needs no fence.
__device__ __forceinline__ void st_async_v4_mapped(uint32_t remote, float4 v, uint32_t rbar) {
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.f32 [%0], {%1, %2, %3, %4}, [%5];\n" ::"r"(
                   remote),
               "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w), "r"(rbar)
               : "memory");
}

template <typename T>
struct MmaF16;
template <>
struct MmaF16<__half> {
  // c += a (16x16, row) * b (16x8, col), fp16 inputs, fp32 accumulate
  __device__ __forceinline__ static void run(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};
template <>
struct MmaF16<__nv_bfloat16> {
  __device__ __forceinline__ static void run(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
};

// c += a (16x8 tf32, row) * b (8x8 tf32, col), fp32 accumulate.
__device__ __forceinline__ void mma_tf32(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t f32_to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

// Two 16-bit values (one 32-bit word of a B row) -> the two fp32 values. fp16 and bf16 both convert to
// fp32 exactly, and their mantissas fit tf32's 10 bits, so the tf32 products with them are exact.
__device__ __forceinline__ float2 pair_to_float2(uint32_t w, __half) {
  return __half22float2(*reinterpret_cast<const __half2*>(&w));
}
__device__ __forceinline__ float2 pair_to_float2(uint32_t w, __nv_bfloat16) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&w));
}

__device__ __forceinline__ uint32_t float2_to_pair(float a, float b, __half) {
  __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}
__device__ __forceinline__ uint32_t float2_to_pair(float a, float b, __nv_bfloat16) {
  __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<uint32_t*>(&h);
}

__device__ __forceinline__ float to_float(__half h) { return __half2float(h); }
__device__ __forceinline__ float to_float(__nv_bfloat16 h) { return __bfloat162float(h); }

// v (fp32) as two 16-bit halves whose sum carries 16 (bf16) or 22 (f16) significant bits, so the expand's
// tensor-core product with v keeps close to fp32 accuracy: hi = round(v), lo = round(v - hi) (0 for +-inf).
template <typename T>
__device__ __forceinline__ void split_hi_lo(float v, T& hi, T& lo) {
  hi = T(v);
  const float h = to_float(hi);
  lo = isinf(h) ? T(0.f) : T(v - h);
}

}  // namespace punica::cuda::lora_detail

namespace punica::cuda::lora_detail {

// Slice i's entry of a per-slice kernel-parameter array (i < kMaxLoraSlices = 3), by ternaries: a parameter array
// indexed by a register is copied to local memory.
template <typename E>
__device__ __forceinline__ E pick_slice(const E (&arr)[ops::kMaxLoraSlices], int i) {
  static_assert(ops::kMaxLoraSlices == 3, "one ternary per slice");
  return i == 0 ? arr[0] : i == 1 ? arr[1] : arr[2];
}

// One slice as a CTA of a cluster kernel (lora_cluster.cu, lora_adapter_stream.cu) sees it: the slot's weights and
// this CTA's share of the slice's columns.
struct CtaSlice {
  const void* a;
  const void* b;
  int r;       // 0: this slice is not adapted by the segment's slot
  float scale;
  int col_b;   // this CTA's first column of the slice
  int ncols;   // this CTA's columns of the slice (a multiple of 8, may be 0)
};

// What a one-launch kernel reads of slice i for the segment's slot, all four loads issued together. The slot adapts
// the slice only when a and b are set and rank > 0. (The cluster kernel spells the same loads out: written with these
// helpers its sm_90a SASS changed by ~1%, unmeasured, so it keeps the code that was measured.)
struct SlotSlice {
  const void* a;
  const void* b;
  int rank;
  float scale;
};
__device__ __forceinline__ SlotSlice slot_slice(const AddonArgs& p, int i, int slot) {
  return {pick_slice(p.a, i)[slot], pick_slice(p.b, i)[slot], pick_slice(p.rank, i)[slot], pick_slice(p.scale, i)[slot]};
}

// Fills the v tile of an expand block: v_hi/v_lo [TM][pitch] (halves) for rows < rows, j < r (zeros
// elsewhere), where v[row][j] = sum over ksplit partials (ksplit > 1) or v itself. Small tiles (decode) have
// few elements but many partials: the block then splits the partials over groups of threads and adds the
// groups' sums in a fixed order, so the sum takes one or two L2 round trips instead of ksplit. When
// write_v, the summed values are also stored to v. red must hold kThreads floats.
template <typename T, int TM, int RP, int kBlock, typename SplitFn>
__device__ __forceinline__ void expand_fill_v(T* svh, T* svl, int pitch, float* red, const float* v, float* v_out,
                                              const float* vpart, int64_t part_stride, int ksplit, int64_t v_row,
                                              int64_t col0, int t0, int rows, int r, bool write_v, SplitFn split) {
  const int tid = threadIdx.x;
  for (int e = tid; e < TM * RP; e += kBlock) {
    const int row = e / RP, j = e % RP;
    if (row >= rows || j >= r) {
      svh[row * pitch + j] = T(0.f);
      svl[row * pitch + j] = T(0.f);
    }
  }
  const int n = rows * r;
  if (ksplit <= 1) {
    for (int e = tid; e < n; e += kBlock) {
      const int row = e / r, j = e % r;
      const int64_t off = (t0 + row) * v_row + col0 + j;
      const float val = __ldcg(v + off);
      if (write_v && v_out != v) v_out[off] = val;
      T hi, lo;
      split(val, hi, lo);
      svh[row * pitch + j] = hi;
      svl[row * pitch + j] = lo;
    }
    return;
  }
  int groups = 1;
  while (groups * 2 * n <= kBlock && groups * 2 <= ksplit) groups *= 2;
  const int lanes = kBlock / groups;
  const int grp = tid / lanes, lt = tid % lanes;
  for (int e0 = 0; e0 < n; e0 += lanes) {
    const int e = e0 + lt;
    float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
    int64_t off = 0;
    if (e < n) {
      off = (t0 + e / r) * v_row + col0 + e % r;
      int sp = grp;
      for (; sp + 3 * groups < ksplit; sp += 4 * groups) {  // four independent loads in flight
        s0 += __ldcg(vpart + (sp + 0 * groups) * part_stride + off);
        s1 += __ldcg(vpart + (sp + 1 * groups) * part_stride + off);
        s2 += __ldcg(vpart + (sp + 2 * groups) * part_stride + off);
        s3 += __ldcg(vpart + (sp + 3 * groups) * part_stride + off);
      }
      for (; sp < ksplit; sp += groups) s0 += __ldcg(vpart + sp * part_stride + off);
    }
    if (groups > 1) {
      red[tid] = (s0 + s1) + (s2 + s3);
      __syncthreads();
    }
    if (grp == 0 && e < n) {
      float val = (s0 + s1) + (s2 + s3);
      for (int g = 1; g < groups; ++g) val += red[g * lanes + lt];
      if (write_v) v_out[off] = val;
      T hi, lo;
      split(val, hi, lo);
      svh[(e / r) * pitch + e % r] = hi;
      svl[(e / r) * pitch + e % r] = lo;
    }
    if (groups > 1) __syncthreads();
  }
}

// Where an expand block (tiled or streaming kernel) works: the slice of its column tile (blockIdx.x over
// p.ntile_begin) and the tile's first column, its segment (blockIdx.z) with the slot's B, rank, scale and token
// range. b == nullptr: the segment has no adapter (rank, scale and range are then not read). Only metadata
// and slot tables, which no LoRA kernel writes, so blocks read them before griddep_wait. Lets the next kernel
// launch (PDL) as soon as the slot's B and rank are known.
struct ExpandBlock {
  int slice, n0, r, h_out, seg_begin, seg_end;
  const void* b;
  float scale;
};
template <int NB>
__device__ __forceinline__ ExpandBlock expand_block(const ExpandArgs& p) {
  int slice = 0;
  while (slice + 1 < p.num_slices && static_cast<int>(blockIdx.x) >= p.ntile_begin[slice + 1]) ++slice;
  const int n0 = (blockIdx.x - p.ntile_begin[slice]) * NB;
  const int slot = p.seg.seg_slot[blockIdx.z];
  const void* b = slot >= 0 ? p.b[slice][slot] : nullptr;
  const int r = b ? min(p.rank[slice][slot], p.v_rank_stride) : 0;
  griddep_launch_dependents();
  if (b == nullptr || r <= 0) return ExpandBlock{slice, n0, 0, 0, 0, 0, nullptr, 0.f};
  return ExpandBlock{slice, n0, r, p.h_out[slice], p.seg.seg_start[blockIdx.z], p.seg.seg_start[blockIdx.z + 1], b,
                     p.scale[slice][slot]};
}

}  // namespace punica::cuda::lora_detail
