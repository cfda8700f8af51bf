// The whole LoRA add-on (shrink + expand, every slice) in ONE launch with no grid-wide dependency: one
// thread-block CLUSTER of 16 CTAs (sm_90; 8 or 2 for launches of more segments than 16-CTA clusters can hold,
// see CS below) per (segment, token tile of 16 * MT rows), 16 warps per CTA. The steps below say 16 for CS.
//
// Why: under CUDA-graph replay the fixed cost of a small add-on is not bytes but dependent steps. The
// two-kernel path pays a kernel boundary between shrink and expand and the persistent kernel a grid-wide
// barrier (each ~2 us on H100). Here the expand depends on the shrink only inside the cluster, and each
// step is one round trip (docs/perf/lora-kernels.md has the per-phase trace that shaped this):
//   1. before the PDL wait (metadata, slot tables and weights are never written by the kernel before):
//      every thread reads the segment's words, one thread per slice its table entries; then this CTA's
//      A (its 1/16 of h_in, every slice: one bulk copy per rank row on an mbarrier) and B (its 1/16 of
//      every slice's columns: 16-byte cp.async, since a bulk copy per short row costs ~20 cycles of the
//      copy engine) are issued in one go: no ring, no refill.
//   2. after the wait: the x tile (this CTA's k range) and the y tile (its columns), 16-byte cp.async.
//   3. partial v = x A^T over the k range with mma.sync (warps split rank groups, m tiles and k steps).
//   4. the partials are PUSHED with st.async into a receive buffer of every CTA (small tiles) or of the
//      element's owner CTA e % 16 (reduce-scatter, which then pushes the sum to all); st.async counts the
//      bytes on the receiver's mbarrier, so each CTA waits for its own bytes: no cluster barrier and no
//      chain of remote loads (a pull version spent ~1.2 us on 16 remote loads). Sums run in rank order
//      0..15: deterministic, no atomics, no workspace.
//   5. y += scale * v B^T for this CTA's columns (v as f16/bf16 hi + lo halves, two mma, as the expand
//      kernel does) in shared memory; y is rounded once and written with 16-byte stores.
//   Launches whose tiles all have at most a few rows (ClusterArgs::few_rows: a kernel instance
//   of its own) do steps 3 and 5 as matrix-vector products on the CUDA cores instead (warp-shuffle sums, fp32 v),
//   each warp pushes the whole tile to one CTA in step 4, and y goes straight to global memory: 0.85-0.9 us less
//   per one-token call at r = 64 on H100 than the mma phases (4.5 -> 3.65 us in one run; seventh session).
// The CTA lets the next kernel launch (griddepcontrol.launch_dependents) as its first act, so the next
// call's step 1 overlaps this call. One relaxed cluster arrive / wait pair makes sure every CTA of the
// cluster runs before anyone pushes into it; nobody touches another CTA's memory after its pushes land,
// so no CTA waits for the others before it exits.
#include <cooperative_groups.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"
#include "backends/cuda/lora/lora_launch.cuh"

namespace punica::cuda::lora_detail {
namespace {

namespace cg = cooperative_groups;

// 16 warps: each phase is a short dependent chain (the trace of a 4-warp version showed every phase
// latency-bound, ~1 us each, with one warp per SM sub-partition), so more warps split it.
constexpr int kCT = 512;
constexpr int kNW = kCT / 32;
// The direct exchange of the CUDA-core path: warp w pushes the tile (or its share of it, with fewer CTAs than
// warps) to CTA w % CS.
static_assert(kNW % kLoraClusterSize == 0, "every CTA of the cluster has the same number of pushing warps");

// Warp layout of the shrink: kNW warps over rank groups (WN), m tiles (WM) and k steps (WK).
template <int RP, int MT>
struct ClusterWarps {
  static constexpr int WN = RP / 16 < 4 ? RP / 16 : 4;
  static constexpr int WM = MT < kNW / WN ? MT : kNW / WN;
  static constexpr int WK = kNW / WN / WM;
  static constexpr int kNJ = RP / WN / 16;  // 16-rank groups per warp
  static constexpr int kMI = MT / WM;       // m tiles per warp
  static constexpr int VP = RP + 4;         // fp32 row pitch of partial v
  static constexpr int HP = RP + 8;         // 16-bit row pitch of B rows and of v hi / lo
  static_assert(WN * WM * WK == kNW, "every warp has a place");
};

// A store into the shared memory of CTA `rank` of the cluster (at the address `local` has in this CTA) that
// counts its 4 bytes on that CTA's mbarrier `bar`: the receiver waits for its own bytes, no cluster barrier.
__device__ __forceinline__ void st_async_remote(float* local, int rank, float v, uint64_t* bar) {
  const uint32_t remote = map_remote(local, rank);  // in this order (argument order is unspecified)
  st_async_mapped(remote, v, map_remote(bar, rank));
}

// sm_90 bulk copy (TMA, non-tensor); the mbarrier wrappers are in lora_device.cuh.
// global -> shared, bytes a multiple of 16, both addresses 16-byte aligned; completes on bar
__device__ __forceinline__ void bulk_g2s(void* dst, const void* src, int bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(smem_addr(bar))
               : "memory");
}
// What the few-row expand needs of a slice, filled before the PDL wait (one 16-byte shared load per column after
// it; a kernel parameter indexed by a register is a constant-cache load at every use). Kept out of CtaSlice so
// that the mma instances' prologue stays as it was measured.
struct __align__(16) SliceOffsets {
  int bcol;  // first shared-memory B row (ClusterArgs::bcol)
  int ycol;  // first column in the shared-memory y tile (ClusterArgs::ycol)
  int yoff;  // this CTA's first column of the slice in a y row (y_col_offset + col_b)
  int rh;    // ranks per thread of a column pair: r rounded up to 16, halved
};

// CS: CTAs per cluster (16, 8, 4, 2): each takes 1 / CS of h_in in the shrink and of every slice's columns in the
// expand. 16 suits few clusters; launches of many segments take smaller clusters, so that every cluster of a call
// (and of the next one, which starts its weight loads early under PDL) is resident at once.
// FEW: every tile of the launch has at most a few rows (the host's cluster_gemv_rows) and takes the CUDA-core
// phases (MT 1);
// otherwise every tile takes the mma phases. Two instances, not a branch per tile: the few-row instance has a
// smaller shared-memory plan of its own (two CTAs per SM at rank 64, lora_cluster_layout), and neither
// instance carries the other's code or registers.
template <typename T, int RP, int MT, bool FEW, int CS>
__global__ void __launch_bounds__(kCT) lora_cluster_kernel(const ClusterArgs p) {
  static_assert(CS >= 2 && CS <= kLoraClusterSize && (CS & (CS - 1)) == 0, "a power of two up to 16");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  (void)p;  // clusters need sm_90; the host launches this kernel only there
#else
  using W = ClusterWarps<RP, MT>;
  constexpr int LCS = CS == 16 ? 4 : CS == 8 ? 3 : CS == 4 ? 2 : 1;  // element e's owner is e % CS, its slot e / CS
  constexpr int TMR = 16 * MT;
  constexpr int GR = lora_cluster_gemv_cap(RP);  // rows of the few-row path's per-thread arrays
  // Rows of the x, y, partial and fp32 v tiles in shared memory: the few-row instance holds GR (its smaller plan,
  // lora_cluster_layout, lets two CTAs share an SM at rank 64, so twice as many clusters are resident).
  constexpr int PR = FEW ? GR : TMR;
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
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    for (int i = 0; i < kLoraTraceSlots; ++i) trace[i] = 0;
    trace[10] = t;
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
  __shared__ SliceOffsets so[FEW ? ops::kMaxLoraSlices : 1];
  // completion of: the weight copies, the pushed partials, the pushed sums (reduce-scatter)
  __shared__ __align__(8) uint64_t bar_w, bar_v1, bar_v2;
  if (tid == 0) {
    mbar_init(&bar_w, 1);
    mbar_init(&bar_v1, 1);
    mbar_init(&bar_v2, 1);
    fence_mbar_init();
  }
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
    if constexpr (FEW)
      so[tid] = {tid == 0 ? p.bcol[0] : tid == 1 ? p.bcol[1] : p.bcol[2],
                 tid == 0 ? p.ycol[0] : tid == 1 ? p.ycol[1] : p.ycol[2],
                 (tid == 0 ? p.y_col_offset[0] : tid == 1 ? p.y_col_offset[1] : p.y_col_offset[2]) + s.col_b,
                 ((s.r + 15) & ~15) / 2};
  }
  __syncthreads();
  if (si[0].r == 0 && si[1].r == 0 && si[2].r == 0) return;  // the same in every CTA of the cluster
  const int nv = rows * (si[0].r + si[1].r + si[2].r);  // elements of the v tile
  const bool direct = nv <= p.direct_max;
  if (tid == 0) {  // the bytes the other CTAs will push here (before "I run": no push can come earlier)
    if (direct) {
      mbar_arrive_expect_tx(&bar_v1, static_cast<unsigned>(CS * nv * 4));
    } else {
      const int owned = nv > crank ? (nv - 1 - crank) / CS + 1 : 0;
      mbar_arrive_expect_tx(&bar_v1, static_cast<unsigned>(CS * owned * 4));
      mbar_arrive_expect_tx(&bar_v2, static_cast<unsigned>(nv * 4));
    }
  }
  cluster_arrive_relaxed();  // "I run": waited for before the first store into another CTA's memory
  stamp(1);

  T* sa = reinterpret_cast<T*>(smem);                    // [S][RP][a_pitch]; later v hi / lo
  T* sb = reinterpret_cast<T*>(smem + p.off_b);          // [b_rows][HP]
  T* sx = reinterpret_cast<T*>(smem + p.off_x);          // [PR][a_pitch]
  T* sy = reinterpret_cast<T*>(smem + p.off_y);          // [PR][y_pitch]
  float* svp = reinterpret_cast<float*>(smem + p.off_vp);  // [WK][S][PR][VP]; [0] = this CTA's partial
  float* svr = reinterpret_cast<float*>(smem + p.off_vr);  // reduce-scatter sums
  T* svh = sa;                                           // [S][TMR][HP] v hi / lo, over A after the shrink
  T* svl = svh + p.num_slices * TMR * HP;
  // [S][PR][VP] fp32 v of the few-row path. It lies in the partial buffer's second slot, which that path never
  // writes (its shrink leaves one partial per element, in slot 0; its plan has two slots), so no warp's write of
  // v can meet another warp's read of a partial it is still pushing.
  float* svf = svp + p.num_slices * PR * VP;

  const int S = p.num_slices;
  const int kb = crank * p.k_per;
  const int kspan = max(0, min(p.k_per, p.h_in - kb));  // 0: this CTA has no k range (small h_in)
  const int mt_used = (rows + 15) / 16;
  const int ap = p.a_pitch;

  // Bulk (TMA) copies, one instruction per row, completing on two mbarriers: weights, then x and y. Rows
  // past the valid ones (tokens >= rows, ranks >= r, columns >= ncols) are left unwritten: they only feed
  // mma outputs that are never read. Only the k tails inside a 16-wide mma step are zeroed.
  if (tid == 0) {
    unsigned bytes = 0;
    #pragma unroll 1
    for (int s = 0; s < S; ++s) {
      const CtaSlice& c = si[s];
      if (c.r == 0) continue;
      bytes += static_cast<unsigned>(c.r * kspan * 2);
    }
    mbar_arrive_expect_tx(&bar_w, bytes);
  }
  #pragma unroll 1
  for (int s = 0; s < S; ++s) {
    const CtaSlice& c = si[s];
    if (c.r == 0) continue;
    const T* a = static_cast<const T*>(c.a) + kb;
    T* da = sa + s * RP * ap;
    if (kspan > 0)
      #pragma unroll 1
      for (int j = tid; j < c.r; j += kCT)
        bulk_g2s(da + j * ap, a + static_cast<int64_t>(j) * p.h_in, kspan * 2, &bar_w);
    // B: 16-byte cp.async (a bulk copy per 16..256-byte row costs ~20 cycles of the SM's copy engine each,
    // measured: 256 rows took 2.7 us to issue)
    const T* b = static_cast<const T*>(c.b) + static_cast<int64_t>(c.col_b) * c.r;
    T* db = sb + p.bcol[s] * HP;
    const int r16 = (c.r + 15) & ~15;
    if ((c.r & 7) == 0 && (reinterpret_cast<uintptr_t>(c.b) & 15) == 0) {  // (the contract allows any 2-byte B)
      const int rch = r16 / 8;
#pragma unroll 1
      for (int e = tid; e < c.ncols * rch; e += kCT) {
        const int n = e / rch, k = (e - n * rch) * 8;
        cp_async_16(db + n * HP + k, k < c.r ? b + n * c.r + k : b, k < c.r ? 16 : 0);
      }
    } else {  // B rows are not 16-byte aligned (odd ranks, or B itself): plain loads, zeros up to the next multiple of 16
#pragma unroll 1
      for (int n = warp; n < c.ncols; n += kNW)
#pragma unroll 1
        for (int k = lane; k < r16; k += 32) db[n * HP + k] = k < c.r ? b[n * c.r + k] : T(0.f);
    }
    if (kspan & 15)  // likewise the k tail of A (x's is zeroed below)
      #pragma unroll 1
      for (int j = tid; j < c.r; j += kCT) *reinterpret_cast<uint4*>(da + j * ap + kspan) = uint4{0, 0, 0, 0};
  }
  cp_async_commit();
  stamp(2);

  // ---- 2. after the previous kernel: x and y tiles, 16-byte cp.async spread over all threads (a bulk copy
  // per row queues on the copy engine, ~20 cycles each: 16-row tiles waited 1.6 us for x and y, one-row
  // tiles 0.8 us)
  griddep_wait();
  stamp(3);
  {
    const T* x = static_cast<const T*>(p.x) + kb;
    const T* y = static_cast<const T*>(p.y);
    const int xc = kspan / 8;  // 16-byte chunks per x row (kspan is a multiple of 8)
#pragma unroll 1
    for (int c = tid; c < rows * xc; c += kCT) {
      const int row = c / xc, k = (c - row * xc) * 8;
      cp_async_16(sx + row * ap + k, x + (t0 + row) * p.x_stride + k, 16);
    }
    if (kspan & 15)
#pragma unroll 1
      for (int row = tid; row < rows; row += kCT) *reinterpret_cast<uint4*>(sx + row * ap + kspan) = uint4{0, 0, 0, 0};
#pragma unroll 1
    for (int s = 0; s < S; ++s) {
      const CtaSlice& c = si[s];
      if (c.r == 0 || c.ncols == 0) continue;
      const T* src = y + p.y_col_offset[s] + c.col_b;
      T* dst = sy + p.ycol[s];
      const int yc = c.ncols / 8;
#pragma unroll 1
      for (int e = tid; e < rows * yc; e += kCT) {
        const int row = e / yc, n = (e - row * yc) * 8;
        cp_async_16(dst + row * p.y_pitch + n, src + (t0 + row) * p.y_stride + n, 16);
      }
    }
  }
  cp_async_commit();
  cp_async_wait<0>();
  mbar_wait(&bar_w, 0);
  __syncthreads();  // the k-tail zeros and every thread's copies
  stamp(4);

  // ---- 3. partial v over this CTA's k range
  // Tiles of a few token rows (decode) take matrix-vector products on the CUDA cores: TPR consecutive lanes
  // share a rank row and take interleaved 16-byte pieces of the k range (a quarter warp reads 128 contiguous
  // bytes), one shuffle sum over the TPR lanes. Few instructions per warp is what counts here (Nsight Compute,
  // seventh session: after the PDL wait the phases are bound by each warp's instruction count, ~5.5 cycles
  // each with 4 warps per scheduler). The mma path below spends a 16-row tile on them.
  static_assert(!FEW || MT == 1, "the few-row path has one m tile");
  if (FEW) {
    constexpr int TPR = kCT / RP;  // lanes per rank row: 32 (RP 16) .. 4 (RP 128)
    const int j = tid / TPR, part = tid % TPR;
    const int nch = kspan / 8;  // 16-byte pieces of the k range
#pragma unroll 1
    for (int s = 0; s < S; ++s) {
      const int r = si[s].r;
      if (r == 0) continue;  // the same in the whole CTA
      float acc[GR];
#pragma unroll
      for (int row = 0; row < GR; ++row) acc[row] = 0.f;
      if (j < r) {
        const T* arow = sa + (s * RP + j) * ap;
#pragma unroll 4
        for (int c = part; c < nch; c += TPR) {
          const uint4 av = *reinterpret_cast<const uint4*>(arow + c * 8);
          const float2 af[4] = {pair_to_float2(av.x, T()), pair_to_float2(av.y, T()), pair_to_float2(av.z, T()),
                                pair_to_float2(av.w, T())};
#pragma unroll
          for (int row = 0; row < GR; ++row) {
            if (row >= rows) break;
            const uint4 xv = *reinterpret_cast<const uint4*>(sx + row * ap + c * 8);
            const float2 x0 = pair_to_float2(xv.x, T()), x1 = pair_to_float2(xv.y, T());
            const float2 x2 = pair_to_float2(xv.z, T()), x3 = pair_to_float2(xv.w, T());
            float t = acc[row];
            t = fmaf(af[0].x, x0.x, t);
            t = fmaf(af[0].y, x0.y, t);
            t = fmaf(af[1].x, x1.x, t);
            t = fmaf(af[1].y, x1.y, t);
            t = fmaf(af[2].x, x2.x, t);
            t = fmaf(af[2].y, x2.y, t);
            t = fmaf(af[3].x, x3.x, t);
            t = fmaf(af[3].y, x3.y, t);
            acc[row] = t;
          }
        }
      }
#pragma unroll
      for (int row = 0; row < GR; ++row) {
        if (row >= rows) break;  // the same in the whole CTA
#pragma unroll
        for (int o = TPR / 2; o > 0; o >>= 1) acc[row] += __shfl_xor_sync(0xffffffffu, acc[row], o);
        if (part == 0 && j < r) svp[(s * PR + row) * VP + j] = acc[row];  // the partial of k-warp slot 0
      }
    }
  }
  const int wn = warp % W::WN, wm = (warp / W::WN) % W::WM, wk = warp / (W::WN * W::WM);
  const int ksteps = (kspan + 15) / 16;
  #pragma unroll 1
  for (int s = 0; s < S && !FEW; ++s) {
    const int r = si[s].r;
    if (r == 0) continue;
    float acc[W::kMI][W::kNJ * 2][4];
#pragma unroll
    for (int mi = 0; mi < W::kMI; ++mi)
#pragma unroll
      for (int n8 = 0; n8 < W::kNJ * 2; ++n8) acc[mi][n8][0] = acc[mi][n8][1] = acc[mi][n8][2] = acc[mi][n8][3] = 0.f;
    // this lane's ldmatrix addresses as 32-bit shared addresses, stepped by integer adds
    const uint32_t x_at = pinned_u32(smem_addr(sx) + 2u * static_cast<uint32_t>((lane & 15) * ap + (lane >> 4) * 8));
    const uint32_t a_at = pinned_u32(smem_addr(sa + s * RP * ap) +
                                     2u * static_cast<uint32_t>(((lane & 7) + (lane >> 4) * 8) * ap + ((lane >> 3) & 1) * 8));
#pragma unroll 4  // the next steps' ldmatrix overlap this step's mma (one warp per sub-partition hides nothing)
    for (int kk = wk; kk < ksteps; kk += W::WK) {
      uint32_t af[W::kMI][4];
#pragma unroll
      for (int mi = 0; mi < W::kMI; ++mi) {
        const int m = wm + mi * W::WM;
        if (m < mt_used) ldmatrix_x4_at(af[mi], x_at + 2u * static_cast<uint32_t>(m * 16 * ap + kk * 16));
      }
#pragma unroll
      for (int jj = 0; jj < W::kNJ; ++jj) {
        const int rg = (wn * W::kNJ + jj) * 16;
        if (rg >= r) break;
        uint32_t bf[4];
        ldmatrix_x4_at(bf, a_at + 2u * static_cast<uint32_t>(rg * ap + kk * 16));
#pragma unroll
        for (int mi = 0; mi < W::kMI; ++mi) {
          if (wm + mi * W::WM >= mt_used) break;
          MmaF16<T>::run(acc[mi][jj * 2], af[mi], bf);
          MmaF16<T>::run(acc[mi][jj * 2 + 1], af[mi], bf + 2);
        }
      }
    }
    float* dst = svp + ((wk * S + s) * TMR) * VP;
#pragma unroll
    for (int mi = 0; mi < W::kMI; ++mi) {
      const int m = wm + mi * W::WM;
      if (m >= mt_used) break;
#pragma unroll
      for (int n8 = 0; n8 < W::kNJ * 2; ++n8) {
        const int j = wn * W::kNJ * 16 + n8 * 8 + 2 * q;
        if (j >= r) break;
        *reinterpret_cast<float2*>(dst + (m * 16 + g) * VP + j) = make_float2(acc[mi][n8][0], acc[mi][n8][1]);
        *reinterpret_cast<float2*>(dst + (m * 16 + g + 8) * VP + j) = make_float2(acc[mi][n8][2], acc[mi][n8][3]);
      }
    }
  }
  __syncthreads();  // every warp's partial is in shared memory
  stamp(13);

  // ---- 4. v = the sum over the 16 CTAs, in rank order. PUSH, not pull: each CTA stores its partial of
  // element e into the receive buffer of every CTA (direct) or of CTA e % 16 (reduce-scatter; that CTA
  // then pushes the sum to all) with st.async, which counts the bytes on the receiver's mbarrier: each
  // CTA waits only for its own bytes (one way, no cluster barrier, no 16 dependent remote loads).
  // Element (s, row, j) has the flat index e = base_s + row * r_s + j.
  const int64_t v_row = static_cast<int64_t>(S) * p.v_rank_stride;
  float* recv = svr;                        // direct: [16][direct_max]; reduce-scatter: [16][rs_stride]
  float* gather = svr + CS * p.rs_stride;   // reduce-scatter: [nv] sums pushed by their owners
  // fn(s, row, j, e) for every element of the v tile this thread handles (warps over rows, lanes over ranks)
  auto for_each_v = [&](auto&& fn) {
    int base = 0;
#pragma unroll 1
    for (int s = 0; s < S; ++s) {
      const int r = si[s].r;
#pragma unroll 1
      for (int row = warp; row < rows; row += kNW)
#pragma unroll 1
        for (int j = lane; j < r; j += 32) fn(s, row, j, base + row * r + j);
      base += rows * r;
    }
  };
  cluster_wait();  // (arrived after the metadata) every CTA of the cluster runs: its shared memory exists
  // The few-row path's direct exchange: warp w pushes every element of the tile to CTA w, with the two
  // addresses mapped once (warps over rows would leave a one-row tile's 16 x r pushes to one warp).
  const bool few_direct = FEW && direct;
  if (few_direct) {
    constexpr int NP = kNW / CS;  // warps per destination CTA, each pushing every NP-th 32 elements
    const int dst = NP == 1 ? warp : warp % CS;
    const uint32_t rrecv = map_remote(recv + crank * p.direct_max, dst), rbar = map_remote(&bar_v1, dst);
    int base = 0;
#pragma unroll 1
    for (int s = 0; s < S; ++s) {
      const int r = si[s].r;
      if constexpr (NP == 1) {
#pragma unroll 1
        for (int row = 0; row < rows; ++row)
#pragma unroll 1
          for (int j = lane; j < r; j += 32)
            st_async_mapped(rrecv + 4u * static_cast<uint32_t>(base + row * r + j), svp[(s * PR + row) * VP + j], rbar);
      } else {
#pragma unroll 1
        for (int i = (warp / CS) * 32 + lane; i < rows * r; i += NP * 32) {
          const int row = i / r, j = i - row * r;
          st_async_mapped(rrecv + 4u * static_cast<uint32_t>(base + i), svp[(s * PR + row) * VP + j], rbar);
        }
      }
      base += rows * r;
    }
  }
  if (!few_direct) for_each_v([&](int s, int row, int j, int e) {
    const float* part = svp + (s * PR + row) * VP + j;
    float val = part[0];
    if (!FEW)
#pragma unroll
      for (int w = 1; w < W::WK; ++w) val += part[w * S * PR * VP];  // the warps that split k, in order
    if (direct) {
#pragma unroll
      for (int dst = 0; dst < CS; ++dst) st_async_remote(recv + crank * p.direct_max + e, dst, val, &bar_v1);
    } else {
      st_async_remote(recv + crank * p.rs_stride + (e >> LCS), e & (CS - 1), val, &bar_v1);
    }
  });
  mbar_wait(&bar_v1, 0);  // every partial pushed here has landed
  stamp(5);
  auto put_v = [&](int s, int row, int j, float val) {
    T hi, lo;
    split_hi_lo(val, hi, lo);
    svh[(s * TMR + row) * HP + j] = hi;
    svl[(s * TMR + row) * HP + j] = lo;
  };
  if (!direct) {  // owners sum their elements and push the sums to every CTA
    for_each_v([&](int s, int row, int j, int e) {
      if ((e & (CS - 1)) != crank) return;
      float val = 0.f;
#pragma unroll
      for (int src = 0; src < CS; ++src) val += recv[src * p.rs_stride + (e >> LCS)];
      p.v[(t0 + row) * v_row + s * p.v_rank_stride + j] = val;
#pragma unroll
      for (int dst = 0; dst < CS; ++dst) st_async_remote(gather + e, dst, val, &bar_v2);
    });
    mbar_wait(&bar_v2, 0);
  }
  if (few_direct) {  // fp32 v of the few rows, one element per thread, zeros up to r rounded to 16
    int n16 = 0;
    for (int s = 0; s < S; ++s) n16 += rows * ((si[s].r + 15) & ~15);
#pragma unroll 1
    for (int i = tid; i < n16; i += kCT) {
      int s = 0, k = i, base = 0;  // element k of slice s's [rows][r16] block
      for (; s < S; ++s) {
        const int blk = rows * ((si[s].r + 15) & ~15);
        if (k < blk) break;
        k -= blk;
        base += rows * si[s].r;
      }
      const int r = si[s].r, r16 = (r + 15) & ~15;
      const int row = k / r16, j = k - row * r16;
      float val = 0.f;
      if (j < r) {
        const float* src = recv + base + row * r + j;
#pragma unroll
        for (int c = 0; c < CS; ++c) val += src[c * p.direct_max];  // in rank order: deterministic
        if (crank == 0) p.v[(t0 + row) * v_row + s * p.v_rank_stride + j] = val;
      }
      svf[(s * PR + row) * VP + j] = val;
    }
  } else {  // v hi / lo for the expand; zeros where its mma reads past the valid rows and ranks
    int base = 0;
#pragma unroll 1
    for (int s = 0; s < S; ++s) {
      const int r = si[s].r;
      if (r == 0) continue;
      const int r16 = (r + 15) & ~15;
#pragma unroll 1
      for (int row = warp; row < (FEW ? rows : mt_used * 16); row += kNW)  // the few-row path reads rows < rows
#pragma unroll 1
        for (int j = lane; j < r16; j += 32) {
          float val = 0.f;
          if (row < rows && j < r) {
            const int e = base + row * r + j;
            if (direct) {
#pragma unroll
              for (int src = 0; src < CS; ++src) val += recv[src * p.direct_max + e];
              if (crank == 0) p.v[(t0 + row) * v_row + s * p.v_rank_stride + j] = val;
            } else {
              val = gather[e];
            }
          }
          if (FEW) svf[(s * PR + row) * VP + j] = val;
          else put_v(s, row, j, val);
        }
      base += rows * r;
    }
  }
  __syncthreads();
  stamp(6);

  // ---- 5 (few rows). y += scale * v B^T on the CUDA cores: two threads per column (the halves of the
  // rank range, multiples of 8 up to r rounded to 16: B rows are zero there, v too), one shuffle sums them;
  // v stays fp32 (the mma path splits it into hi + lo halves). The even thread of a pair writes the finished
  // y element straight to global memory (16 columns of a warp are one 32-byte sector), so this path needs no
  // store phase and no barrier before it.
  if (FEW) {
    // This CTA's columns of the adapted slices, in slice order: slice 0 has [0, c0), 1 [c0, c1), 2 [c1, total).
    // Straight-line (S <= 3) and the slice's offsets in one shared load per column: the per-column setup was
    // most of this phase's ~175 instructions per warp at r = 16 (Nsight Compute, eighth session).
    static_assert(ops::kMaxLoraSlices == 3, "the column bounds below name three slices");
    const int c0 = si[0].r ? si[0].ncols : 0;
    const int c1 = c0 + (S > 1 && si[1].r ? si[1].ncols : 0);
    const int total = c1 + (S > 2 && si[2].r ? si[2].ncols : 0);
    const int lanes = (2 * total + 31) & ~31;  // whole warps, so every lane takes part in the shuffle
    T* const yg = static_cast<T*>(p.y) + static_cast<int64_t>(t0) * p.y_stride;
#pragma unroll 1
    for (int e = tid; e < lanes; e += kCT) {
      const int nn = e >> 1;
      const bool valid = nn < total;
      const int s = (nn >= c0) + (nn >= c1);  // column n of slice s
      const int n = nn - (s == 0 ? 0 : s == 1 ? c0 : c1);
      const SliceOffsets o = so[valid ? s : 0];
      float acc[GR];
#pragma unroll
      for (int row = 0; row < GR; ++row) acc[row] = 0.f;
      if (valid) {
        const T* brow = sb + (o.bcol + n) * HP + (e & 1) * o.rh;
        const float* vf = svf + s * PR * VP + (e & 1) * o.rh;
#pragma unroll
        for (int j = 0; j < RP / 2; j += 8) {
          if (j >= o.rh) break;
          const uint4 bv = *reinterpret_cast<const uint4*>(brow + j);
          const float2 bf[4] = {pair_to_float2(bv.x, T()), pair_to_float2(bv.y, T()), pair_to_float2(bv.z, T()),
                                pair_to_float2(bv.w, T())};
#pragma unroll
          for (int row = 0; row < GR; ++row) {
            if (row >= rows) break;
            const float4 v0 = *reinterpret_cast<const float4*>(vf + row * VP + j);
            const float4 v1 = *reinterpret_cast<const float4*>(vf + row * VP + j + 4);
            float a = acc[row];
            a = fmaf(v0.x, bf[0].x, a);
            a = fmaf(v0.y, bf[0].y, a);
            a = fmaf(v0.z, bf[1].x, a);
            a = fmaf(v0.w, bf[1].y, a);
            a = fmaf(v1.x, bf[2].x, a);
            a = fmaf(v1.y, bf[2].y, a);
            a = fmaf(v1.z, bf[3].x, a);
            a = fmaf(v1.w, bf[3].y, a);
            acc[row] = a;
          }
        }
      }
#pragma unroll
      for (int row = 0; row < GR; ++row) {
        if (row >= rows) break;  // the same in the whole CTA
        acc[row] += __shfl_xor_sync(0xffffffffu, acc[row], 1);
      }
      if (valid && (e & 1) == 0) {
        const float sc = si[s].scale;
#pragma unroll
        for (int row = 0; row < GR; ++row) {
          if (row >= rows) break;
          const float old = to_float(sy[row * p.y_pitch + o.ycol + n]);
          yg[row * p.y_stride + o.yoff + n] = T(old + sc * acc[row]);
        }
      }
    }
  }

  // ---- 5. y tile += scale * v B^T: warps take 16-column groups of all slices in turn
  const int groups = FEW ? 0 : p.b_rows / 16;
  #pragma unroll 1
  for (int gi = warp; gi < groups; gi += kNW) {
    const int row0 = gi * 16;
    const int s = (row0 >= p.bcol[1]) + (row0 >= p.bcol[2]);
    const CtaSlice& c = si[s];
    const int n0 = row0 - p.bcol[s];  // first column of the group within this CTA's columns of the slice
    if (c.r == 0 || n0 >= c.ncols) continue;
    // 32-bit shared addresses of this lane's ldmatrix rows, stepped by integer adds
    const uint32_t b_at =
        smem_addr(sb + row0 * HP) + 2u * static_cast<uint32_t>(((lane & 7) + (lane >> 4) * 8) * HP + ((lane >> 3) & 1) * 8);
    const uint32_t v_lane = 2u * static_cast<uint32_t>(s * TMR * HP + (lane & 15) * HP + (lane >> 4) * 8);
    const uint32_t vh_at = smem_addr(svh) + v_lane, vl_at = smem_addr(svl) + v_lane;
    const int ksteps_r = (c.r + 15) / 16;
    #pragma unroll 1
    for (int m = 0; m < mt_used; ++m) {
      float acc[2][4] = {};
#pragma unroll 4
      for (int kk = 0; kk < ksteps_r; ++kk) {
        uint32_t ah[4], al[4], bf[4];
        const uint32_t vo = 2u * static_cast<uint32_t>(m * 16 * HP + kk * 16);
        ldmatrix_x4_at(bf, b_at + 32u * static_cast<uint32_t>(kk));
        ldmatrix_x4_at(ah, vh_at + vo);
        ldmatrix_x4_at(al, vl_at + vo);
        MmaF16<T>::run(acc[0], ah, bf);
        MmaF16<T>::run(acc[0], al, bf);
        MmaF16<T>::run(acc[1], ah, bf + 2);
        MmaF16<T>::run(acc[1], al, bf + 2);
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
  if (FEW) {
    stamp(7);  // the few-row path stored y itself
  } else {
    __syncthreads();
    stamp(7);
    T* const y = static_cast<T*>(p.y);
#pragma unroll 1
    for (int s = 0; s < S; ++s) {  // 16-byte stores of the finished y tile (a bulk store would need a proxy
      const CtaSlice& c = si[s];   // fence and a wait for its read of shared memory: slower for these sizes)
      if (c.r == 0 || c.ncols == 0) continue;
      const int cch = c.ncols / 8;
      T* dst = y + p.y_col_offset[s] + c.col_b;
#pragma unroll 1
      for (int row = warp; row < rows; row += kNW)
#pragma unroll 1
        for (int cc = lane; cc < cch; cc += 32)
          *reinterpret_cast<uint4*>(dst + (t0 + row) * p.y_stride + cc * 8) =
              *reinterpret_cast<const uint4*>(sy + row * p.y_pitch + p.ycol[s] + cc * 8);
    }
  }
  stamp(8);
  stamp(9);
  if (trace) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    trace[11] = t;
  }
#endif
}

// The kernel's attributes, set once per instance: the largest dynamic shared memory (so any plan up to it
// launches) and the non-portable cluster size 16.
template <typename T, int RP, int MT, bool FEW, int CS>
Status prepare_kernel() {
  static const cudaError_t err = [] {
    auto kernel = lora_cluster_kernel<T, RP, MT, FEW, CS>;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kLoraClusterMaxSmem);
    if (e == cudaSuccess) e = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
    return e;
  }();
  return cuda_status(err, "lora_cluster_kernel attributes");
}

template <typename T, int RP, int MT, bool FEW, int CS>
Status launch(const ClusterArgs& args, bool pdl, cudaStream_t stream) {
  PUNICA_RETURN_IF_ERROR((prepare_kernel<T, RP, MT, FEW, CS>()));
  return launch_kernel(lora_cluster_kernel<T, RP, MT, FEW, CS>, dim3(static_cast<unsigned>(args.num_items * CS)), dim3(kCT),
                       static_cast<size_t>(args.smem_bytes), pdl, CS, stream, "lora_cluster_kernel launch", args);
}

// How many CS-CTA clusters of this instance and shared-memory size can be resident at once (each needs a GPC
// with CS free SMs' worth of room; 0: none); asked once per (instance, size) and remembered.
template <typename T, int RP, int MT, bool FEW, int CS>
Status capacity(int smem_bytes, int* out) {
  static std::mutex mu;
  static std::map<int, int> known;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = known.find(smem_bytes); it != known.end()) {
    *out = it->second;
    return Status::ok();
  }
  PUNICA_RETURN_IF_ERROR((prepare_kernel<T, RP, MT, FEW, CS>()));
  auto kernel = lora_cluster_kernel<T, RP, MT, FEW, CS>;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(CS);
  cfg.blockDim = dim3(kCT);
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
  *out = clusters;
  known[smem_bytes] = clusters;
  return Status::ok();
}

// (dtype, padded rank, m tiles, few rows, cluster size) -> fn(T{}, integral_constant RP, integral_constant MT,
// bool_constant FEW, integral_constant CS), for the launch and the residency check; only the instances
// lora_cluster_instance names are compiled.
template <typename Fn>
Status dispatch_instance(DType dtype, int rp, int mt, bool few, int cs, Fn&& fn) {
  auto none = [&] {
    return internal_error("lora_cluster: no kernel for cluster size " + std::to_string(cs) + ", rank " +
                          std::to_string(rp) + ", " + std::to_string(mt) + " m tiles" + (few ? ", few rows" : ""));
  };
  return dispatch_dtype(dtype, [&](auto t) {
    return dispatch_padded_rank(rp, "lora_cluster", [&](auto r) -> Status {
      auto sized = [&](auto c) -> Status {
        constexpr int R = decltype(r)::value, C = decltype(c)::value;
        auto one = [&](auto m, auto f) -> Status {
          if constexpr (lora_cluster_instance(C, R, decltype(m)::value, decltype(f)::value)) return fn(t, r, m, f, c);
          else return none();
        };
        if (few) return mt == 1 ? one(std::integral_constant<int, 1>{}, std::true_type{}) : none();
        switch (mt) {
          case 1: return one(std::integral_constant<int, 1>{}, std::false_type{});
          case 2: return one(std::integral_constant<int, 2>{}, std::false_type{});
          case 4: return one(std::integral_constant<int, 4>{}, std::false_type{});
          default: return none();
        }
      };
      switch (cs) {
        case 16: return sized(std::integral_constant<int, 16>{});
        case 8: return sized(std::integral_constant<int, 8>{});
        case 4: return sized(std::integral_constant<int, 4>{});
        case 2: return sized(std::integral_constant<int, 2>{});
        default: return none();
      }
    });
  });
}

int align16(int bytes) { return (bytes + 15) & ~15; }

}  // namespace

bool lora_cluster_layout(int rp, int mt, ClusterArgs* a) {
  int wk = 1;
  switch (rp * 10 + mt) {  // ClusterWarps<RP, MT>::WK, without instantiating the kernels
#define PUNICA_WK(R, M) \
  case R * 10 + M: wk = ClusterWarps<R, M>::WK; break;
    PUNICA_WK(16, 1) PUNICA_WK(16, 2) PUNICA_WK(16, 4) PUNICA_WK(32, 1) PUNICA_WK(32, 2) PUNICA_WK(32, 4)
    PUNICA_WK(64, 1) PUNICA_WK(64, 2) PUNICA_WK(64, 4) PUNICA_WK(128, 1) PUNICA_WK(128, 2) PUNICA_WK(128, 4)
#undef PUNICA_WK
    default: return false;
  }
  // The few-row instance keeps lora_cluster_gemv_cap(rp) rows of x, y, partials and fp32 v (two partial slots:
  // its shrink's and the fp32 v) and no v hi / lo; the mma instances a whole tile of each.
  const bool few = a->few_rows != 0;
  const int CS = a->cluster_size;
  if (!lora_cluster_instance(CS, rp, mt, few)) return false;
  const int tmr = few ? lora_cluster_gemv_cap(rp) : 16 * mt, S = a->num_slices;
  if (few) wk = 2;
  const int vp = rp + 4, hp = rp + 8;
  const int a_bytes = align16(S * rp * a->a_pitch * 2);
  const int hilo_bytes = few ? 0 : align16(2 * S * tmr * hp * 2);
  const int region0 = std::max(a_bytes, hilo_bytes);  // v hi / lo reuse A's space after the shrink
  a->off_b = region0;
  a->off_x = a->off_b + align16(a->b_rows * hp * 2);
  a->off_y = a->off_x + align16(tmr * a->a_pitch * 2);
  a->off_vp = a->off_y + align16(tmr * a->y_pitch * 2);
  a->off_vr = a->off_vp + align16(wk * S * tmr * vp * 4);
  // receive buffers of the exchange: direct (every CTA gets every partial) up to 4096 / CS elements (16 KB);
  // reduce-scatter: CS x ceil(n / CS) partials for the owned elements + the n gathered sums
  const int nv_max = S * tmr * rp;
  a->direct_max = 4096 / CS;
  a->rs_stride = (nv_max + CS - 1) / CS;
  a->smem_bytes = a->off_vr + align16(4 * std::max(CS * a->direct_max, CS * a->rs_stride + nv_max));
  return a->smem_bytes <= kLoraClusterMaxSmem;
}

Status lora_cluster_capacity(DType dtype, const ClusterArgs& args, int rp, int mt, int* clusters) {
  const bool few = args.few_rows != 0;
  return dispatch_instance(dtype, rp, mt, few, args.cluster_size, [&](auto t, auto r, auto m, auto f, auto c) {
    return capacity<decltype(t), decltype(r)::value, decltype(m)::value, decltype(f)::value, decltype(c)::value>(
        args.smem_bytes, clusters);
  });
}

Status lora_launch_cluster(DType dtype, const ClusterArgs& args, int rp, int mt, bool pdl, cudaStream_t stream) {
  const bool few = args.few_rows != 0;
  return dispatch_instance(dtype, rp, mt, few, args.cluster_size, [&](auto t, auto r, auto m, auto f, auto c) {
    return launch<decltype(t), decltype(r)::value, decltype(m)::value, decltype(f)::value, decltype(c)::value>(
        args, pdl, stream);
  });
}

}  // namespace punica::cuda::lora_detail
