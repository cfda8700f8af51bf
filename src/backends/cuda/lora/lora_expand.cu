// SGMV expand: y[t, off_i + n] = round(y + scale_{slot,i} * v[t, i, :r] @ B_{slot,i}[n, :r]) per segment.
//
// v is fp32 and stays (almost) fp32: each v tile is split once, in shared memory, into v_hi = round(v) and
// v_lo = round(v - v_hi) in the activation dtype, and the product runs as two mma.sync m16n8k16 (fp32
// accumulate), i.e. v carries 16 (bf16) or 22 (fp16) significant bits, far below y's own rounding.
// Limitation: with fp16, |v| must stay below 65504 (fp16's range) or the add-on becomes +-inf.
//
// Grid: x = column tile of NB outputs (over all slices), y = token tiles of TM rows (strided loop),
// z = segment. The B tile does not depend on the previous kernel, so it is loaded before griddep_wait:
// under PDL that load overlaps the shrink kernel.
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"
#include "backends/cuda/lora/lora_launch.cuh"

namespace punica::cuda::lora_detail {
namespace {

template <int TM, int RP, int NB>
struct ExpandLayout {
  static constexpr int WM = TM / 16;
  static constexpr int WN = 4 / WM;
  static constexpr int kColsPerWarp = NB / WN;   // multiple of 8
  static constexpr int kNT = kColsPerWarp / 8;   // n8 tiles per warp
  static constexpr int kBPitch = RP + 8;         // halves
  static constexpr int kVPitch = RP + 8;         // halves (v_hi and v_lo tiles)
  static constexpr int kYPitch = NB + 8;         // halves
  static constexpr int kSmemBytes = (NB + 2 * TM) * kBPitch * 2 + TM * kYPitch * 2;
  static_assert(kNT % 2 == 0, "n8 tiles come in pairs (one ldmatrix.x4)");
  static_assert(WM * WN == 4, "4 warps");
};

// v = hi + lo in T; an infinite or (fp16) out-of-range v gives lo = 0, so the product is +-inf, not NaN.
template <typename T, int TM, int RP, int NB>
__global__ void __launch_bounds__(kThreads) lora_expand_kernel(const ExpandArgs p) {
  using L = ExpandLayout<TM, RP, NB>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sb = reinterpret_cast<T*>(smem);     // [NB][kBPitch]
  T* svh = sb + NB * L::kBPitch;          // [TM][kVPitch] v_hi
  T* svl = svh + TM * L::kVPitch;         // [TM][kVPitch] v_lo
  T* sy = svl + TM * L::kVPitch;          // [TM][kYPitch] the y tile, old then new
  __shared__ float s_red[kThreads];

  // Segment metadata, slot tables and B are not written by the shrink kernel: read them before the wait.
  const ExpandBlock eb = expand_block<NB>(p);
  if (eb.b == nullptr) return;
  const int slice = eb.slice, n0 = eb.n0, r = eb.r, h_out = eb.h_out, seg_begin = eb.seg_begin, seg_end = eb.seg_end;
  const float scale = eb.scale;
  const T* b = static_cast<const T*>(eb.b);
  // The grid covers the longest segment; tiles past this one's end leave before loading B.
  if (seg_begin + static_cast<int>(blockIdx.y) * TM >= seg_end) return;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  if ((r & 7) == 0 && (reinterpret_cast<uintptr_t>(b) & 15) == 0) {
    constexpr int kChunks = RP / 8;  // 16-byte chunks per smem row
    for (int c = tid; c < NB * kChunks; c += kThreads) {
      const int n = c / kChunks, k = (c % kChunks) * 8;
      const bool ok = n0 + n < h_out && k < r;
      cp_async_16(sb + n * L::kBPitch + k, ok ? b + static_cast<int64_t>(n0 + n) * r + k : b, ok ? 16 : 0);
    }
  } else {  // odd ranks: rows of B are not 16-byte aligned
    for (int e = tid; e < NB * RP; e += kThreads) {
      const int n = e / RP, k = e % RP;
      sb[n * L::kBPitch + k] = (n0 + n < h_out && k < r) ? b[static_cast<int64_t>(n0 + n) * r + k] : T(0.f);
    }
  }
  cp_async_commit();

  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  const int64_t part_stride = static_cast<int64_t>(p.seg.num_tokens) * v_row;
  const int wm = warp % L::WM, wn = warp / L::WM;
  const int g = lane >> 2, q = lane & 3;
  T* y = static_cast<T*>(p.y);

  // The y tile moves through shared memory with 16-byte copies: cp.async in (overlapping everything before
  // the epilogue), 16-byte stores out. Per-thread 4-byte accesses in the mma fragment layout throttled the
  // load/store queue (Nsight Compute: 10% of DRAM bandwidth).
  auto load_y = [&](int t0, int rows) {
    constexpr int kChunks = NB / 8;
    for (int c = tid; c < TM * kChunks; c += kThreads) {
      const int row = c / kChunks, n = n0 + (c % kChunks) * 8;
      const bool ok = row < rows && n < h_out;
      cp_async_16(sy + row * L::kYPitch + (c % kChunks) * 8,
                  ok ? y + (t0 + row) * p.y_stride + p.y_col_offset[slice] + n : y, ok ? 16 : 0);
    }
    cp_async_commit();
  };
  // In lora_add, y of the first tile is loaded before the wait too: the kernel this one overlaps under PDL
  // is this call's shrink (or reduce), which does not write y and lets this kernel start only after the
  // kernel before it (which may have written y) has completed. A standalone expand cannot know that.
  const int t_first = seg_begin + blockIdx.y * TM;
  if (p.prefetch_y && t_first < seg_end) load_y(t_first, min(TM, seg_end - t_first));

  griddep_wait();  // v is ready from here on

  for (int t0 = t_first; t0 < seg_end; t0 += gridDim.y * TM) {
    const int rows = min(TM, seg_end - t0);
    if (t0 != t_first || !p.prefetch_y) load_y(t0, rows);
    expand_fill_v<T, TM, RP, kThreads>(svh, svl, L::kVPitch, s_red, p.v, p.v, p.vpart, part_stride, p.ksplit, v_row,
                                       slice * p.v_rank_stride, t0, rows, r,
                                       blockIdx.x == static_cast<unsigned>(p.ntile_begin[slice]), split_hi_lo<T>);
    cp_async_wait<0>();
    __syncthreads();

    float acc[L::kNT][4];
#pragma unroll
    for (int i = 0; i < L::kNT; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    const T* cvh = svh + (wm * 16) * L::kVPitch;
    const T* cvl = svl + (wm * 16) * L::kVPitch;
    const T* cb = sb + (wn * L::kColsPerWarp) * L::kBPitch;
#pragma unroll
    for (int kk = 0; kk < RP / 16; ++kk) {
      if (kk * 16 >= r) break;  // zeros beyond r
      uint32_t ah[4], al[4];
      ldmatrix_x4(ah, cvh + (lane & 15) * L::kVPitch + kk * 16 + (lane >> 4) * 8);
      ldmatrix_x4(al, cvl + (lane & 15) * L::kVPitch + kk * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int np = 0; np < L::kNT / 2; ++np) {
        uint32_t bf[4];
        ldmatrix_x4(bf, cb + (np * 16 + (lane & 7) + (lane >> 4) * 8) * L::kBPitch + kk * 16 + ((lane >> 3) & 1) * 8);
        MmaF16<T>::run(acc[2 * np], ah, bf);
        MmaF16<T>::run(acc[2 * np], al, bf);
        MmaF16<T>::run(acc[2 * np + 1], ah, bf + 2);
        MmaF16<T>::run(acc[2 * np + 1], al, bf + 2);
      }
    }

#pragma unroll
    for (int nt = 0; nt < L::kNT; ++nt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = wm * 16 + g + half * 8;
        uint32_t* cell = reinterpret_cast<uint32_t*>(sy + row * L::kYPitch + wn * L::kColsPerWarp + nt * 8 + 2 * q);
        const float2 old = pair_to_float2(*cell, T());
        *cell = float2_to_pair(old.x + scale * acc[nt][half * 2], old.y + scale * acc[nt][half * 2 + 1], T());
      }
    }
    __syncthreads();
    {
      constexpr int kChunks = NB / 8;
      for (int c = tid; c < rows * kChunks; c += kThreads) {
        const int row = c / kChunks, n = n0 + (c % kChunks) * 8;
        if (n < h_out)
          *reinterpret_cast<uint4*>(y + (t0 + row) * p.y_stride + p.y_col_offset[slice] + n) =
              *reinterpret_cast<const uint4*>(sy + row * L::kYPitch + (c % kChunks) * 8);
      }
    }
    __syncthreads();  // the v tiles are rewritten by the next tile
  }
}

template <typename T, int TM, int RP, int NB>
Status launch(const LaunchShape& shape, const ExpandArgs& args, cudaStream_t stream) {
  using L = ExpandLayout<TM, RP, NB>;
  auto kernel = lora_expand_kernel<T, TM, RP, NB>;
  PUNICA_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::kSmemBytes));
  return launch_kernel(kernel, shape.grid, dim3(kThreads), L::kSmemBytes, shape.pdl, 0, stream,
                       "lora_expand_kernel launch", args);
}

}  // namespace

Status lora_launch_expand(DType dtype, const LaunchShape& shape, const ExpandArgs& args, cudaStream_t stream) {
  return dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return dispatch_padded_rank(shape.rp, "lora_expand", [&](auto rp) {
      constexpr int RP = decltype(rp)::value;
      if (shape.tm == 16)
        return shape.nb == 64 ? launch<T, 16, RP, 64>(shape, args, stream) : launch<T, 16, RP, 128>(shape, args, stream);
      return shape.nb == 64 ? launch<T, 64, RP, 64>(shape, args, stream) : launch<T, 64, RP, 128>(shape, args, stream);
    });
  });
}

}  // namespace punica::cuda::lora_detail
