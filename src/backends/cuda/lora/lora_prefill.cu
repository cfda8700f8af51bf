// Prefill kernel: the whole add-on of segments of many tokens in one launch, one block per 16-row token tile.
//
// Why: prefill is bound by x and y (4 x 512 tokens at h = 4096: x 16 MB, y 16 MB read + 16 MB written; the
// adapters are < 1 MB and stay in L2 for every tile of their segment). The two-kernel path (tiled shrink with
// split-K, reduce, tiled expand) ran at 51-61% of copy bandwidth per kernel on H100 and paid two launches, the
// split-K partials and a v round trip between them. Here a block streams its tile's x through a cp.async
// pipeline, keeps v in shared memory, then streams the tile's y (and B) through the same pipeline and writes
// y back, so each byte of x and y crosses DRAM once and no block waits for another.
//
// Block: 8 warps, tile of 16 token rows, one slice after the other.
//   Shrink: stages of KC h_in columns of x (16 rows) and A (RP rank rows); warp w takes the stage's
//   k16 steps w, w + 8, ... for all rank groups (mma.sync m16n8k16, fp32 accumulate); the 8 warps' tiles are summed in a
//   fixed order (deterministic), v is written to global memory and split into v_hi + v_lo (as in the tiled
//   expand, lora_device.cuh) for the expand.
//   Expand: stages of NC output columns: the y tile chunk and B rows; warp w owns NC / 8 of the columns;
//   y is updated in shared memory and written with 16-byte stores.
// PDL: the segment arrays, slot tables and the first slice's first A stages are read before griddep_wait
// (never written by a kernel this one may overlap), x and y after it.
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"
#include "backends/cuda/lora/lora_launch.cuh"

namespace punica::cuda::lora_detail {
namespace {

constexpr int kPrefillWarps = 8;
constexpr int kPrefillThreads = kPrefillWarps * 32;

// One block per SM holds the pipeline deep enough for ~30-40 KB of x (or y) in flight: with 128-column stages
// and 3 in flight (12 KB) the first build ran at 35.5 us for 4 x 512 tokens at r = 16, slower than the two
// kernels it replaces (30.3). A stages sit next to x in shared memory, so the larger ranks get narrower stages.
template <int RP>
struct PrefillLayout {
  static constexpr int KC = RP <= 32 ? 256 : 128;  // h_in columns per shrink stage: KC / 128 k16 steps per warp
  static constexpr int NC = RP <= 32 ? 256 : 128;  // output columns per expand stage: NC / 8 per warp
  static constexpr int kStages = RP <= 16 ? 6 : RP <= 32 ? 5 : RP <= 64 ? 8 : 5;
  static constexpr int kWarpSteps = KC / 16 / kPrefillWarps;
  static constexpr int kWarpCols = NC / kPrefillWarps;  // a multiple of 16
  static constexpr int kXPitch = KC + 8;  // halves; rows 16 bytes off a bank multiple: ldmatrix conflict-free
  static constexpr int kBPitch = RP + 8;  // halves: B rows, v_hi / v_lo rows
  static constexpr int kYPitch = NC + 8;
  static constexpr int kShrinkStage = (16 + RP) * kXPitch * 2;          // x rows, then A rows
  static constexpr int kExpandStage = 16 * kYPitch * 2 + NC * kBPitch * 2;  // y rows, then B rows
  static constexpr int kStageBytes = kShrinkStage > kExpandStage ? kShrinkStage : kExpandStage;
  static constexpr int kRedPitch = RP + 4;  // floats
  static constexpr int kRedBytes = kPrefillWarps * 16 * kRedPitch * 4;
  static constexpr int kPipeBytes = kStages * kStageBytes > kRedBytes ? kStages * kStageBytes : kRedBytes;
  static constexpr int kSmemBytes = kPipeBytes + 2 * 16 * kBPitch * 2;
  static_assert(kStageBytes % 16 == 0 && kPipeBytes % 16 == 0, "16-byte aligned stages");
  static_assert(kSmemBytes <= 227 * 1024, "one block per SM");
};

template <typename T, int RP>
__global__ void __launch_bounds__(kPrefillThreads, 1) lora_prefill_kernel(const AddArgs p) {
  using L = PrefillLayout<RP>;
  constexpr int S = L::kStages, KC = L::KC, NC = L::NC;
  extern __shared__ __align__(16) unsigned char smem[];
  float* red = reinterpret_cast<float*>(smem);  // [warps][16][kRedPitch], between the two phases
  T* svh = reinterpret_cast<T*>(smem + L::kPipeBytes);
  T* svl = svh + 16 * L::kBPitch;
  auto stage = [&](int s) { return reinterpret_cast<T*>(smem + s * L::kStageBytes); };

  const int seg = blockIdx.z;
  const int slot = p.seg.seg_slot[seg];
  if (slot < 0) return;
  const int seg_begin = p.seg.seg_start[seg];
  const int seg_end = p.seg.seg_start[seg + 1];
  const int t_first = seg_begin + static_cast<int>(blockIdx.x) * 16;
  if (t_first >= seg_end) return;  // the grid covers the longest segment
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, q = lane & 3;
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  const int nk = (p.h_in + KC - 1) / KC;

  auto load_a = [&](int s, int kc, const T* a, int r) {
    constexpr int kCh = KC / 8;
    T* sa = stage(s) + 16 * L::kXPitch;
    for (int c = tid; c < RP * kCh; c += kPrefillThreads) {
      const int j = c / kCh, k = kc * KC + (c % kCh) * 8;
      const bool ok = j < r && k < p.h_in;
      cp_async_16(sa + j * L::kXPitch + (c % kCh) * 8, ok ? a + static_cast<int64_t>(j) * p.h_in + k : a, ok ? 16 : 0);
    }
  };
  auto load_x = [&](int s, int kc, int t0, int rows) {
    constexpr int kCh = KC / 8;
    T* sx = stage(s);
    for (int c = tid; c < 16 * kCh; c += kPrefillThreads) {
      const int row = c / kCh, k = kc * KC + (c % kCh) * 8;
      const bool ok = row < rows && k < p.h_in;
      cp_async_16(sx + row * L::kXPitch + (c % kCh) * 8, ok ? x + (t0 + row) * p.x_stride + k : x, ok ? 16 : 0);
    }
  };
  // The y chunk of output columns [nc * NC, + NC) of the slice and the matching B rows. B rows are 16-byte
  // aligned only when r % 8 == 0 (and B is): otherwise element loads.
  auto load_yb = [&](int s, int nc, const T* b, int r, bool vec, int h_out, const T* yrow0, int rows) {
    T* sy = stage(s);
    T* sb = sy + 16 * L::kYPitch;
    constexpr int kYCh = NC / 8;
    for (int c = tid; c < 16 * kYCh; c += kPrefillThreads) {
      const int row = c / kYCh, n = nc * NC + (c % kYCh) * 8;
      const bool ok = row < rows && n < h_out;
      cp_async_16(sy + row * L::kYPitch + (c % kYCh) * 8, ok ? yrow0 + row * p.y_stride + n : y, ok ? 16 : 0);
    }
    if (vec) {
      constexpr int kBCh = RP / 8;
      for (int c = tid; c < NC * kBCh; c += kPrefillThreads) {
        const int n = c / kBCh, k = (c % kBCh) * 8, col = nc * NC + n;
        const bool ok = col < h_out && k < r;
        cp_async_16(sb + n * L::kBPitch + k, ok ? b + static_cast<int64_t>(col) * r + k : b, ok ? 16 : 0);
      }
    } else {
#pragma unroll 1
      for (int e = tid; e < NC * RP; e += kPrefillThreads) {
        const int n = e / RP, k = e % RP, col = nc * NC + n;
        sb[n * L::kBPitch + k] = col < h_out && k < r ? b[static_cast<int64_t>(col) * r + k] : T(0.f);
      }
    }
  };

  // The first slice with an adapter: its first A stages go out before the wait.
  int first_slice = 0;
  while (first_slice < p.num_slices && p.a[first_slice][slot] == nullptr) ++first_slice;
  if (first_slice == p.num_slices) return;
  {
    const T* a = static_cast<const T*>(p.a[first_slice][slot]);
    const int r = min(p.rank[first_slice][slot], p.v_rank_stride);
#pragma unroll
    for (int s = 0; s < S - 1; ++s)
      if (s < nk) load_a(s, (s + (t_first - seg_begin) / 16) % nk, a, r);
  }
  griddep_wait();
  griddep_launch_dependents();

  bool a_issued = true;
  for (int t0 = t_first; t0 < seg_end; t0 += gridDim.x * 16) {
    const int rows = min(16, seg_end - t0);
    // Tiles of one segment start their k chunks (and output chunks) at different offsets: all ~32 tiles of a
    // 512-token segment otherwise read the same A / B stage from the same L2 lines at the same time.
    const int tile = (t0 - seg_begin) / 16;
    for (int slice = first_slice; slice < p.num_slices; ++slice) {
      const T* a = static_cast<const T*>(p.a[slice][slot]);
      if (a == nullptr) continue;
      const int r = min(p.rank[slice][slot], p.v_rank_stride);

      // ---- shrink: v[16][RP] = x tile @ A^T
      float acc[RP / 8][4];
#pragma unroll
      for (int i = 0; i < RP / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
#pragma unroll
      for (int s = 0; s < S - 1; ++s) {
        if (s < nk) {
          if (!a_issued) load_a(s, (s + tile) % nk, a, r);
          load_x(s, (s + tile) % nk, t0, rows);
        }
        cp_async_commit();
      }
      a_issued = false;
      for (int kc = 0; kc < nk; ++kc) {
        cp_async_wait<S - 2>();
        __syncthreads();
        const int next = kc + S - 1;
        if (next < nk) {
          load_a(next % S, (next + tile) % nk, a, r);
          load_x(next % S, (next + tile) % nk, t0, rows);
        }
        cp_async_commit();
        const T* sx = stage(kc % S);
        const T* sa = sx + 16 * L::kXPitch;
#pragma unroll
        for (int ks = 0; ks < L::kWarpSteps; ++ks) {
          const int k16 = (ks * kPrefillWarps + warp) * 16;
          uint32_t af[4];
          ldmatrix_x4(af, sx + (lane & 15) * L::kXPitch + k16 + (lane >> 4) * 8);
#pragma unroll
          for (int jj = 0; jj < RP / 16; ++jj) {
            if (jj * 16 >= r) break;  // rank rows past r hold zeros
            uint32_t bf[4];
            ldmatrix_x4(bf, sa + (jj * 16 + (lane & 7) + (lane >> 4) * 8) * L::kXPitch + k16 + ((lane >> 3) & 1) * 8);
            MmaF16<T>::run(acc[2 * jj], af, bf);
            MmaF16<T>::run(acc[2 * jj + 1], af, bf + 2);
          }
        }
      }
      cp_async_wait<0>();
      __syncthreads();  // the pipeline buffers become the reduction buffer
#pragma unroll
      for (int n8 = 0; n8 < RP / 8; ++n8) {
        float* dst = red + (warp * 16 + g) * L::kRedPitch + n8 * 8 + 2 * q;
        *reinterpret_cast<float2*>(dst) = make_float2(acc[n8][0], acc[n8][1]);
        *reinterpret_cast<float2*>(dst + 8 * L::kRedPitch) = make_float2(acc[n8][2], acc[n8][3]);
      }
      __syncthreads();
      for (int e = tid; e < 16 * RP; e += kPrefillThreads) {
        const int row = e / RP, j = e % RP;
        float val = 0.f;
#pragma unroll
        for (int w = 0; w < kPrefillWarps; ++w) val += red[(w * 16 + row) * L::kRedPitch + j];
        T hi = T(0.f), lo = T(0.f);
        if (row < rows && j < r) {
          p.v[(t0 + row) * v_row + slice * p.v_rank_stride + j] = val;
          split_hi_lo<T>(val, hi, lo);
        }
        svh[row * L::kBPitch + j] = hi;
        svl[row * L::kBPitch + j] = lo;
      }
      __syncthreads();  // v tiles ready; the pipeline buffers are free again

      // ---- expand: y[16][h_out] += scale * v @ B^T
      const T* b = static_cast<const T*>(p.b[slice][slot]);
      if (b == nullptr) continue;
      const float scale = p.scale[slice][slot];
      const int h_out = p.h_out[slice];
      const bool vec = (r & 7) == 0 && (reinterpret_cast<uintptr_t>(b) & 15) == 0;
      T* yrow0 = y + t0 * p.y_stride + p.y_col_offset[slice];
      const int nn = (h_out + NC - 1) / NC;
#pragma unroll
      for (int s = 0; s < S - 1; ++s) {
        if (s < nn) load_yb(s, (s + tile) % nn, b, r, vec, h_out, yrow0, rows);
        cp_async_commit();
      }
      for (int nc = 0; nc < nn; ++nc) {
        cp_async_wait<S - 2>();
        __syncthreads();
        const int next = nc + S - 1;
        if (next < nn) load_yb(next % S, (next + tile) % nn, b, r, vec, h_out, yrow0, rows);
        cp_async_commit();
        T* sy = stage(nc % S);
        const T* sb = sy + 16 * L::kYPitch + (warp * L::kWarpCols) * L::kBPitch;
        constexpr int kNT = L::kWarpCols / 8;  // n8 tiles per warp
        float c2[kNT][4] = {};
#pragma unroll
        for (int kk = 0; kk < RP / 16; ++kk) {
          if (kk * 16 >= r) break;
          uint32_t ah[4], al[4];
          ldmatrix_x4(ah, svh + (lane & 15) * L::kBPitch + kk * 16 + (lane >> 4) * 8);
          ldmatrix_x4(al, svl + (lane & 15) * L::kBPitch + kk * 16 + (lane >> 4) * 8);
#pragma unroll
          for (int np = 0; np < kNT / 2; ++np) {
            uint32_t bf[4];
            ldmatrix_x4(bf, sb + (np * 16 + (lane & 7) + (lane >> 4) * 8) * L::kBPitch + kk * 16 + ((lane >> 3) & 1) * 8);
            MmaF16<T>::run(c2[2 * np], ah, bf);
            MmaF16<T>::run(c2[2 * np], al, bf);
            MmaF16<T>::run(c2[2 * np + 1], ah, bf + 2);
            MmaF16<T>::run(c2[2 * np + 1], al, bf + 2);
          }
        }
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            uint32_t* cell =
                reinterpret_cast<uint32_t*>(sy + (g + 8 * half) * L::kYPitch + warp * L::kWarpCols + nt * 8 + 2 * q);
            const float2 old = pair_to_float2(*cell, T());
            *cell = float2_to_pair(old.x + scale * c2[nt][2 * half], old.y + scale * c2[nt][2 * half + 1], T());
          }
        }
        __syncthreads();
        constexpr int kYCh = NC / 8;
        for (int c = tid; c < rows * kYCh; c += kPrefillThreads) {
          const int row = c / kYCh, n = (nc + tile) % nn * NC + (c % kYCh) * 8;
          if (n < h_out)
            *reinterpret_cast<uint4*>(yrow0 + row * p.y_stride + n) =
                *reinterpret_cast<const uint4*>(sy + row * L::kYPitch + (c % kYCh) * 8);
        }
      }
      cp_async_wait<0>();
      __syncthreads();  // the pipeline buffers and v tiles are reused by the next slice or tile
    }
  }
}

template <typename T, int RP>
Status launch(dim3 grid, bool pdl, const AddArgs& args, cudaStream_t stream) {
  using L = PrefillLayout<RP>;
  auto kernel = lora_prefill_kernel<T, RP>;
  PUNICA_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, L::kSmemBytes));
  return launch_kernel(kernel, grid, dim3(kPrefillThreads), L::kSmemBytes, pdl, 0, stream,
                       "lora_prefill_kernel launch", args);
}

}  // namespace

Status lora_launch_prefill(DType dtype, int rp, dim3 grid, bool pdl, const AddArgs& args, cudaStream_t stream) {
  return dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return dispatch_padded_rank(rp, "lora_prefill", [&](auto r) {
      return launch<T, decltype(r)::value>(grid, pdl, args, stream);
    });
  });
}

}  // namespace punica::cuda::lora_detail
