// The whole LoRA add-on (shrink + expand, every slice) in ONE launch with no grid-wide dependency: one
// thread-block CLUSTER of 16 CTAs (sm_90) per (segment, token tile of 16 * MT rows).
//
// Why: under CUDA-graph replay the fixed cost of the add-on is not bytes but dependent steps. The
// two-kernel path pays a kernel boundary between shrink and expand and the persistent kernel a grid-wide
// barrier (each ~2 us on H100). Here the only dependency of the expand on the shrink is inside the
// cluster, and every CTA does each step in one round trip:
//   1. before the PDL wait (metadata, slot tables and weights are never written by the kernel before):
//      every thread reads the segment's words, one warp the slot tables of all slices at once, then ALL of
//      this CTA's A (its 1/16 of h_in, every slice) and B (its 1/16 of every slice's columns) are issued
//      as cp.async in one go: no ring, no refill (a first version with rings and per-chunk y loads spent
//      ~0.4 us per chunk waiting, docs/perf/lora-kernels.md).
//   2. after the wait: the x tile (this CTA's k range) and the y tile (this CTA's columns) in one go.
//   3. partial v = x A^T over the k range with mma.sync (warps split rank groups, m tiles and k steps);
//      warp partials summed in shared memory in a fixed order.
//   4. cluster barrier; v = the sum of the 16 partials read through distributed shared memory in rank
//      order 0..15 (deterministic, no atomics, no workspace). Small tiles: every CTA sums every element.
//      Larger ones: CTA c sums the elements e % 16 == c, a second barrier, every CTA gathers.
//   5. y += scale * v B^T for this CTA's columns (v as f16/bf16 hi + lo halves, two mma, as the expand
//      kernel does), in shared memory, then 16-byte coalesced stores; y is rounded once.
// The CTA lets the next kernel launch (griddepcontrol.launch_dependents) as its first act, so the next
// call's steps 1 overlap this call. Its last act is the cluster wait that keeps its shared memory alive
// until every reader is done.
#include <cooperative_groups.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"

namespace punica::cuda::lora_detail {
namespace {

namespace cg = cooperative_groups;

constexpr int CS = kLoraClusterSize;

// Warp layout of the shrink: 4 warps over rank groups (WN), m tiles (WM) and k steps (WK).
template <int RP, int MT>
struct ClusterWarps {
  static constexpr int WN = RP / 16 < 4 ? RP / 16 : 4;
  static constexpr int WM = MT < 4 / WN ? MT : 4 / WN;
  static constexpr int WK = 4 / WN / WM;
  static constexpr int kNJ = RP / WN / 16;  // 16-rank groups per warp
  static constexpr int kMI = MT / WM;       // m tiles per warp
  static constexpr int VP = RP + 4;         // fp32 row pitch of partial v
  static constexpr int HP = RP + 8;         // 16-bit row pitch of B rows and of v hi / lo
  static_assert(WN * WM * WK == 4, "4 warps");
};

__device__ __forceinline__ void cluster_arrive() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }

struct CtaSlice {
  const void* a;
  const void* b;
  int r;       // 0: this slice is not adapted by the segment's slot
  float scale;
  int col_b;   // this CTA's first column of the slice
  int ncols;   // this CTA's columns of the slice (a multiple of 8, may be 0)
};

template <typename T, int RP, int MT>
__global__ void __launch_bounds__(kThreads) lora_cluster_kernel(const ClusterArgs p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  (void)p;  // clusters need sm_90; the host launches this kernel only there
#else
  using W = ClusterWarps<RP, MT>;
  constexpr int TMR = 16 * MT;
  constexpr int VP = W::VP, HP = W::HP;
  extern __shared__ __align__(16) unsigned char smem[];
  griddep_launch_dependents();
  unsigned long long* const trace =
      p.trace && threadIdx.x == 0 ? p.trace + static_cast<int64_t>(blockIdx.x) * kLoraTraceSlots : nullptr;
  auto stamp = [&](int phase) {  // benchmarking only (p.trace set): where the CTA's time goes
    if (trace) trace[phase] = clock64();
  };
  if (trace) {
    unsigned long long t;
    unsigned sm;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    for (int i = 0; i < 12; ++i) trace[i] = 0;
    trace[10] = t;
    trace[12] = sm;
  }
  stamp(0);

  cg::cluster_group cluster = cg::this_cluster();
  const int crank = static_cast<int>(cluster.block_rank());
  const int item = blockIdx.x / CS;
  const int seg = item / p.tiles, ttile = item % p.tiles;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, q = lane & 3;

  // ---- 1. metadata: two dependent round trips, each issued by all threads (or all slices) at once
  const int slot = p.seg.seg_slot[seg];
  const int seg_b = p.seg.seg_start[seg], seg_e = p.seg.seg_start[seg + 1];
  const int t0 = seg_b + ttile * TMR;
  const int rows = min(TMR, seg_e - t0);
  if (slot < 0 || rows <= 0) return;  // the same in every CTA of the cluster: nobody waits at a barrier
  __shared__ CtaSlice si[ops::kMaxLoraSlices];
  if (tid < ops::kMaxLoraSlices) {
    CtaSlice s{};
    if (tid < p.num_slices) {
      const void* const* at = tid == 0 ? p.a[0] : tid == 1 ? p.a[1] : p.a[2];
      const void* const* bt = tid == 0 ? p.b[0] : tid == 1 ? p.b[1] : p.b[2];
      const int32_t* rt = tid == 0 ? p.rank[0] : tid == 1 ? p.rank[1] : p.rank[2];
      const float* st = tid == 0 ? p.scale[0] : tid == 1 ? p.scale[1] : p.scale[2];
      const void* a = at[slot];
      const void* b = bt[slot];
      const int r = rt[slot];
      const float sc = st[slot];
      if (a && b && r > 0) {
        const int h_out = tid == 0 ? p.h_out[0] : tid == 1 ? p.h_out[1] : p.h_out[2];
        const int span = tid == 0 ? p.cspan[0] : tid == 1 ? p.cspan[1] : p.cspan[2];
        s.a = a;
        s.b = b;
        s.r = min(r, p.v_rank_stride);
        s.scale = sc;
        s.col_b = crank * span;
        s.ncols = max(0, min(h_out - s.col_b, span));
      }
    }
    si[tid] = s;
  }
  __syncthreads();
  if (si[0].r == 0 && si[1].r == 0 && si[2].r == 0) return;  // the same in every CTA of the cluster
  stamp(1);

  T* sa = reinterpret_cast<T*>(smem);                    // [S][RP][a_pitch]; later v hi / lo
  T* sb = reinterpret_cast<T*>(smem + p.off_b);          // [b_rows][HP]
  T* sx = reinterpret_cast<T*>(smem + p.off_x);          // [TMR][a_pitch]
  T* sy = reinterpret_cast<T*>(smem + p.off_y);          // [TMR][y_pitch]
  float* svp = reinterpret_cast<float*>(smem + p.off_vp);  // [WK][S][TMR][VP]; [0] = this CTA's partial
  float* svr = reinterpret_cast<float*>(smem + p.off_vr);  // reduce-scatter sums
  T* svh = reinterpret_cast<T*>(smem + p.off_hilo);      // [S][TMR][HP]
  T* svl = svh + p.num_slices * TMR * HP;

  const int kb = crank * p.k_per;
  const int kspan = min(p.k_per, p.h_in - kb);  // <= 0: this CTA has no k range (small h_in)
  const int kchunks = p.k_per / 8;
  const int mt_used = (rows + 15) / 16;
  const int ap = p.a_pitch;

  // A: rows j < round16(r) (zeros past r), this CTA's k range (zeros past h_in)
  for (int s = 0; s < p.num_slices; ++s) {
    const CtaSlice& c = si[s];
    if (c.r == 0 || kspan <= 0) continue;
    const T* a = static_cast<const T*>(c.a);
    T* da = sa + s * RP * ap;
    const int n = ((c.r + 15) & ~15) * kchunks;
    for (int e = tid; e < n; e += kThreads) {
      const int j = e / kchunks, kc = e % kchunks, k = kb + kc * 8;
      const bool ok = j < c.r && k < p.h_in;
      cp_async_16(da + j * ap + kc * 8, ok ? a + static_cast<int64_t>(j) * p.h_in + k : a, ok ? 16 : 0);
    }
  }
  // B: this CTA's columns (rows of B), ranks < round16(r) (zeros past r and past the columns)
  for (int s = 0; s < p.num_slices; ++s) {
    const CtaSlice& c = si[s];
    if (c.r == 0 || c.ncols == 0) continue;
    const T* b = static_cast<const T*>(c.b);
    T* db = sb + p.bcol[s] * HP;
    const int nrows = (c.ncols + 15) & ~15, r16 = (c.r + 15) & ~15;
    if ((c.r & 7) == 0 && (reinterpret_cast<uintptr_t>(b) & 15) == 0) {
      const int rch = r16 / 8;
      for (int e = tid; e < nrows * rch; e += kThreads) {
        const int n = e / rch, k = (e % rch) * 8;
        const bool ok = n < c.ncols && k < c.r;
        cp_async_16(db + n * HP + k, ok ? b + static_cast<int64_t>(c.col_b + n) * c.r + k : b, ok ? 16 : 0);
      }
    } else {  // odd ranks: B rows are not 16-byte aligned
      for (int e = tid; e < nrows * r16; e += kThreads) {
        const int n = e / r16, k = e % r16;
        db[n * HP + k] = (n < c.ncols && k < c.r) ? b[static_cast<int64_t>(c.col_b + n) * c.r + k] : T(0.f);
      }
    }
  }
  cp_async_commit();
  stamp(2);

  // ---- 2. after the previous kernel: x and y tiles
  griddep_wait();
  stamp(3);
  {
    const T* x = static_cast<const T*>(p.x);
    const int n = mt_used * 16 * kchunks;
    for (int e = tid; e < n; e += kThreads) {
      const int row = e / kchunks, kc = e % kchunks, k = kb + kc * 8;
      const bool ok = row < rows && k < p.h_in && kspan > 0;
      cp_async_16(sx + row * ap + kc * 8, ok ? x + (t0 + row) * p.x_stride + k : x, ok ? 16 : 0);
    }
  }
  cp_async_commit();
  T* y = static_cast<T*>(p.y);
  for (int s = 0; s < p.num_slices; ++s) {
    const CtaSlice& c = si[s];
    if (c.r == 0 || c.ncols == 0) continue;
    const int cch = c.ncols / 8;
    const T* src = y + p.y_col_offset[s] + c.col_b;
    for (int e = tid; e < rows * cch; e += kThreads) {
      const int row = e / cch, cc = e % cch;
      cp_async_16(sy + row * p.y_pitch + p.ycol[s] + cc * 8, src + (t0 + row) * p.y_stride + cc * 8, 16);
    }
  }
  cp_async_commit();
  cp_async_wait<1>();  // A, B, x (y may still be in flight)
  __syncthreads();
  stamp(4);

  // ---- 3. partial v over this CTA's k range
  const int wn = warp % W::WN, wm = (warp / W::WN) % W::WM, wk = warp / (W::WN * W::WM);
  const int ksteps = kspan > 0 ? (kspan + 15) / 16 : 0;
  for (int s = 0; s < p.num_slices; ++s) {
    const int r = si[s].r;
    if (r == 0) continue;
    float acc[W::kMI][W::kNJ * 2][4];
#pragma unroll
    for (int mi = 0; mi < W::kMI; ++mi)
#pragma unroll
      for (int n8 = 0; n8 < W::kNJ * 2; ++n8) acc[mi][n8][0] = acc[mi][n8][1] = acc[mi][n8][2] = acc[mi][n8][3] = 0.f;
    const T* ca = sa + s * RP * ap;
    for (int kk = wk; kk < ksteps; kk += W::WK) {
      uint32_t af[W::kMI][4];
#pragma unroll
      for (int mi = 0; mi < W::kMI; ++mi) {
        const int m = wm + mi * W::WM;
        if (m < mt_used) ldmatrix_x4(af[mi], sx + (m * 16 + (lane & 15)) * ap + kk * 16 + (lane >> 4) * 8);
      }
#pragma unroll
      for (int jj = 0; jj < W::kNJ; ++jj) {
        const int rg = (wn * W::kNJ + jj) * 16;
        if (rg >= r) break;
        uint32_t bf[4];
        ldmatrix_x4(bf, ca + (rg + (lane & 7) + (lane >> 4) * 8) * ap + kk * 16 + ((lane >> 3) & 1) * 8);
#pragma unroll
        for (int mi = 0; mi < W::kMI; ++mi) {
          if (wm + mi * W::WM >= mt_used) break;
          MmaF16<T>::run(acc[mi][jj * 2], af[mi], bf);
          MmaF16<T>::run(acc[mi][jj * 2 + 1], af[mi], bf + 2);
        }
      }
    }
    float* dst = svp + ((wk * p.num_slices + s) * TMR) * VP;
#pragma unroll
    for (int mi = 0; mi < W::kMI; ++mi) {
      const int m = wm + mi * W::WM;
      if (m >= mt_used) break;
#pragma unroll
      for (int n8 = 0; n8 < W::kNJ * 2; ++n8) {
        const int j = wn * W::kNJ * 16 + n8 * 8 + 2 * q;
        if (j >= ((r + 15) & ~15)) break;
        *reinterpret_cast<float2*>(dst + (m * 16 + g) * VP + j) = make_float2(acc[mi][n8][0], acc[mi][n8][1]);
        *reinterpret_cast<float2*>(dst + (m * 16 + g + 8) * VP + j) = make_float2(acc[mi][n8][2], acc[mi][n8][3]);
      }
    }
  }
  // v elements of the tile: [slice][row < rows][j < r], flattened slice by slice
  const int n0e = rows * si[0].r, n1e = n0e + rows * si[1].r, nv = n1e + rows * si[2].r;
  auto v_elem = [&](int e, int& s, int& row, int& j) {
    s = e < n0e ? 0 : e < n1e ? 1 : 2;
    const int off = e - (s == 0 ? 0 : s == 1 ? n0e : n1e);
    row = off / si[s].r;
    j = off % si[s].r;
  };
  if (W::WK > 1) {  // the warps that split k: sum into partial [0], fixed order
    __syncthreads();
    for (int e = tid; e < nv; e += kThreads) {
      int s, row, j;
      v_elem(e, s, row, j);
      float* base = svp + (s * TMR + row) * VP + j;
      float acc = base[0];
#pragma unroll
      for (int w = 1; w < W::WK; ++w) acc += base[w * p.num_slices * TMR * VP];
      base[0] = acc;
    }
  }
  cluster_arrive();
  cluster_wait();  // every CTA's partial v is complete; A is dead (v hi / lo may overwrite it)
  stamp(5);

  // ---- 4. v = sum of the 16 partials, in rank order; hi / lo halves for the expand
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  auto sum_ranks = [&](int s, int row, int j) {
    const int off = (s * TMR + row) * VP + j;
    float part[CS];
#pragma unroll
    for (int rk = 0; rk < CS; ++rk) part[rk] = cluster.map_shared_rank(svp, rk)[off];
    float acc = 0.f;
#pragma unroll
    for (int rk = 0; rk < CS; ++rk) acc += part[rk];
    return acc;
  };
  auto put_v = [&](int s, int row, int j, float val) {
    T hi, lo;
    split_hi_lo(val, hi, lo);
    svh[(s * TMR + row) * HP + j] = hi;
    svl[(s * TMR + row) * HP + j] = lo;
  };
  // zeros where the expand's mma reads but v has no element: rows >= rows, ranks r..round16(r)
  for (int s = 0; s < p.num_slices; ++s) {
    const int r = si[s].r;
    if (r == 0) continue;
    const int r16 = (r + 15) & ~15;
    for (int e = tid; e < mt_used * 16 * r16; e += kThreads) {
      const int row = e / r16, j = e % r16;
      if (row >= rows || j >= r) put_v(s, row, j, 0.f);
    }
  }
  const bool direct = nv <= p.direct_max;
  if (direct) {  // small tile: every CTA sums every element itself (one barrier)
    for (int e = tid; e < nv; e += kThreads) {
      int s, row, j;
      v_elem(e, s, row, j);
      const float val = sum_ranks(s, row, j);
      if (crank == 0) p.v[(t0 + row) * v_row + s * p.v_rank_stride + j] = val;
      put_v(s, row, j, val);
    }
  } else {  // reduce-scatter, then all-gather
    for (int e = crank + tid * CS; e < nv; e += kThreads * CS) {
      int s, row, j;
      v_elem(e, s, row, j);
      const float val = sum_ranks(s, row, j);
      p.v[(t0 + row) * v_row + s * p.v_rank_stride + j] = val;
      svr[e / CS] = val;
    }
    cluster_arrive();
    cluster_wait();
    for (int e = tid; e < nv; e += kThreads) {
      int s, row, j;
      v_elem(e, s, row, j);
      put_v(s, row, j, cluster.map_shared_rank(svr, e % CS)[e / CS]);
    }
  }
  cluster_arrive();  // this CTA is done reading the others' shared memory (waited for before exit)
  stamp(6);
  cp_async_wait<0>();  // y
  __syncthreads();

  // ---- 5. y tile += scale * v B^T: warps take 16-column groups of all slices in turn
  const int groups = p.b_rows / 16;
  for (int gi = warp; gi < groups; gi += 4) {
    const int row0 = gi * 16;
    const int s = (row0 >= p.bcol[1]) + (row0 >= p.bcol[2]);
    const CtaSlice& c = si[s];
    const int n0 = row0 - p.bcol[s];  // first column of the group within this CTA's columns of the slice
    if (c.r == 0 || n0 >= c.ncols) continue;
    const T* cb = sb + row0 * HP;
    const T* vh = svh + s * TMR * HP;
    const T* vl = svl + s * TMR * HP;
    uint32_t bfr[RP / 16][4];
#pragma unroll
    for (int kk = 0; kk < RP / 16; ++kk)
      if (kk * 16 < c.r)
        ldmatrix_x4(bfr[kk], cb + ((lane & 7) + (lane >> 4) * 8) * HP + kk * 16 + ((lane >> 3) & 1) * 8);
    for (int m = 0; m < mt_used; ++m) {
      float acc[2][4] = {};
#pragma unroll
      for (int kk = 0; kk < RP / 16; ++kk) {
        if (kk * 16 >= c.r) break;
        uint32_t ah[4], al[4];
        ldmatrix_x4(ah, vh + (m * 16 + (lane & 15)) * HP + kk * 16 + (lane >> 4) * 8);
        ldmatrix_x4(al, vl + (m * 16 + (lane & 15)) * HP + kk * 16 + (lane >> 4) * 8);
        MmaF16<T>::run(acc[0], ah, bfr[kk]);
        MmaF16<T>::run(acc[0], al, bfr[kk]);
        MmaF16<T>::run(acc[1], ah, bfr[kk] + 2);
        MmaF16<T>::run(acc[1], al, bfr[kk] + 2);
      }
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const int n = n0 + nt * 8 + 2 * q;
        if (n >= c.ncols) continue;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int row = m * 16 + g + half * 8;
          if (row >= rows) continue;
          uint32_t* d = reinterpret_cast<uint32_t*>(sy + row * p.y_pitch + p.ycol[s] + n);
          const float2 old = pair_to_float2(*d, T());
          *d = float2_to_pair(old.x + c.scale * acc[nt][half * 2], old.y + c.scale * acc[nt][half * 2 + 1], T());
        }
      }
    }
  }
  __syncthreads();
  stamp(7);
  for (int s = 0; s < p.num_slices; ++s) {  // 16-byte stores of the finished y tile
    const CtaSlice& c = si[s];
    if (c.r == 0 || c.ncols == 0) continue;
    const int cch = c.ncols / 8;
    T* dst = y + p.y_col_offset[s] + c.col_b;
    for (int e = tid; e < rows * cch; e += kThreads) {
      const int row = e / cch, cc = e % cch;
      *reinterpret_cast<uint4*>(dst + (t0 + row) * p.y_stride + cc * 8) =
          *reinterpret_cast<const uint4*>(sy + row * p.y_pitch + p.ycol[s] + cc * 8);
    }
  }
  stamp(8);
  cluster_wait();  // nobody reads this CTA's shared memory any more
  stamp(9);
  if (trace) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    trace[11] = t;
  }
#endif
}

template <typename T, int RP, int MT>
Status launch(const ClusterArgs& args, bool pdl, cudaStream_t stream) {
  auto kernel = lora_cluster_kernel<T, RP, MT>;
  static std::once_flag attrs_once;
  static cudaError_t attrs_err = cudaSuccess;
  std::call_once(attrs_once, [&] {
    attrs_err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kLoraClusterMaxSmem);
    if (attrs_err == cudaSuccess)
      attrs_err = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
  });
  PUNICA_CUDA_RETURN_IF_ERROR(attrs_err);
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(args.num_items * CS));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = static_cast<size_t>(args.smem_bytes);
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = CS;
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 2 : 1;
  PUNICA_CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&cfg, kernel, args));
  return cuda_status(cudaGetLastError(), "lora_cluster_kernel launch");
}

// Whether a 16-CTA cluster of this instance and shared-memory size can be resident at all (a GPC with 16
// free SMs' worth of room); asked once per (instance, size) and remembered.
template <typename T, int RP, int MT>
Status fits(int smem_bytes, bool* ok) {
  static std::mutex mu;
  static std::map<int, bool> known;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = known.find(smem_bytes); it != known.end()) {
    *ok = it->second;
    return Status::ok();
  }
  auto kernel = lora_cluster_kernel<T, RP, MT>;
  PUNICA_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kLoraClusterMaxSmem));
  PUNICA_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(CS);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = static_cast<size_t>(smem_bytes);
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = CS;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  int clusters = 0;
  const cudaError_t err = cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // not an error of the call: this size is just not available here
    clusters = 0;
  }
  *ok = clusters > 0;
  known[smem_bytes] = *ok;
  return Status::ok();
}

// One switch from (padded rank, m tiles) to the template instance, for both the launch and the check.
template <typename T, typename Fn>
Status dispatch(int rp, int mt, Fn&& fn) {
  auto by_mt = [&](auto rp_c) -> Status {
    constexpr int R = decltype(rp_c)::value;
    switch (mt) {
      case 1: return fn(std::integral_constant<int, R>{}, std::integral_constant<int, 1>{});
      case 2: return fn(std::integral_constant<int, R>{}, std::integral_constant<int, 2>{});
      case 4: return fn(std::integral_constant<int, R>{}, std::integral_constant<int, 4>{});
      default: return internal_error("lora_cluster: no kernel for " + std::to_string(mt) + " m tiles");
    }
  };
  switch (rp) {
    case 16: return by_mt(std::integral_constant<int, 16>{});
    case 32: return by_mt(std::integral_constant<int, 32>{});
    case 64: return by_mt(std::integral_constant<int, 64>{});
    case 128: return by_mt(std::integral_constant<int, 128>{});
    default: return internal_error("lora_cluster: no kernel for padded rank " + std::to_string(rp));
  }
}

template <typename Fn>
Status dispatch_dtype(DType dtype, int rp, int mt, Fn&& fn) {
  if (dtype == DType::kF16)
    return dispatch<__half>(rp, mt, [&](auto r, auto m) { return fn(__half{}, r, m); });
  return dispatch<__nv_bfloat16>(rp, mt, [&](auto r, auto m) { return fn(__nv_bfloat16{}, r, m); });
}

int align16(int bytes) { return (bytes + 15) & ~15; }

}  // namespace

bool lora_cluster_layout(int rp, int mt, ClusterArgs* a) {
  int wk = 1;
  switch (rp * 10 + mt) {  // ClusterWarps<RP, MT>::WK, without instantiating the kernels
    case 161: wk = ClusterWarps<16, 1>::WK; break;
    case 162: wk = ClusterWarps<16, 2>::WK; break;
    case 164: wk = ClusterWarps<16, 4>::WK; break;
    case 321: wk = ClusterWarps<32, 1>::WK; break;
    case 322: wk = ClusterWarps<32, 2>::WK; break;
    case 324: wk = ClusterWarps<32, 4>::WK; break;
    case 641: case 642: case 644: wk = ClusterWarps<64, 1>::WK; break;
    case 1281: case 1282: case 1284: wk = ClusterWarps<128, 1>::WK; break;
    default: return false;
  }
  const int tmr = 16 * mt, S = a->num_slices;
  const int vp = rp + 4, hp = rp + 8;
  const int a_bytes = align16(S * rp * a->a_pitch * 2);
  const int hilo_bytes = align16(2 * S * tmr * hp * 2);
  const int region0 = std::max(a_bytes, hilo_bytes);  // v hi / lo reuse A's space after the shrink
  a->off_hilo = 0;
  a->off_b = region0;
  a->off_x = a->off_b + align16(a->b_rows * hp * 2);
  a->off_y = a->off_x + align16(tmr * a->a_pitch * 2);
  a->off_vp = a->off_y + align16(tmr * a->y_pitch * 2);
  a->off_vr = a->off_vp + align16(wk * S * tmr * vp * 4);
  a->smem_bytes = a->off_vr + align16((S * tmr * rp + CS - 1) / CS * 4);
  // every CTA sums the element itself when that is at most 8 remote loads per thread
  a->direct_max = 8 * kThreads / CS;
  return a->smem_bytes <= kLoraClusterMaxSmem;
}

Status lora_cluster_fits(DType dtype, const ClusterArgs& args, int rp, int mt, bool* ok) {
  return dispatch_dtype(dtype, rp, mt, [&](auto t, auto r, auto m) {
    return fits<decltype(t), decltype(r)::value, decltype(m)::value>(args.smem_bytes, ok);
  });
}

Status lora_launch_cluster(DType dtype, const ClusterArgs& args, int rp, int mt, bool pdl, cudaStream_t stream) {
  return dispatch_dtype(dtype, rp, mt, [&](auto t, auto r, auto m) {
    return launch<decltype(t), decltype(r)::value, decltype(m)::value>(args, pdl, stream);
  });
}

}  // namespace punica::cuda::lora_detail
