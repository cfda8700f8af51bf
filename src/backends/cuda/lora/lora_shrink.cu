// SGMV shrink: v[t, i, :r] = x[t, :] @ A_{slot,i}^T for the tokens of each segment, on tensor cores
// (mma.sync m16n8k16, fp16/bf16 in, fp32 accumulate).
//
// Grid: x = slice * ksplit + split (split-K over h_in), y = token tiles of TM rows (strided loop), z = segment.
// A block streams its k-range of x[TM rows] and A[RP rows] through a 4-stage cp.async pipeline. Its 4 warps
// split the tile as WM (row groups of 16) x WN (rank groups) x WK (k-steps of each stage), then combine the
// WK partial tiles in shared memory so the global writes are coalesced rows of v.
// With ksplit > 1 each split writes its partial tile to the workspace; lora_reduce_kernel (or, for small
// decode batches in lora_add, the expand kernel) sums them in split order, so results do not depend on
// timing. Under PDL the block loads its first A stages before waiting for the previous kernel.
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"
#include "backends/cuda/lora/lora_launch.cuh"

namespace punica::cuda::lora_detail {
namespace {


template <int TM, int RP, int KS_>
struct ShrinkLayout {
  // 4 stages in flight; 3 for the big prefill tiles so that 4 blocks fit on an SM (Nsight Compute: 3 stages
  // of 128-row tiles left 12% occupancy)
  static constexpr int kStages = (TM == 64 && RP >= 64) ? 3 : 4;
  static constexpr int KS = KS_;
  static constexpr int kRowPitch = KS + 8;  // halves; rows 16 bytes off a bank multiple: ldmatrix conflict-free
  static constexpr int WM = TM / 16;
  static constexpr int WN = (4 / WM) < (RP / 16) ? (4 / WM) : (RP / 16);
  static constexpr int WK = 4 / (WM * WN);
  static constexpr int kRanksPerWarp = RP / WN;        // multiple of 16
  static constexpr int kRedPitch = RP + 4;             // floats
  static constexpr int kPipeBytes = kStages * (TM + RP) * kRowPitch * 2;
  static constexpr int kRedBytes = WK * TM * kRedPitch * 4;
  static constexpr int kSmemBytes = kPipeBytes > kRedBytes ? kPipeBytes : kRedBytes;
  static_assert(WM * WN * WK == 4, "4 warps");
};

template <typename T, int TM, int RP, int KS_>
__global__ void __launch_bounds__(kThreads) lora_shrink_kernel(const ShrinkArgs p) {
  using L = ShrinkLayout<TM, RP, KS_>;
  constexpr int kStages = L::kStages;
  constexpr int KS = L::KS;
  constexpr int kRowPitch = L::kRowPitch;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sx = reinterpret_cast<T*>(smem);                         // [kStages][TM][kRowPitch]
  T* sa = sx + kStages * TM * kRowPitch;                      // [kStages][RP][kRowPitch]
  float* red = reinterpret_cast<float*>(smem);                // [WK][TM][kRedPitch], after the main loop

  // Segment metadata, slot tables and A are never written by the LoRA kernels that may still be running
  // (PDL): read them, and start loading A, before griddep_wait. x is read only after it.
  const int seg = blockIdx.z;
  const int slice = blockIdx.x / p.ksplit;
  const int split = blockIdx.x % p.ksplit;
  const int slot = p.seg.seg_slot[seg];
  const T* a = slot >= 0 ? static_cast<const T*>(p.a[slice][slot]) : nullptr;
  const int r = a ? min(p.rank[slice][slot], p.v_rank_stride) : 0;
  if (r <= 0) return;
  const int seg_begin = p.seg.seg_start[seg];
  const int seg_end = p.seg.seg_start[seg + 1];
  const int nk = (p.h_in + KS - 1) / KS;
  const int k_begin = split * p.ksteps_per_split;
  const int k_end = min(nk, k_begin + p.ksteps_per_split);
  const T* x = static_cast<const T*>(p.x);
  const int T_ = p.seg.num_tokens;
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp % L::WM, wn = (warp / L::WM) % L::WN, wk = warp / (L::WM * L::WN);
  constexpr int kNJ = L::kRanksPerWarp / 16;  // 16-rank groups per warp

  auto load_a = [&](int stage, int ks) {
    const int k0 = ks * KS;
    constexpr int kChunks = KS / 8;
    T* da = sa + stage * RP * kRowPitch;
    for (int c = tid; c < RP * kChunks; c += kThreads) {
      const int j = c / kChunks, k = k0 + (c % kChunks) * 8;
      const bool ok = j < r && k < p.h_in;
      cp_async_16(da + j * kRowPitch + (c % kChunks) * 8, ok ? a + static_cast<int64_t>(j) * p.h_in + k : a, ok ? 16 : 0);
    }
  };
  auto load_x = [&](int stage, int ks, int t0, int rows) {
    const int k0 = ks * KS;
    constexpr int kChunks = KS / 8;
    T* dx = sx + stage * TM * kRowPitch;
    for (int c = tid; c < TM * kChunks; c += kThreads) {
      const int row = c / kChunks, k = k0 + (c % kChunks) * 8;
      const bool ok = row < rows && k < p.h_in;
      cp_async_16(dx + row * kRowPitch + (c % kChunks) * 8, ok ? x + (t0 + row) * p.x_stride + k : x, ok ? 16 : 0);
    }
  };

  bool first = true;
  const int t_first = seg_begin + blockIdx.y * TM;
  // The grid covers the longest segment; tiles past this one's end leave before the wait (they would hold a
  // block slot until the previous kernel ends).
  if (t_first >= seg_end) return;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s)
    if (k_begin + s < k_end) load_a(s, k_begin + s);
  griddep_wait();
  griddep_launch_dependents();

  for (int t0 = t_first; t0 < seg_end; t0 += gridDim.y * TM) {
    const int rows = min(TM, seg_end - t0);

    float acc[kNJ * 2][4];
#pragma unroll
    for (int i = 0; i < kNJ * 2; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;

    // The first tile's A stages were issued before the wait; they join stage 0's commit group.
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      if (k_begin + s < k_end) {
        if (!first) load_a(s, k_begin + s);
        load_x(s, k_begin + s, t0, rows);
      }
      cp_async_commit();
    }
    first = false;
    for (int ks = k_begin; ks < k_end; ++ks) {
      cp_async_wait<kStages - 2>();
      __syncthreads();
      const int next = ks + kStages - 1;
      if (next < k_end) {
        load_a((next - k_begin) % kStages, next);
        load_x((next - k_begin) % kStages, next, t0, rows);
      }
      cp_async_commit();
      const int stage = (ks - k_begin) % kStages;
      const T* cx = sx + stage * TM * kRowPitch + (wm * 16) * kRowPitch;
      const T* ca = sa + stage * RP * kRowPitch + (wn * L::kRanksPerWarp) * kRowPitch;
#pragma unroll
      for (int kk = wk; kk < KS / 16; kk += L::WK) {
        uint32_t af[4];
        ldmatrix_x4(af, cx + (lane & 15) * kRowPitch + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int jj = 0; jj < kNJ; ++jj) {
          if ((wn * L::kRanksPerWarp + jj * 16) >= r) break;  // rank groups past r hold zeros
          uint32_t bf[4];
          ldmatrix_x4(bf, ca + (jj * 16 + (lane & 7) + (lane >> 4) * 8) * kRowPitch + kk * 16 + ((lane >> 3) & 1) * 8);
          MmaF16<T>::run(acc[jj * 2], af, bf);
          MmaF16<T>::run(acc[jj * 2 + 1], af, bf + 2);
        }
      }
    }
    cp_async_wait<0>();
    __syncthreads();  // the pipeline buffers become the reduction buffer

    {
      const int g = lane >> 2, q = lane & 3;
      float* dst = red + (wk * TM + wm * 16) * L::kRedPitch + wn * L::kRanksPerWarp;
#pragma unroll
      for (int n8 = 0; n8 < kNJ * 2; ++n8) {
        *reinterpret_cast<float2*>(dst + g * L::kRedPitch + n8 * 8 + 2 * q) = make_float2(acc[n8][0], acc[n8][1]);
        *reinterpret_cast<float2*>(dst + (g + 8) * L::kRedPitch + n8 * 8 + 2 * q) =
            make_float2(acc[n8][2], acc[n8][3]);
      }
    }
    __syncthreads();

    // ksplit == 1: the result; otherwise this split's partial sum, summed by lora_reduce_kernel or the expand.
    float* out = p.ksplit == 1 ? p.v + slice * p.v_rank_stride
                               : p.vpart + static_cast<int64_t>(split) * T_ * v_row + slice * p.v_rank_stride;
    for (int e = tid; e < TM * RP; e += kThreads) {
      const int row = e / RP, j = e % RP;
      if (row < rows && j < r) {
        float s = 0.f;
#pragma unroll
        for (int w = 0; w < L::WK; ++w) s += red[(w * TM + row) * L::kRedPitch + j];
        out[(t0 + row) * v_row + j] = s;
      }
    }
    __syncthreads();  // shared memory is reused by the next tile
  }
}

// v[t, i, :r] = sum over splits of the partials, in split order (deterministic). Grid (slices, chunks of
// reduce_rows() token rows, segments); a block's threads cover the (row, rank) pairs of a chunk, so all of
// them load (the first version, one row per block with threads over j < r, used 16 of 128 threads at r = 16
// and took 15.7 us under Nsight Compute for the 2 MB of partials of a 4 x 512 prefill, 2048 blocks).
__global__ void __launch_bounds__(kThreads) lora_reduce_kernel(const ShrinkArgs p) {
  const int seg = blockIdx.z, slice = blockIdx.x;
  const int slot = p.seg.seg_slot[seg];
  const void* a = slot >= 0 ? p.a[slice][slot] : nullptr;
  const int r = a ? min(p.rank[slice][slot], p.v_rank_stride) : 0;
  const int seg_begin = p.seg.seg_start[seg];
  const int seg_end = p.seg.seg_start[seg + 1];
  if (r <= 0 || seg_begin + static_cast<int>(blockIdx.y) * reduce_rows(p.v_rank_stride) >= seg_end) return;
  griddep_wait();
  griddep_launch_dependents();
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  const int64_t part_stride = static_cast<int64_t>(p.seg.num_tokens) * v_row;
  const int chunk = reduce_rows(p.v_rank_stride);
  for (int t0 = seg_begin + blockIdx.y * chunk; t0 < seg_end; t0 += gridDim.y * chunk) {
    const int n = min(chunk, seg_end - t0) * r;
    for (int e = threadIdx.x; e < n; e += kThreads) {
      const int row = e / r, j = e - row * r;
      const int64_t off = (t0 + row) * v_row + slice * p.v_rank_stride + j;
      const float* src = p.vpart + off;
      float s0 = 0.f, s1 = 0.f, s2 = 0.f, s3 = 0.f;
      int sp = 0;
      for (; sp + 4 <= p.ksplit; sp += 4) {  // four independent loads in flight
        s0 += src[(sp + 0) * part_stride];
        s1 += src[(sp + 1) * part_stride];
        s2 += src[(sp + 2) * part_stride];
        s3 += src[(sp + 3) * part_stride];
      }
      for (; sp < p.ksplit; ++sp) s0 += src[sp * part_stride];
      p.v[off] = (s0 + s1) + (s2 + s3);
    }
  }
}

template <typename T, int TM, int RP, int KS = shrink_step_k(TM, RP)>
Status launch(const LaunchShape& shape, const ShrinkArgs& args, cudaStream_t stream) {
  using L = ShrinkLayout<TM, RP, KS>;
  auto kernel = lora_shrink_kernel<T, TM, RP, KS>;
  PUNICA_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::kSmemBytes));
  return launch_kernel(kernel, shape.grid, dim3(kThreads), L::kSmemBytes, shape.pdl, 0, stream,
                       "lora_shrink_kernel launch", args);
}

}  // namespace

int lora_shrink_blocks_per_sm(int tm, int rp, int ks) {
  int n = 0;
  auto occ = [&](auto kernel, int smem) {
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, smem) != cudaSuccess)
      n = 1;
  };
#define PUNICA_OCC(TM_, RP_, KS_)                                                         \
  if (tm == TM_ && rp == RP_ && ks == KS_)                                                \
    occ(lora_shrink_kernel<__half, TM_, RP_, KS_>, ShrinkLayout<TM_, RP_, KS_>::kSmemBytes);
#define PUNICA_OCC2(TM_, RP_) PUNICA_OCC(TM_, RP_, shrink_step_k(TM_, RP_))
  PUNICA_OCC2(16, 16) PUNICA_OCC2(16, 32) PUNICA_OCC2(16, 64) PUNICA_OCC2(16, 128)
  PUNICA_OCC2(64, 16) PUNICA_OCC2(64, 32) PUNICA_OCC2(64, 64) PUNICA_OCC2(64, 128)
  PUNICA_OCC(16, 64, shrink_step_k(16, 64, true))
#undef PUNICA_OCC2
#undef PUNICA_OCC
  return n > 0 ? n : 1;
}

Status lora_launch_reduce(const LaunchShape& shape, const ShrinkArgs& args, cudaStream_t stream) {
  return launch_kernel(lora_reduce_kernel, shape.grid, dim3(kThreads), 0, shape.pdl, 0, stream,
                       "lora_reduce_kernel launch", args);
}

Status lora_launch_shrink(DType dtype, const LaunchShape& shape, const ShrinkArgs& args, cudaStream_t stream) {
  return dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return dispatch_padded_rank(shape.rp, "lora_shrink", [&](auto rp) {
      constexpr int RP = decltype(rp)::value;
      if constexpr (RP == 64) {
        constexpr int kWide = shrink_step_k(16, 64, true);
        if (shape.tm == 16 && shape.ks == kWide) return launch<T, 16, RP, kWide>(shape, args, stream);
      }
      return shape.tm == 16 ? launch<T, 16, RP>(shape, args, stream) : launch<T, 64, RP>(shape, args, stream);
    });
  });
}

}  // namespace punica::cuda::lora_detail
