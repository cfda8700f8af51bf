// Streaming decode kernels (BGMV-style): shrink and expand for segments of a few tokens, where the add-on is
// a stream of adapter weights that each block reads once. The tiled kernels (lora_shrink.cu,
// lora_expand.cu) stage every weight tile in shared memory and reached 50-68% (shrink) and 44-82% (expand)
// of the copy bandwidth on the H100 decode rows; these load the weights straight from global memory into
// mma.sync fragments with 16-byte loads and keep a whole batch of them in flight per warp.
//
// The trick that makes direct loads possible: a dot product does not care about the order of k, so within
// each 32-column chunk the kernels map mma's k index to memory such that every lane's fragment is one
// 16-byte piece of a weight row. For mma.m16n8k16 a lane (g = lane / 4, q = lane % 4) holds B rows
// k = 2q, 2q+1 (b0) and 2q+8, 2q+9 (b1) of column n = g, and A columns with the same k. Lane q's piece
// covers memory columns 8q .. 8q+7 of the chunk; step 0 takes words 0 / 1 of it as b0 / b1, step 1 words
// 2 / 3. The activation fragment uses the same map (words of a 16-byte piece of the x or v row), so every
// memory column meets its own weight exactly once. With rank 16 (expand) the piece is 8 bytes: one step.
//
// Shrink grid: x = (slice, rank group of 8 rows, k split), y = token tiles of 16 rows (strided), z = segment.
// Each warp reads 8 rank rows x 32-column chunks (512 bytes per instruction, each row's chunks in order),
// x comes through shared memory, the 4 warps' partial tiles are summed in a fixed order. ksplit > 1 writes
// partials (summed by the expand or lora_reduce_kernel, in split order: deterministic).
// Expand grid: x = column tiles of NB outputs over all slices, y = token tiles, z = segment. Each warp holds
// all of its B rows (NB / 4 columns, 8 at a time: a contiguous run of 8 rows) in registers, loaded before
// griddep_wait; y moves through shared memory with 16-byte copies.
#include <type_traits>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"
#include "backends/cuda/lora/lora_launch.cuh"

namespace punica::cuda::lora_detail {
namespace {

constexpr int kChunk = 32;  // h_in columns per shrink chunk: 4 lanes x 8 halves of one rank row

// Read-only 16 / 8-byte loads of weights (never written while a kernel runs).
__device__ __forceinline__ uint4 ldg16(const void* p) { return __ldg(static_cast<const uint4*>(p)); }
__device__ __forceinline__ uint2 ldg8(const void* p) { return __ldg(static_cast<const uint2*>(p)); }

__device__ __forceinline__ uint32_t pack2(uint16_t lo, uint16_t hi) { return lo | (uint32_t{hi} << 16); }

// 8 (kHalves = 8) or 4 halves of a weight row starting at element j0, zero past `valid` elements; `vec`: the
// row is 16-byte (8-byte) aligned at j0, so one vector load does it.
template <int kHalves>
__device__ __forceinline__ auto load_piece(const uint16_t* row, int j0, int valid, bool vec) {
  using Piece = std::conditional_t<kHalves == 8, uint4, uint2>;
  Piece out{};
  if (j0 >= valid) return out;
  if (vec && j0 + kHalves <= valid) {
    if constexpr (kHalves == 8) return ldg16(row + j0);
    else return ldg8(row + j0);
  }
  uint16_t h[8] = {};
#pragma unroll
  for (int e = 0; e < kHalves; ++e) h[e] = j0 + e < valid ? __ldg(row + j0 + e) : uint16_t{0};
  if constexpr (kHalves == 8) {
    out.x = pack2(h[0], h[1]);
    out.y = pack2(h[2], h[3]);
    out.z = pack2(h[4], h[5]);
    out.w = pack2(h[6], h[7]);
  } else {
    out.x = pack2(h[0], h[1]);
    out.y = pack2(h[2], h[3]);
  }
  return out;
}

template <typename T, bool kTall>
__global__ void __launch_bounds__(kThreads) lora_stream_shrink_kernel(const ShrinkArgs p) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sx = reinterpret_cast<T*>(smem);  // [x_rows][x_pitch]: one batch's columns of the token tile
  float* red = reinterpret_cast<float*>(smem + p.x_rows * p.x_pitch * sizeof(T));  // [4 warps][16][8]

  // Metadata, slot tables and A are not written by the kernel this one may overlap (PDL): read before the wait.
  const int seg = blockIdx.z;
  const int per_slice = p.rank_groups * p.ksplit;
  const int slice = blockIdx.x / per_slice;
  const int group = (blockIdx.x % per_slice) / p.ksplit;
  const int split = blockIdx.x % p.ksplit;
  const int slot = p.seg.seg_slot[seg];
  const uint16_t* a = slot >= 0 ? static_cast<const uint16_t*>(p.a[slice][slot]) : nullptr;
  const int r = a ? min(p.rank[slice][slot], p.v_rank_stride) : 0;
  if (r <= group * 8) return;  // no adapter, or this group of 8 rank rows is past the rank
  const int seg_begin = p.seg.seg_start[seg];
  const int seg_end = p.seg.seg_start[seg + 1];
  const int nchunks = (p.h_in + kChunk - 1) / kChunk;
  const int c_begin = split * p.ksteps_per_split;
  const int c_end = min(nchunks, c_begin + p.ksteps_per_split);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, q = lane & 3;
  const int n = group * 8 + g;  // this lane's rank row
  const uint16_t* arow = n < r ? a + static_cast<int64_t>(n) * p.h_in : nullptr;
  // Warp w takes chunks c_begin + w + 4 i: the block reads 128 consecutive columns of 8 rows per step.
  const int my = max(0, (c_end - c_begin - warp + 3) / 4);
  constexpr int kBatch = kStreamShrinkBatch;
  uint4 wa[kBatch];
  auto load_a = [&](int i0) {
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = i0 + u;
      const int col = (c_begin + warp + 4 * i) * kChunk + 8 * q;
      wa[u] = (i < my && arow != nullptr && col < p.h_in) ? ldg16(arow + col) : uint4{};
    }
  };

  // Tiles past the segment's end (the grid covers the longest segment) leave before the wait: they would
  // hold a block slot until the previous kernel ends.
  const int t_first = seg_begin + blockIdx.y * 16;
  if (t_first >= seg_end) return;
  load_a(0);
  griddep_wait();
  griddep_launch_dependents();

  const T* x = static_cast<const T*>(p.x);
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  float* out = p.ksplit == 1 ? p.v + slice * p.v_rank_stride
                             : p.vpart + static_cast<int64_t>(split) * p.seg.num_tokens * v_row + slice * p.v_rank_stride;
  bool first = true;
  for (int t0 = t_first; t0 < seg_end; t0 += gridDim.y * 16) {
    // x_rows = min(16, longest adapted segment) from the host; a segment longer than the caller said loses
    // its extra rows (as in the other kernels) instead of overrunning the staged x tile.
    const int rows = min(min(16, seg_end - t0), p.x_rows);
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int i0 = 0; i0 < max(1, (c_end - c_begin + 3) / 4); i0 += kBatch) {
      // this batch covers block chunks [c_begin + 4 i0, + 4 kBatch): stage those columns of x
      const int k_lo = (c_begin + 4 * i0) * kChunk;
      const int k_hi = min(p.h_in, min(c_end, c_begin + 4 * (i0 + kBatch)) * kChunk);
      const int kc = (k_hi - k_lo) / 8;  // 16-byte pieces per row (h_in % 8 == 0)
      for (int c = tid; c < rows * kc; c += kThreads) {
        const int row = c / kc, cc = c - row * kc;
        cp_async_16(sx + row * p.x_pitch + cc * 8, x + (t0 + row) * p.x_stride + k_lo + cc * 8, 16);
      }
      cp_async_commit();
      if (!first) load_a(i0);
      first = false;
      cp_async_wait<0>();
      __syncthreads();
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int i = i0 + u;
        if (i >= my) break;
        const int lc = (warp + 4 * u) * kChunk + 8 * q;  // column within the staged batch
        const bool in = k_lo + lc < k_hi;
        const uint4 xa = in && g < rows ? *reinterpret_cast<const uint4*>(sx + g * p.x_pitch + lc) : uint4{};
        uint4 xb{};
        if constexpr (kTall) {
          if (in && g + 8 < rows) xb = *reinterpret_cast<const uint4*>(sx + (g + 8) * p.x_pitch + lc);
        }
        const uint32_t a0[4] = {xa.x, xb.x, xa.y, xb.y}, b0[2] = {wa[u].x, wa[u].y};
        MmaF16<T>::run(acc, a0, b0);
        const uint32_t a1[4] = {xa.z, xb.z, xa.w, xb.w}, b1[2] = {wa[u].z, wa[u].w};
        MmaF16<T>::run(acc, a1, b1);
      }
      __syncthreads();  // sx is restaged by the next batch
    }
    // acc: token rows g and g + 8, rank columns 2q, 2q + 1 of the group; sum the 4 warps in a fixed order
    red[(warp * 16 + g) * 8 + 2 * q] = acc[0];
    red[(warp * 16 + g) * 8 + 2 * q + 1] = acc[1];
    red[(warp * 16 + g + 8) * 8 + 2 * q] = acc[2];
    red[(warp * 16 + g + 8) * 8 + 2 * q + 1] = acc[3];
    __syncthreads();
    {
      const int row = tid >> 3, j = tid & 7;  // 128 threads = 16 rows x 8 ranks
      if (row < rows && group * 8 + j < r)
        out[(t0 + row) * v_row + group * 8 + j] =
            ((red[row * 8 + j] + red[(16 + row) * 8 + j]) + red[(32 + row) * 8 + j]) + red[(48 + row) * 8 + j];
    }
    __syncthreads();  // red and sx are reused by the next tile
  }
}

template <typename T, int RP, int NB, bool kTall>
__global__ void __launch_bounds__(kThreads) lora_stream_expand_kernel(const ExpandArgs p) {
  constexpr int kGroups = NB / 32;                 // 8-column groups per warp
  constexpr int kPieces = RP == 16 ? 1 : RP / 32;  // weight pieces per column and lane
  constexpr int kHalves = RP == 16 ? 4 : 8;        // halves per piece
  constexpr int kSteps = RP / 16;                  // k16 mma steps
  constexpr int kVPitch = RP + 8, kYPitch = NB + 8;
  using Piece = std::conditional_t<kHalves == 8, uint4, uint2>;
  __shared__ __align__(16) T svh[16 * kVPitch];
  __shared__ __align__(16) T svl[16 * kVPitch];
  __shared__ __align__(16) T sy[16 * kYPitch];
  __shared__ float s_red[kThreads];

  // Metadata, slot tables and B are not written by the shrink: read them, and all of this block's B rows,
  // before the wait.
  const ExpandBlock eb = expand_block<NB>(p);
  if (eb.b == nullptr) return;
  const int slice = eb.slice, n0 = eb.n0, r = eb.r, h_out = eb.h_out, seg_begin = eb.seg_begin, seg_end = eb.seg_end;
  const float scale = eb.scale;
  const uint16_t* b = static_cast<const uint16_t*>(eb.b);
  const int t_first = seg_begin + blockIdx.y * 16;
  if (t_first >= seg_end) return;  // past the segment's end: no B to load
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, q = lane & 3;
  // Rows of B start 16-byte aligned only when r % 8 == 0 (odd ranks take element loads).
  const bool vec = (r & 7) == 0 && (reinterpret_cast<uintptr_t>(b) & 15) == 0;

  Piece wb[kGroups][kPieces];
#pragma unroll
  for (int gi = 0; gi < kGroups; ++gi) {
    const int col = n0 + (warp + 4 * gi) * 8 + g;
#pragma unroll
    for (int m = 0; m < kPieces; ++m) {
      const int j0 = kHalves == 4 ? 4 * q : 32 * m + 8 * q;
      wb[gi][m] = col < h_out ? load_piece<kHalves>(b + static_cast<int64_t>(col) * r, j0, r, vec) : Piece{};
    }
  }

  T* y = static_cast<T*>(p.y);
  auto load_y = [&](int t0, int rows) {
    constexpr int kC = NB / 8;
    for (int c = tid; c < rows * kC; c += kThreads) {
      const int row = c / kC, cn = n0 + (c % kC) * 8;
      const bool ok = cn < h_out;
      cp_async_16(sy + row * kYPitch + (c % kC) * 8, ok ? y + (t0 + row) * p.y_stride + p.y_col_offset[slice] + cn : y,
                  ok ? 16 : 0);
    }
    cp_async_commit();
  };
  // In lora_add the kernel this one overlaps is this call's shrink, which does not write y (lora_expand.cu).
  if (p.prefetch_y) load_y(t_first, min(16, seg_end - t_first));
  griddep_wait();  // v (or its partials) is ready from here on

  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  const int64_t part_stride = static_cast<int64_t>(p.seg.num_tokens) * v_row;
  for (int t0 = t_first; t0 < seg_end; t0 += gridDim.y * 16) {
    const int rows = min(16, seg_end - t0);
    if (t0 != t_first || !p.prefetch_y) load_y(t0, rows);
    expand_fill_v<T, 16, RP, kThreads>(svh, svl, kVPitch, s_red, p.v, p.v, p.vpart, part_stride, p.ksplit, v_row,
                                       slice * p.v_rank_stride, t0, rows, r,
                                       blockIdx.x == static_cast<unsigned>(p.ntile_begin[slice]), split_hi_lo<T>);
    cp_async_wait<0>();
    __syncthreads();

    // v fragments (hi and lo), same k map as the weight pieces
    uint32_t ah[kSteps][4], al[kSteps][4];
#pragma unroll
    for (int s = 0; s < kSteps; ++s) {
      const int c = kHalves == 4 ? 4 * q : 32 * (s / 2) + 8 * q + 4 * (s % 2);
      const uint32_t* h0 = reinterpret_cast<const uint32_t*>(svh + g * kVPitch + c);
      const uint32_t* l0 = reinterpret_cast<const uint32_t*>(svl + g * kVPitch + c);
      ah[s][0] = h0[0];
      ah[s][2] = h0[1];
      al[s][0] = l0[0];
      al[s][2] = l0[1];
      if constexpr (kTall) {
        const uint32_t* h1 = reinterpret_cast<const uint32_t*>(svh + (g + 8) * kVPitch + c);
        const uint32_t* l1 = reinterpret_cast<const uint32_t*>(svl + (g + 8) * kVPitch + c);
        ah[s][1] = h1[0];
        ah[s][3] = h1[1];
        al[s][1] = l1[0];
        al[s][3] = l1[1];
      } else {
        ah[s][1] = ah[s][3] = al[s][1] = al[s][3] = 0u;
      }
    }

    // per column group: the product, then y = round(y + scale * acc) in shared memory at once (no
    // accumulator stays live across groups, which is what lets a warp hold NB / 4 columns of B)
#pragma unroll
    for (int gi = 0; gi < kGroups; ++gi) {
      float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int m = 0; m < kPieces; ++m) {
        if constexpr (kHalves == 4) {
          const uint32_t bf[2] = {wb[gi][m].x, wb[gi][m].y};
          MmaF16<T>::run(acc, ah[0], bf);
          MmaF16<T>::run(acc, al[0], bf);
        } else {
          const uint4 w = wb[gi][m];
          const uint32_t b0[2] = {w.x, w.y}, b1[2] = {w.z, w.w};
          MmaF16<T>::run(acc, ah[2 * m], b0);
          MmaF16<T>::run(acc, al[2 * m], b0);
          MmaF16<T>::run(acc, ah[2 * m + 1], b1);
          MmaF16<T>::run(acc, al[2 * m + 1], b1);
        }
      }
      const int lc = (warp + 4 * gi) * 8 + 2 * q;
#pragma unroll
      for (int half = 0; half < (kTall ? 2 : 1); ++half) {
        const int row = g + 8 * half;
        if (row < rows) {
          uint32_t* cell = reinterpret_cast<uint32_t*>(sy + row * kYPitch + lc);
          const float2 old = pair_to_float2(*cell, T());
          *cell = float2_to_pair(old.x + scale * acc[2 * half], old.y + scale * acc[2 * half + 1], T());
        }
      }
    }
    __syncthreads();
    {
      constexpr int kC = NB / 8;
      for (int c = tid; c < rows * kC; c += kThreads) {
        const int row = c / kC, cn = n0 + (c % kC) * 8;
        if (cn < h_out)
          *reinterpret_cast<uint4*>(y + (t0 + row) * p.y_stride + p.y_col_offset[slice] + cn) =
              *reinterpret_cast<const uint4*>(sy + row * kYPitch + (c % kC) * 8);
      }
    }
    __syncthreads();  // the v and y tiles are rewritten by the next token tile
  }
}

template <typename T, bool kTall>
Status launch_shrink(const LaunchShape& shape, const ShrinkArgs& args, cudaStream_t stream) {
  auto kernel = lora_stream_shrink_kernel<T, kTall>;
  const size_t smem = stream_shrink_smem_bytes(args.x_rows, args.x_pitch);
  PUNICA_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   static_cast<int>(smem)));
  return launch_kernel(kernel, shape.grid, dim3(kThreads), smem, shape.pdl, 0, stream,
                       "lora_stream_shrink_kernel launch", args);
}

template <typename T, int RP, int NB, bool kTall>
Status launch_expand(const LaunchShape& shape, const ExpandArgs& args, cudaStream_t stream) {
  return launch_kernel(lora_stream_expand_kernel<T, RP, NB, kTall>, shape.grid, dim3(kThreads), 0, shape.pdl, 0,
                       stream, "lora_stream_expand_kernel launch", args);
}

}  // namespace

Status lora_launch_stream_shrink(DType dtype, const LaunchShape& shape, const ShrinkArgs& args, cudaStream_t stream) {
  return dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return shape.tm > 8 ? launch_shrink<T, true>(shape, args, stream) : launch_shrink<T, false>(shape, args, stream);
  });
}

Status lora_launch_stream_expand(DType dtype, const LaunchShape& shape, const ExpandArgs& args, cudaStream_t stream) {
  return dispatch_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    return dispatch_padded_rank(shape.rp, "lora_stream_expand", [&](auto rp) -> Status {
      constexpr int RP = decltype(rp)::value;
      constexpr int kWide = stream_expand_cols(RP, true), kNarrow = stream_expand_cols(RP, false);
      if (shape.nb != kWide && shape.nb != kNarrow)
        return internal_error("lora_stream_expand: no kernel for " + std::to_string(shape.nb) + " columns at rank " +
                              std::to_string(RP));
      if (shape.tm > 8)
        return shape.nb == kWide ? launch_expand<T, RP, kWide, true>(shape, args, stream)
                                 : launch_expand<T, RP, kNarrow, true>(shape, args, stream);
      return shape.nb == kWide ? launch_expand<T, RP, kWide, false>(shape, args, stream)
                               : launch_expand<T, RP, kNarrow, false>(shape, args, stream);
    });
  });
}

}  // namespace punica::cuda::lora_detail
