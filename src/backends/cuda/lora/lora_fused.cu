// Decode-sized LoRA add-on in ONE launch: y += scale * (x A^T) B^T for batches whose segments are at most
// 128 tokens (up to 8 tiles of 16 rows per segment) and whose adapters are small.
//
// Two kernels (shrink, expand) cost a drain-and-launch between them (~2-3 us on H100 even with PDL), more
// than the whole byte floor of a small batch. Here a persistent grid (never more blocks than can be
// resident at once, so the wait below cannot deadlock) first runs the shrink items (split-K chunk, slice,
// segment, tile) and adds each partial v tile into an fp32 accumulator with atomics, counts itself in at a
// grid-wide arrival counter, and once every block has arrived runs the expand items (column tile, segment,
// tile) reading v from the accumulator. B and A's first stages are loaded before griddep_wait.
//
// The accumulator is double-buffered in the workspace: a call adds into buffer (call count & 1) and, during
// its expand phase, all blocks zero the other buffer (the previous call's, whose size it finds next to the
// counters), so the next call finds zeros without a serial clean-up. The last block out resets the counters
// and advances the call count. fp32 atomics make v's summation order vary between runs (~1e-7 relative).
#include <algorithm>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"
#include "backends/cuda/lora/lora_launch.cuh"

namespace punica::cuda::lora_detail {
namespace {

constexpr int kStages = 4;
constexpr int TM = 16;

template <int RP, int NB>
struct FusedLayout {
  static constexpr int KS = shrink_step_k(TM, RP);  // must match the host's split plan
  static constexpr int kRowPitch = KS + 8;
  static constexpr int WN = 4 < RP / 16 ? 4 : RP / 16;  // shrink: warps over rank groups
  static constexpr int WK = 4 / WN;                     // shrink: warps over k-steps
  static constexpr int kRanksPerWarp = RP / WN;
  static constexpr int kRedPitch = RP + 4;
  static constexpr int kPipeBytes = kStages * (TM + RP) * kRowPitch * 2;
  static constexpr int kRedBytes = WK * TM * kRedPitch * 4;
  static constexpr int kShrinkBytes = kPipeBytes > kRedBytes ? kPipeBytes : kRedBytes;
  static constexpr int kColsPerWarp = NB / 4;  // expand: warps over columns
  static constexpr int kNT = kColsPerWarp / 8;
  static constexpr int kBPitch = RP + 8;
  static constexpr int kExpandBytes = (NB + 2 * TM) * kBPitch * 2;
  static constexpr int kSmemBytes = kShrinkBytes + kExpandBytes;
  static_assert(kNT % 2 == 0, "n8 tiles come in pairs");
};

template <typename T, int RP, int NB>
__global__ void __launch_bounds__(kThreads) lora_fused_decode_kernel(const ShrinkArgs sp, const ExpandArgs ep,
                                                                     unsigned* sync, float* acc_base, int acc_floats,
                                                                     int tiles, int n_shrink, int n_expand) {
  using L = FusedLayout<RP, NB>;
  constexpr int KS = L::KS;
  constexpr int kRowPitch = L::kRowPitch;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sx = reinterpret_cast<T*>(smem);
  T* sa = sx + kStages * TM * kRowPitch;
  float* red = reinterpret_cast<float*>(smem);
  T* sb = reinterpret_cast<T*>(smem + L::kShrinkBytes);
  T* svh = sb + NB * L::kBPitch;
  T* svl = svh + TM * L::kBPitch;
  __shared__ float s_red[kThreads];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, q = lane & 3;
  const int T_ = sp.seg.num_tokens;
  const int64_t v_row = static_cast<int64_t>(sp.num_slices) * sp.v_rank_stride;
  const int ntiles = ep.ntile_begin[ep.num_slices];

  // ---- expand item description (slot tables and B are safe to read before the wait)
  struct ExpandItem {
    int slice, n0, rows, t0, r;
    float scale;
    const T* b;
  };
  auto expand_item = [&](int e) {
    ExpandItem it{};
    const int tile = e % ntiles, rest = e / ntiles, seg = rest / tiles, ttile = rest % tiles;
    int slice = 0;
    while (slice + 1 < ep.num_slices && tile >= ep.ntile_begin[slice + 1]) ++slice;
    it.slice = slice;
    it.n0 = (tile - ep.ntile_begin[slice]) * NB;
    const int slot = ep.seg.seg_slot[seg];
    it.b = slot >= 0 ? static_cast<const T*>(ep.b[slice][slot]) : nullptr;
    it.r = it.b ? min(ep.rank[slice][slot], ep.v_rank_stride) : 0;
    it.t0 = ep.seg.seg_start[seg] + ttile * TM;
    it.rows = min(TM, ep.seg.seg_start[seg + 1] - it.t0);
    it.scale = it.r > 0 ? ep.scale[slice][slot] : 0.f;
    return it;
  };
  auto load_b = [&](const ExpandItem& it) {
    const int h_out = ep.h_out[it.slice];
    if ((it.r & 7) == 0 && (reinterpret_cast<uintptr_t>(it.b) & 15) == 0) {
      constexpr int kChunks = RP / 8;
      for (int c = tid; c < NB * kChunks; c += kThreads) {
        const int n = c / kChunks, k = (c % kChunks) * 8;
        const bool ok = it.n0 + n < h_out && k < it.r;
        cp_async_16(sb + n * L::kBPitch + k, ok ? it.b + static_cast<int64_t>(it.n0 + n) * it.r + k : it.b, ok ? 16 : 0);
      }
    } else {
      for (int e = tid; e < NB * RP; e += kThreads) {
        const int n = e / RP, k = e % RP;
        sb[n * L::kBPitch + k] =
            (it.n0 + n < h_out && k < it.r) ? it.b[static_cast<int64_t>(it.n0 + n) * it.r + k] : T(0.f);
      }
    }
    cp_async_commit();
  };
  T* y = static_cast<T*>(ep.y);
  uint32_t y_old[L::kNT][2];
  auto load_y = [&](const ExpandItem& it) {
    const int h_out = ep.h_out[it.slice];
    const int col_base = ep.y_col_offset[it.slice] + it.n0 + warp * L::kColsPerWarp;
#pragma unroll
    for (int nt = 0; nt < L::kNT; ++nt)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = g + half * 8;
        const int n = it.n0 + warp * L::kColsPerWarp + nt * 8 + 2 * q;
        y_old[nt][half] = (row < it.rows && n < h_out)
                              ? *reinterpret_cast<const uint32_t*>(y + (it.t0 + row) * ep.y_stride + col_base + nt * 8 + 2 * q)
                              : 0u;
      }
  };

  // ---- shrink item description
  struct ShrinkItem {
    int slice, split, t0, rows, r, k_begin, k_end;
    const T* a;
  };
  const int nk = (sp.h_in + KS - 1) / KS;
  auto shrink_item = [&](int i) {
    ShrinkItem it{};
    it.split = i % sp.ksplit;
    const int rest = i / sp.ksplit;
    it.slice = rest % sp.num_slices;
    const int seg = (rest / sp.num_slices) / tiles, ttile = (rest / sp.num_slices) % tiles;
    const int slot = sp.seg.seg_slot[seg];
    it.a = slot >= 0 ? static_cast<const T*>(sp.a[it.slice][slot]) : nullptr;
    it.r = it.a ? min(sp.rank[it.slice][slot], sp.v_rank_stride) : 0;
    it.t0 = sp.seg.seg_start[seg] + ttile * TM;
    it.rows = min(TM, sp.seg.seg_start[seg + 1] - it.t0);
    it.k_begin = it.split * sp.ksteps_per_split;
    it.k_end = min(nk, it.k_begin + sp.ksteps_per_split);
    return it;
  };
  const T* x = static_cast<const T*>(sp.x);
  auto load_a = [&](const ShrinkItem& it, int stage, int ks) {
    const int k0 = ks * KS;
    constexpr int kChunks = KS / 8;
    T* da = sa + stage * RP * kRowPitch;
    for (int c = tid; c < RP * kChunks; c += kThreads) {
      const int j = c / kChunks, k = k0 + (c % kChunks) * 8;
      const bool ok = j < it.r && k < sp.h_in;
      cp_async_16(da + j * kRowPitch + (c % kChunks) * 8, ok ? it.a + static_cast<int64_t>(j) * sp.h_in + k : it.a,
                  ok ? 16 : 0);
    }
  };
  auto load_x = [&](const ShrinkItem& it, int stage, int ks) {
    const int k0 = ks * KS;
    constexpr int kChunks = KS / 8;
    T* dx = sx + stage * TM * kRowPitch;
    for (int c = tid; c < TM * kChunks; c += kThreads) {
      const int row = c / kChunks, k = k0 + (c % kChunks) * 8;
      const bool ok = row < it.rows && k < sp.h_in;
      cp_async_16(dx + row * kRowPitch + (c % kChunks) * 8, ok ? x + (it.t0 + row) * sp.x_stride + k : x, ok ? 16 : 0);
    }
  };

  // ---- prologue before the wait: B of the first expand item, A stages of the first shrink item
  const bool has_e0 = static_cast<int>(blockIdx.x) < n_expand;
  ExpandItem e0{};
  if (has_e0) {
    e0 = expand_item(blockIdx.x);
    if (e0.r > 0 && e0.rows > 0) load_b(e0);
  }
  const bool has_s0 = static_cast<int>(blockIdx.x) < n_shrink;
  ShrinkItem s0{};
  if (has_s0) {
    s0 = shrink_item(blockIdx.x);
    if (s0.r > 0 && s0.rows > 0)
      for (int s = 0; s < kStages - 1; ++s)
        if (s0.k_begin + s < s0.k_end) load_a(s0, s, s0.k_begin + s);
  }
  griddep_wait();
  griddep_launch_dependents();
  if (has_e0 && e0.r > 0 && e0.rows > 0) load_y(e0);
  const unsigned parity = *reinterpret_cast<volatile unsigned*>(&sync[2]) & 1u;
  float* acc_v = acc_base + parity * acc_floats;            // this call's accumulator
  float* acc_other = acc_base + (parity ^ 1u) * acc_floats;  // the previous call's, to be zeroed

  // ---- shrink phase
  const int wn = warp % L::WN, wk = warp / L::WN;
  constexpr int kNJ = L::kRanksPerWarp / 16;
  for (int i = blockIdx.x; i < n_shrink; i += gridDim.x) {
    const bool first = i == static_cast<int>(blockIdx.x);
    const ShrinkItem it = first ? s0 : shrink_item(i);
    if (it.r <= 0 || it.rows <= 0) continue;
    float acc[kNJ * 2][4];
#pragma unroll
    for (int n8 = 0; n8 < kNJ * 2; ++n8) acc[n8][0] = acc[n8][1] = acc[n8][2] = acc[n8][3] = 0.f;
    for (int s = 0; s < kStages - 1; ++s) {
      if (it.k_begin + s < it.k_end) {
        if (!first) load_a(it, s, it.k_begin + s);
        load_x(it, s, it.k_begin + s);
      }
      cp_async_commit();
    }
    for (int ks = it.k_begin; ks < it.k_end; ++ks) {
      cp_async_wait<kStages - 2>();
      __syncthreads();
      const int next = ks + kStages - 1;
      if (next < it.k_end) {
        load_a(it, (next - it.k_begin) % kStages, next);
        load_x(it, (next - it.k_begin) % kStages, next);
      }
      cp_async_commit();
      const int stage = (ks - it.k_begin) % kStages;
      const T* cx = sx + stage * TM * kRowPitch;
      const T* ca = sa + stage * RP * kRowPitch + (wn * L::kRanksPerWarp) * kRowPitch;
#pragma unroll
      for (int kk = wk; kk < KS / 16; kk += L::WK) {
        uint32_t af[4];
        ldmatrix_x4(af, cx + (lane & 15) * kRowPitch + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int jj = 0; jj < kNJ; ++jj) {
          if (wn * L::kRanksPerWarp + jj * 16 >= it.r) break;
          uint32_t bf[4];
          ldmatrix_x4(bf, ca + (jj * 16 + (lane & 7) + (lane >> 4) * 8) * kRowPitch + kk * 16 + ((lane >> 3) & 1) * 8);
          MmaF16<T>::run(acc[jj * 2], af, bf);
          MmaF16<T>::run(acc[jj * 2 + 1], af, bf + 2);
        }
      }
    }
    cp_async_wait<0>();
    __syncthreads();
    float* dst = red + (wk * TM) * L::kRedPitch + wn * L::kRanksPerWarp;
#pragma unroll
    for (int n8 = 0; n8 < kNJ * 2; ++n8) {
      *reinterpret_cast<float2*>(dst + g * L::kRedPitch + n8 * 8 + 2 * q) = make_float2(acc[n8][0], acc[n8][1]);
      *reinterpret_cast<float2*>(dst + (g + 8) * L::kRedPitch + n8 * 8 + 2 * q) = make_float2(acc[n8][2], acc[n8][3]);
    }
    __syncthreads();
    float* out = acc_v + it.slice * sp.v_rank_stride;
    for (int e = tid; e < TM * RP; e += kThreads) {
      const int row = e / RP, j = e % RP;
      if (row < it.rows && j < it.r) {
        float s = 0.f;
#pragma unroll
        for (int w = 0; w < L::WK; ++w) s += red[(w * TM + row) * L::kRedPitch + j];
        atomicAdd(out + (it.t0 + row) * v_row + j, s);
      }
    }
    __syncthreads();
  }

  // ---- grid-wide arrival: every block has written all of its partial sums
  __threadfence();
  __syncthreads();
  if (tid == 0) {
    atomicAdd(&sync[0], 1u);
    while (*reinterpret_cast<volatile unsigned*>(&sync[0]) < gridDim.x) __nanosleep(32);
  }
  __syncthreads();
  __threadfence();
  {  // zero the previous call's accumulator (nobody reads it any more) for the next call
    const int n_other = static_cast<int>(*reinterpret_cast<volatile unsigned*>(&sync[4 + (parity ^ 1u)]));
    for (int i = blockIdx.x * kThreads + tid; i < n_other; i += gridDim.x * kThreads) acc_other[i] = 0.f;
  }

  // ---- expand phase
  for (int e = blockIdx.x; e < n_expand; e += gridDim.x) {
    const bool first = e == static_cast<int>(blockIdx.x);
    const ExpandItem it = first ? e0 : expand_item(e);
    if (it.r <= 0 || it.rows <= 0) continue;
    if (!first) {
      load_b(it);
      load_y(it);
    }
    // the first column tile of the slice also stores v
    expand_fill_v<T, TM, RP, kThreads>(svh, svl, L::kBPitch, s_red, acc_v, sp.v, nullptr, 0, 1, v_row,
                                       it.slice * sp.v_rank_stride, it.t0, it.rows, it.r, it.n0 == 0, split_hi_lo<T>);
    cp_async_wait<0>();
    __syncthreads();
    float acc[L::kNT][4];
#pragma unroll
    for (int i = 0; i < L::kNT; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    const T* cb = sb + (warp * L::kColsPerWarp) * L::kBPitch;
#pragma unroll
    for (int kk = 0; kk < RP / 16; ++kk) {
      if (kk * 16 >= it.r) break;
      uint32_t ah[4], al[4];
      ldmatrix_x4(ah, svh + (lane & 15) * L::kBPitch + kk * 16 + (lane >> 4) * 8);
      ldmatrix_x4(al, svl + (lane & 15) * L::kBPitch + kk * 16 + (lane >> 4) * 8);
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
    const int h_out = ep.h_out[it.slice];
    const int col_base = ep.y_col_offset[it.slice] + it.n0 + warp * L::kColsPerWarp;
#pragma unroll
    for (int nt = 0; nt < L::kNT; ++nt) {
      const int n = it.n0 + warp * L::kColsPerWarp + nt * 8 + 2 * q;
      if (n >= h_out) continue;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = g + half * 8;
        if (row >= it.rows) continue;
        uint32_t* dst = reinterpret_cast<uint32_t*>(y + (it.t0 + row) * ep.y_stride + col_base + nt * 8 + 2 * q);
        const float2 old = pair_to_float2(y_old[nt][half], T());
        *dst = float2_to_pair(old.x + it.scale * acc[nt][half * 2], old.y + it.scale * acc[nt][half * 2 + 1], T());
      }
    }
    __syncthreads();
  }

  // ---- the last block out resets the counters for the next call
  __syncthreads();
  if (tid == 0) {
    const unsigned done = atomicAdd(&sync[1], 1u);
    if (done == gridDim.x - 1) {
      sync[4 + parity] = static_cast<unsigned>(T_ * v_row);  // what the next call must zero
      sync[2] += 1u;
      atomicExch(&sync[0], 0u);
      atomicExch(&sync[1], 0u);
      __threadfence();
    }
  }
}

template <typename T, int RP, int NB>
Status launch(const FusedShape& fs, const ShrinkArgs& sa, const ExpandArgs& ea, cudaStream_t stream) {
  using L = FusedLayout<RP, NB>;
  auto kernel = lora_fused_decode_kernel<T, RP, NB>;
  PUNICA_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::kSmemBytes));
  int per_sm = 0;
  PUNICA_CUDA_RETURN_IF_ERROR(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, L::kSmemBytes));
  if (per_sm < 1) return internal_error("lora_fused_decode_kernel: does not fit on an SM");
  // Never more blocks than can be resident at once: the grid-wide wait relies on it.
  const int cap = per_sm * fs.sms;
  const int grid = std::max(1, std::min(cap, std::max(fs.n_shrink, fs.n_expand)));
  return launch_kernel(kernel, dim3(grid), dim3(kThreads), L::kSmemBytes, fs.pdl, 0, stream,
                       "lora_fused_decode_kernel launch", sa, ea, fs.sync, fs.acc, fs.acc_floats, fs.tiles, fs.n_shrink,
                       fs.n_expand);
}

}  // namespace

Status lora_launch_fused_decode(DType dtype, const FusedShape& fs, const ShrinkArgs& sa, const ExpandArgs& ea,
                                cudaStream_t stream) {
  return dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return dispatch_padded_rank(fs.rp, "lora_fused_decode", [&](auto rp) {
      constexpr int RP = decltype(rp)::value;
      return fs.nb == 64 ? launch<T, RP, 64>(fs, sa, ea, stream) : launch<T, RP, 128>(fs, sa, ea, stream);
    });
  });
}

}  // namespace punica::cuda::lora_detail
