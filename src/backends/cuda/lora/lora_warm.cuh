// L2 prefetch of the expand's operands by the shrink blocks of lora_add (WarmArgs in lora_args.h): each
// block takes its share of its segment's B and of its token tile's y rows and issues sm_90 bulk L2
// prefetches (fire and forget: no registers, no shared memory, no wait). Results never depend on it.
#pragma once

#include <cstdint>

#include "backends/cuda/lora/lora_args.h"

namespace punica::cuda::lora_detail {

constexpr int kWarmPiece = 4096;  // bytes per bulk prefetch

__device__ __forceinline__ void prefetch_l2_bulk(const void* p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes));
#endif
}

// Prefetches bytes [lo, hi) of the buffer at base, its 16-byte-aligned interior only (the bulk prefetch takes
// 16-byte multiples; a few edge bytes are not worth reading past the buffer), in kWarmPiece pieces spread
// over the 32 lanes of the calling warp.
__device__ __forceinline__ void warm_range(const char* base, int lo, int hi, int lane) {
  const int skew = static_cast<int>(reinterpret_cast<uintptr_t>(base) & 15);
  const int s = ((lo + skew + 15) & ~15) - skew, e = ((hi + skew) & ~15) - skew;
  for (int q = s + lane * kWarmPiece; q < e; q += 32 * kWarmPiece)
    prefetch_l2_bulk(base + q, static_cast<uint32_t>(min(kWarmPiece, e - q)));
}

// Share `part` of `parts` of the slot's B ([h_out, r] halves, at most 16k x 128 x 2 bytes) of this slice.
// Called by one warp. 32-bit arithmetic throughout: 64-bit divisions here cost the calling kernels ~90
// registers (ptxas, streaming shrink).
__device__ __forceinline__ void warm_b(const WarmArgs& w, int slice, int slot, int r, int part, int parts, int lane) {
  if (!w.b_on || slot < 0) return;
  const char* b = static_cast<const char*>(w.b[slice][slot]);
  if (b == nullptr) return;
  const int bytes = w.h_out[slice] * r * 2;
  const int share = ((bytes + parts - 1) / parts + 15) & ~15;
  const int lo = share * part;
  if (lo < bytes) warm_range(b, lo, min(bytes, lo + share), lane);
}

// Share `part` of `parts` of this slice's y columns in token rows [t0, t0 + rows): kWarmPiece units taken
// row by row, unit u by block u % parts. Called by one warp, after griddep_wait (y may be the previous
// kernel's output).
__device__ __forceinline__ void warm_y(const WarmArgs& w, int slice, int t0, int rows, int part, int parts,
                                       int lane) {
  if (!w.y_on) return;
  const int row_bytes = w.h_out[slice] * 2;
  const int per_row = (row_bytes + kWarmPiece - 1) / kWarmPiece;
  const char* y = static_cast<const char*>(w.y) + (int64_t{t0} * w.y_stride + w.y_col_offset[slice]) * 2;
  for (int u = part + lane * parts; u < rows * per_row; u += 32 * parts) {
    const int row = u / per_row, off = (u - row * per_row) * kWarmPiece;
    prefetch_l2_bulk(y + int64_t{row} * w.y_stride * 2 + off, static_cast<uint32_t>(min(kWarmPiece, row_bytes - off)));
  }
}

}  // namespace punica::cuda::lora_detail
