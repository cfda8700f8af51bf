// The prefill kernel: the whole add-on y += scale * (x A^T) B^T for segments of many tokens, in one launch.
//
// Why: a 4 x 512-token prefill at h = 4096 moves x (16 MB read) and y (16 MB read and 16 MB written); the
// adapters are under 1 MB. The two-kernel path (tiled shrink + split-K reduce + tiled expand) ran each kernel at
// 51-66% of copy bandwidth; its expand re-split v for every 64- or 128-column tile and kept one y tile per block
// in flight (docs/perf/lora-kernels.md). The sixth session's one-launch kernel lost because each 16-row tile read
// all of A and B from L2 (128 MB per call at rank 64) with 12 KB of x in flight per SM.
//
// Design: one cluster of CS = 2 CTAs per (segment, 32-row token tile); PrefillLayout says why these sizes.
// CTA c of the cluster
//   1. shrink: streams x[tile rows, its 1/CS of h_in's 128-column stages] and those columns of A (every adapted
//      slice at once, so x is read once) through a cp.async ring and multiplies them on the tensor cores into a
//      partial v tile [32 x NV] (fp32);
//   2. exchange: pushes its partial to the other CTA's shared memory (st.async, counted on the receiver's
//      mbarrier); each CTA sums the CS partials in cluster-rank order (the same sum in every CTA, whatever the
//      timing), splits it into hi + lo halves for the expand's mma (as lora_expand.cu), and stores its share of v;
//   3. expand: streams y[tile rows, its 1/CS of the 128-column stages of every adapted slice] and those rows of B
//      through the same ring: the y tile enters the mma accumulators, y + (scale v) B^T leaves by stmatrix, then
//      16-byte stores.
// The ring runs on across the phase change: the first y stages are in flight during the exchange. Each A and B
// element is read once per cluster, x and y once.
// PDL: the slot tables, A and B are read before griddepcontrol.wait, x and y after it.
#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"
#include "backends/cuda/lora/lora_launch.cuh"

namespace punica::cuda::lora_detail {
namespace {

// Warps per CTA. 16 (4 per scheduler) against 8 (H100, tenth session, both builds on one machine): 4 x 512 tokens
// r = 16 23.71 -> 23.00 us, r = 64 33.55 -> 30.84; each warp's stage is a chain of dependent instructions, and 2 warps
// per scheduler left the issue slots idle 67% of the time (Nsight Compute).
constexpr int kPW = 16;
constexpr int kPT = kPW * 32;   // threads per CTA

// The tile plan: 2-CTA clusters (one TPC) of 32-row tiles, one CTA per SM. 66 such clusters fit at once on an
// H100, so 4 x 512 tokens (64 clusters) run one CTA on each of 128 SMs. Measured against 4-CTA clusters of 64-row
// tiles with two CTAs per SM allowed (ninth session): there 32 clusters did not fit one CTA per SM (30 do), ~8 SMs
// hosted two CTAs, and their clusters finished last (r = 16 27.5 us against 24.7; r = 64 40.9 against 33.9).
template <int NV>
struct PrefillLayout {
  static constexpr int kCS = 2;    // CTAs per cluster
  static constexpr int kTM = 32;   // token rows per tile
  static constexpr int kMT = kTM / 16;  // m16 tiles per tile
  // Stage width: h_in columns per shrink stage and y columns per expand stage; each step's fixed cost (barrier,
  // wait, loop) is paid per 8 KB of x or y.
  static constexpr int kW = 128;
  static constexpr int kP = kW + 8;   // halves: x / A / y stage row pitch (rows 16 bytes off a bank multiple)
  static constexpr int kCPR = kW / 8; // 16-byte chunks per stage row
  static constexpr int kBP = NV + 8;  // halves: B stage rows (one per output column, ranks contiguous)
  static constexpr int kVP = NV + 4;  // floats: partial v rows
  static constexpr int kHP = NV + 8;  // halves: v hi / lo rows (in the ring slot that is free during the exchange)
  static constexpr int kShrinkStage = (kTM + NV) * kP * 2;
  static constexpr int kExpandStage = kTM * kP * 2 + kW * kBP * 2;
  static constexpr int kStageBytes = kShrinkStage > kExpandStage ? kShrinkStage : kExpandStage;
  // 9 stages at NV = 16, 7 above (64 / 48 KB of x in flight), 136-208 KB in all: more than half an SM's shared
  // memory, so that no SM takes two CTAs (with 7 stages at NV = 16, 132 clusters fit).
  static constexpr int kStages = NV <= 16 ? 9 : 7;
  static constexpr int kOffRecv = kStages * kStageBytes;  // [kCS][kTM][kVP] floats: the cluster's partial v tiles
  static constexpr int kSmemBytes = kOffRecv + kCS * kTM * kVP * 4;
  static constexpr int kHiLoBytes = kTM * kHP * 2;
  static_assert(2 * kHiLoBytes <= kStageBytes, "v hi and lo fit in one ring slot");
  static_assert(kStageBytes % 16 == 0 && kOffRecv % 16 == 0 && kHiLoBytes % 16 == 0, "16-byte aligned regions");
  static_assert(kSmemBytes <= 226 * 1024 && kSmemBytes > 114 * 1024, "one CTA per SM");
};

// A slice as the segment's slot adapts it; r == 0: not adapted (no A or B, or rank 0), its columns are skipped.
struct PrefillSlice {
  const void* a;
  const void* b;
  int r;
  float scale;
  int h_out;
  int y_off;  // y_col_offset
  int jobs;   // 128-column expand stages (0 when r == 0)
  int pad;
};

__device__ __forceinline__ void prefill_stamp(const PrefillArgs& p, int slot) {
  if (p.trace != nullptr && threadIdx.x == 0) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    p.trace[(static_cast<size_t>(blockIdx.y) * gridDim.x + blockIdx.x) * kLoraTraceSlots + slot] = t;
  }
}

template <typename T, int NV>
__global__ void __launch_bounds__(kPT, 1) lora_prefill_kernel(const PrefillArgs p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  (void)p;  // clusters, stmatrix and PDL need sm_90; the host launches this kernel only there
#else
  using L = PrefillLayout<NV>;
  constexpr int CS = L::kCS, kTM = L::kTM, kMT = L::kMT;
  constexpr int kKS = L::kW, kNB = L::kW, kXP = L::kP, kYP = L::kP, kCPR = L::kCPR;
  constexpr int kNCH = kTM * kCPR / kPT;  // 16-byte chunks per thread of an x or y stage
  constexpr int kRS = kPT / kCPR;         // rows between a thread's chunks
  static_assert(kNCH >= 1 && kTM * kCPR % kPT == 0 && kPT % kCPR == 0, "the threads cover an x / y stage exactly");
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ PrefillSlice sl[ops::kMaxLoraSlices];
  prefill_stamp(p, 10);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, q = lane & 3;
  const int crank = static_cast<int>(blockIdx.x) % CS;  // the cluster is CS CTAs along x
  const int seg = blockIdx.y;
  const int seg_begin = p.seg.seg_start[seg], seg_end = p.seg.seg_start[seg + 1];
  const int t0 = seg_begin + static_cast<int>(blockIdx.x / CS) * kTM;
  const int slot = p.seg.seg_slot[seg];
  // The same in every CTA of the cluster: whole clusters leave, before any cluster barrier.
  if (t0 >= seg_end || slot < 0) return;
  const int rows = min(kTM, seg_end - t0);

  if (tid < ops::kMaxLoraSlices) {
    PrefillSlice s{};
    if (tid < p.num_slices) {
      const SlotSlice ss = slot_slice(p, tid, slot);
      if (ss.a && ss.b && ss.rank > 0) {
        s.a = ss.a;
        s.b = ss.b;
        s.r = min(ss.rank, p.v_rank_stride);
        s.scale = ss.scale;
        s.h_out = pick_slice(p.h_out, tid);
        s.y_off = pick_slice(p.y_col_offset, tid);
        s.jobs = (s.h_out + kNB - 1) / kNB;
      }
    }
    sl[tid] = s;
  }
  __shared__ uint64_t bar_recv;  // completes when the other CTAs' partial v tiles have landed here
  if (tid == 0) {
    mbar_init(&bar_recv, 1);
    fence_mbar_init();
  }
  __syncthreads();
  const int total_jobs = sl[0].jobs + sl[1].jobs + sl[2].jobs;
  if (total_jobs == 0) return;  // no slice adapted: the same in every CTA of the cluster
  const int used = p.num_slices * p.rp;  // v columns in use (<= NV)
  if (tid == 0) mbar_arrive_expect_tx(&bar_recv, static_cast<unsigned>((CS - 1) * kTM * used * 4));
  cluster_arrive_relaxed();  // this CTA's barrier exists; the matching wait comes before the first push

  const int rp = p.rp;
  const int nk = (p.h_in + kKS - 1) / kKS;
  const int k_begin = crank * nk / CS;
  const int n1 = (crank + 1) * nk / CS - k_begin;  // this CTA's shrink stages
  const int cj_begin = crank * total_jobs / CS;
  const int n3 = (crank + 1) * total_jobs / CS - cj_begin;  // this CTA's expand stages
  const int njobs = n1 + n3;
  const T* x = static_cast<const T*>(p.x);
  T* y = static_cast<T*>(p.y);
  const uint32_t ring = smem_addr(smem);

  // Every load has a fixed (row, 16-byte chunk) per thread, its addresses computed here once and stepped per stage.
  // (The first version computed them per chunk and step: its warps spent ~240 instructions per step, issue-bound
  // at 2 warps per scheduler; H100, Nsight Compute, ninth session.)
  // x and y tiles: rows rr + kRS * i, columns kc..kc + 7 of the stage (x and y stages share the row pitch).
  static_assert(kXP == kYP, "x and y stages share the per-thread offsets");
  const int rr = tid / kCPR, kc = (tid % kCPR) * 8;
  const int k_first = k_begin * kKS;
  bool row_ok[kNCH];
  uint32_t tile_off[kNCH];  // bytes
  const T* x_src[kNCH];     // stepped by kKS per shrink stage
  T* y_row[kNCH];
#pragma unroll
  for (int i = 0; i < kNCH; ++i) {
    row_ok[i] = rr + kRS * i < rows;
    tile_off[i] = ((rr + kRS * i) * kXP + kc) * 2;
    x_src[i] = x + (t0 + rr + kRS * i) * p.x_stride + kc + k_first;
    y_row[i] = y + (t0 + rr + kRS * i) * p.y_stride + kc;
  }
  // A stage rows rr + kRS * i (slice row / rp, rank row % rp), the same column chunk kc.
  constexpr int kAChunks = (NV * kCPR + kPT - 1) / kPT;
  const bool a_thread = NV * kCPR >= kPT || tid < NV * kCPR;
  const T* a_src[kAChunks];
  bool a_ok[kAChunks];
  uint32_t a_off[kAChunks];  // bytes from the stage start
#pragma unroll
  for (int i = 0; i < kAChunks; ++i) {
    const int row = rr + kRS * i, sa = row / rp, jr = row - sa * rp;
    a_off[i] = ((kTM + row) * kXP + kc) * 2;
    a_ok[i] = a_thread && row < used && jr < sl[min(sa, 2)].r;
    a_src[i] = a_ok[i] ? static_cast<const T*>(sl[sa].a) + static_cast<int64_t>(jr) * p.h_in + kc + k_first : x;
  }
  // whether this thread's chunk of shrink stage j is inside h_in (zeros past it)
  auto k_inside = [&](int j) { return k_first + j * kKS + kc < p.h_in; };

  // Expand stages in order (slice, first column), slices without an adapter skipped; the fields a stage's loads
  // and epilogue use, cached while the slice does not change.
  struct ColIt {
    int s, n0, h_out, r;
    int64_t col;   // y column of the stage: y_col_offset + n0
    const T* b;    // B row of the stage's first column: b + n0 * r
  };
  auto enter = [&](ColIt& it, int s, int n0) {
    it.s = s;
    it.n0 = n0;
    if (s >= ops::kMaxLoraSlices) return;
    const PrefillSlice ps = sl[s];
    it.h_out = ps.h_out;
    it.r = ps.r;
    it.col = ps.y_off + n0;
    it.b = static_cast<const T*>(ps.b) + static_cast<int64_t>(n0) * ps.r;
  };
  auto next_col = [&](ColIt& it) {
    if (it.n0 + kNB < it.h_out) {
      it.n0 += kNB;
      it.col += kNB;
      it.b += static_cast<int64_t>(kNB) * it.r;
      return;
    }
    int s = it.s + 1;
    while (s < ops::kMaxLoraSlices && sl[s].jobs == 0) ++s;
    enter(it, s, 0);
  };
  ColIt first_col;
  {
    int s = 0, gj = cj_begin;
    while (s < ops::kMaxLoraSlices && gj >= sl[s].jobs) gj -= sl[s++].jobs;
    enter(first_col, s, gj * kNB);
  }
  // B stage: kNB columns x rp / 8 chunks; chunk c = tid + kPT * i is column c >> lg, ranks (c & (rp / 8 - 1)) * 8.
  const int lg = rp == 16 ? 1 : rp == 32 ? 2 : 3;
  constexpr int kBChunks = (kNB * (NV / 8) + kPT - 1) / kPT;  // at most: rp <= NV
  int b_col[kBChunks], b_k[kBChunks];
  bool b_in[kBChunks];
  uint32_t b_off[kBChunks];  // bytes from the stage start
#pragma unroll
  for (int i = 0; i < kBChunks; ++i) {
    const int c = tid + kPT * i;
    b_col[i] = c >> lg;
    b_k[i] = (c & ((rp >> 3) - 1)) * 8;
    b_in[i] = c < kNB * (rp >> 3);
    b_off[i] = (kTM * kYP + b_col[i] * L::kBP + b_k[i]) * 2;
  }

  int iss_slot = 0;  // ring slot of the next stage to load
  auto issue_a = [&](uint32_t st, bool kin) {  // A's columns of the next shrink stage
#pragma unroll
    for (int i = 0; i < kAChunks; ++i)
      if (a_thread)
        cp_async_16_at(st + a_off[i], a_ok[i] && kin ? a_src[i] : x, a_ok[i] && kin ? 16 : 0);
#pragma unroll
    for (int i = 0; i < kAChunks; ++i) a_src[i] += kKS;
  };
  // x rows of the next shrink stage, zeros past h_in. Rows past the tile's are not loaded: an mma row depends on its
  // own x (or v) row only, and those rows are never stored.
  auto issue_x = [&](uint32_t st, bool kin) {
#pragma unroll
    for (int i = 0; i < kNCH; ++i) {
      if (row_ok[i]) cp_async_16_at(st + tile_off[i], kin ? x_src[i] : x, kin ? 16 : 0);
      x_src[i] += kKS;
    }
  };
  auto issue_expand = [&](uint32_t st, const ColIt& it) {  // the y tile and B's rows of an expand stage
    const bool cin = it.n0 + kc < it.h_out;
#pragma unroll
    for (int i = 0; i < kNCH; ++i)  // rows past the tile's: not loaded (as in issue_x)
      if (row_ok[i]) cp_async_16_at(st + tile_off[i], cin ? y_row[i] + it.col : y, cin ? 16 : 0);
    if ((it.r & 7) == 0 && (reinterpret_cast<uintptr_t>(it.b) & 15) == 0) {
#pragma unroll
      for (int i = 0; i < kBChunks; ++i) {
        const bool ok = it.n0 + b_col[i] < it.h_out && b_k[i] < it.r;
        if (b_in[i]) cp_async_16_at(st + b_off[i], ok ? it.b + b_col[i] * it.r + b_k[i] : y, ok ? 16 : 0);
      }
    } else {  // odd ranks: B rows are not 16-byte aligned
      T* db = reinterpret_cast<T*>(smem + (st - ring)) + kTM * kYP;
      for (int e = tid; e < kNB * rp; e += kPT) {
        const int n = e / rp, k = e - n * rp;
        db[n * L::kBP + k] = (it.n0 + n < it.h_out && k < it.r) ? it.b[n * it.r + k] : T(0.f);
      }
    }
  };
  auto slot_addr = [&](int s) { return ring + static_cast<uint32_t>(s * L::kStageBytes); };
  auto next_slot = [](int s) { return s + 1 == L::kStages ? 0 : s + 1; };

  // A of the first stages before the wait (it joins the first commit group), x and y after it.
  for (int j = 0; j < L::kStages - 1 && j < n1; ++j) issue_a(slot_addr(j), k_inside(j));
  griddep_wait();
  griddep_launch_dependents();
  prefill_stamp(p, 0);
  ColIt iss = first_col;  // the next expand stage to load
  for (int j = 0; j < L::kStages - 1; ++j) {
    if (j < n1) {
      issue_x(slot_addr(iss_slot), k_inside(j));
    } else if (j < njobs) {
      issue_expand(slot_addr(iss_slot), iss);
      next_col(iss);
    }
    cp_async_commit();
    iss_slot = next_slot(iss_slot);
  }
  // Job j's stage has landed and every thread is done with job j - 1's buffer, which then takes job j + kStages - 1.
  auto advance = [&](int j) {
    cp_async_wait<L::kStages - 2>();
    __syncthreads();
    const int nj = j + L::kStages - 1;
    const uint32_t st = slot_addr(iss_slot);
    if (nj < n1) {
      const bool kin = k_inside(nj);
      issue_a(st, kin);
      issue_x(st, kin);
    } else if (nj < njobs) {
      issue_expand(st, iss);
      next_col(iss);
    }
    cp_async_commit();
    iss_slot = next_slot(iss_slot);
  };

  // 1. Shrink. Warps: 2 row halves (wm, kMI m tiles each) x kKG groups of the stage's k16 steps (wk, wk + kKG..).
  constexpr int kMI = kMT / 2, kKG = kPW / 2;
  static_assert(kKS % (16 * kKG) == 0, "every k group gets the same k16 steps");
  const int wm = warp & 1, wk = warp >> 1;
  const uint32_t x_frag = ((wm * kMI * 16 + (lane & 15)) * kXP + wk * 16 + (lane >> 4) * 8) * 2;
  const uint32_t a_frag = (kTM * kXP + ((lane & 7) + (lane >> 4) * 8) * kXP + wk * 16 + ((lane >> 3) & 1) * 8) * 2;
  float acc[kMI][NV / 8][4];
#pragma unroll
  for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
    for (int n = 0; n < NV / 8; ++n) acc[mi][n][0] = acc[mi][n][1] = acc[mi][n][2] = acc[mi][n][3] = 0.f;
  int cmp_slot = 0;
  int j = 0;
  for (; j < n1; ++j) {
    advance(j);
    const uint32_t st = slot_addr(cmp_slot);
    cmp_slot = next_slot(cmp_slot);
#pragma unroll
    for (int ks = 0; ks < kKS / (16 * kKG); ++ks) {  // this warp's k16 steps of the stage: wk + kKG * ks
      uint32_t af[kMI][4];
#pragma unroll
      for (int mi = 0; mi < kMI; ++mi) ldmatrix_x4_at(af[mi], st + x_frag + (mi * 16 * kXP + ks * 16 * kKG) * 2);
#pragma unroll
      for (int jj = 0; jj < NV / 16; ++jj) {
        if (jj * 16 >= used) break;  // columns past the slices' ranks are zeros
        uint32_t bf[4];
        ldmatrix_x4_at(bf, st + a_frag + (jj * 16 * kXP + ks * 16 * kKG) * 2);
#pragma unroll
        for (int mi = 0; mi < kMI; ++mi) {
          MmaF16<T>::run(acc[mi][2 * jj], af[mi], bf);
          MmaF16<T>::run(acc[mi][2 * jj + 1], af[mi], bf + 2);
        }
      }
    }
  }

  prefill_stamp(p, 1);
  // 2. Exchange. The kKG k groups' partials are summed in a fixed order into this CTA's slot of the receive buffer;
  // the slot goes to the other CTAs by st.async (each receiver waits for its own bytes on an mbarrier: no fence on
  // the sender, whose release arrival would first wait for its prefetched y stages); then every CTA sums the CS
  // slots in cluster-rank order, so all get the same v whatever the timing.
  float* recv = reinterpret_cast<float*>(smem + L::kOffRecv);
  float* vp = recv + crank * kTM * L::kVP;
  // v hi / lo go to the ring slot the next stage will load into (the last shrink stage's): free until the first
  // expand step's advance, by when every warp holds its fragments.
  T* vh = reinterpret_cast<T*>(smem + iss_slot * L::kStageBytes);
  T* vl = vh + kTM * L::kHP;
#pragma unroll
  for (int w = 0; w < kKG; ++w) {
    if (wk == w) {
#pragma unroll
      for (int mi = 0; mi < kMI; ++mi)
#pragma unroll
        for (int n = 0; n < NV / 8; ++n)
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            float2* cell =
                reinterpret_cast<float2*>(vp + (wm * kMI * 16 + mi * 16 + g + half * 8) * L::kVP + n * 8 + 2 * q);
            const float2 add = make_float2(acc[mi][n][2 * half], acc[mi][n][2 * half + 1]);
            if (w == 0) *cell = add;
            else *cell = make_float2(cell->x + add.x, cell->y + add.y);
          }
    }
    __syncthreads();
  }
  const int n4 = used >> 2;
  cluster_wait();  // every CTA of the cluster runs and has initialised its barrier
  prefill_stamp(p, 2);
  {
    uint32_t rslot[CS], rbar[CS];
#pragma unroll
    for (int c = 0; c < CS; ++c) {
      rslot[c] = map_remote(vp, c);  // this CTA's slot in CTA c
      rbar[c] = map_remote(&bar_recv, c);
    }
    for (int e = tid; e < kTM * n4; e += kPT) {
      const int row = e / n4, col = (e - row * n4) * 4;
      const uint32_t off = static_cast<uint32_t>((row * L::kVP + col) * 4);
      const float4 v4 = *reinterpret_cast<const float4*>(vp + row * L::kVP + col);
#pragma unroll
      for (int c = 0; c < CS; ++c)
        if (c != crank) st_async_v4_mapped(rslot[c] + off, v4, rbar[c]);
    }
  }
  mbar_wait(&bar_recv, 0);
  {
    const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
    for (int e = tid; e < kTM * n4; e += kPT) {
      const int row = e / n4, col = (e - row * n4) * 4;
      float4 sum = *reinterpret_cast<const float4*>(recv + row * L::kVP + col);
#pragma unroll
      for (int c = 1; c < CS; ++c) {
        const float4 part = *reinterpret_cast<const float4*>(recv + (c * kTM + row) * L::kVP + col);
        sum.x += part.x;
        sum.y += part.y;
        sum.z += part.z;
        sum.w += part.w;
      }
      const float vals[4] = {sum.x, sum.y, sum.z, sum.w};
      const int s = col / rp, jr = col - s * rp;  // four columns never straddle a slice (rp % 16 == 0)
      // v enters the expand pre-scaled: y + (scale v) B^T, so the mma accumulates onto y itself (with fp16, |scale v|
      // must stay below 65504, as |v| must in lora_expand.cu).
      const float scale = sl[s].scale;
      T hi[4], lo[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        split_hi_lo(vals[i] * scale, hi[i], lo[i]);
        // Ranks past the slot's: A's rows there are zeros, but an Inf in x makes them Inf * 0 = NaN, which would meet
        // B's zero padding in the expand and turn the whole y row into NaN.
        if (jr + i >= sl[s].r) hi[i] = lo[i] = T(0.f);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        vh[row * L::kHP + col + i] = hi[i];
        vl[row * L::kHP + col + i] = lo[i];
      }
      if (row < rows && row % CS == crank) {  // v's rows are stored by the CTAs in turn
        float* dst = p.v + (t0 + row) * v_row + s * p.v_rank_stride;
#pragma unroll
        for (int i = 0; i < 4; ++i)
          if (jr + i < sl[s].r) dst[jr + i] = vals[i];
      }
    }
  }
  // Pairs with the wait at the end: no CTA leaves before the others' pushes into it have landed (they have, as it
  // waited for them) and before its own pushes were issued.
  cluster_arrive_relaxed();
  __syncthreads();  // vh / vl complete
  prefill_stamp(p, 3);

  // 3. Expand. Warps: kMT row groups of 16 (wr) x kPW / kMT column parts of the stage (wc). The y tile enters the
  // accumulators (ldmatrix gives 16-bit pairs in their layout), the mma adds (scale v) B^T, stmatrix writes it back
  // rounded.
  // Each warp holds v's fragments of its 16 rows and every slice's columns in registers.
  constexpr int kWC = kPW / kMT, kWCols = kNB / kWC;  // column parts, columns per warp
  static_assert(kPW % kMT == 0 && kMT % 2 == 0 && kWCols % 16 == 0, "whole n8 tile pairs per warp");
  const int wr = warp % kMT, wc = warp / kMT;
  constexpr int kNT = kWCols / 8;  // n8 tiles per warp
  uint32_t fh[NV / 16][4], fl[NV / 16][4];
#pragma unroll
  for (int kk = 0; kk < NV / 16; ++kk) {
    if (kk * 16 >= used) break;
    const int off = (wr * 16 + (lane & 15)) * L::kHP + kk * 16 + (lane >> 4) * 8;
    ldmatrix_x4(fh[kk], vh + off);
    ldmatrix_x4(fl[kk], vl + off);
  }
  // lanes 8i..8i+7 address the rows of 8x8 block i: n8 tile (i >> 1), rows (i & 1) * 8 + lane % 8
  const uint32_t y_frag =
      ((wr * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * kYP + wc * kWCols + (lane >> 4) * 8) * 2;
  const uint32_t b_frag =
      (kTM * kYP + (wc * kWCols + (lane & 7) + (lane >> 4) * 8) * L::kBP + ((lane >> 3) & 1) * 8) * 2;
  ColIt at = first_col;  // the expand stage computed next
  for (; j < njobs; ++j, next_col(at)) {
    advance(j);
    const int k_lo = at.s * rp;  // the stage's slice: v columns k_lo .. k_lo + rp - 1
    const uint32_t st = slot_addr(cmp_slot);
    cmp_slot = next_slot(cmp_slot);
    float out[kNT][4];
#pragma unroll
    for (int h = 0; h < kNT / 2; ++h) {  // n8 tiles 2h, 2h + 1
      uint32_t yv[4];
      ldmatrix_x4_at(yv, st + y_frag + h * 16 * 2);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = pair_to_float2(yv[i], T());
        out[2 * h + (i >> 1)][2 * (i & 1)] = f.x;
        out[2 * h + (i >> 1)][2 * (i & 1) + 1] = f.y;
      }
    }
#pragma unroll
    for (int kk = 0; kk < NV / 16; ++kk) {
      if (kk * 16 < k_lo || kk * 16 >= k_lo + rp) continue;  // another slice's columns
#pragma unroll
      for (int np = 0; np < kNT / 2; ++np) {
        uint32_t bf[4];
        ldmatrix_x4_at(bf, st + b_frag + (np * 16 * L::kBP + kk * 16 - k_lo) * 2);
        MmaF16<T>::run(out[2 * np], fh[kk], bf);
        MmaF16<T>::run(out[2 * np], fl[kk], bf);
        MmaF16<T>::run(out[2 * np + 1], fh[kk], bf + 2);
        MmaF16<T>::run(out[2 * np + 1], fl[kk], bf + 2);
      }
    }
#pragma unroll
    for (int h = 0; h < kNT / 2; ++h) {
      uint32_t yv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i)
        yv[i] = float2_to_pair(out[2 * h + (i >> 1)][2 * (i & 1)], out[2 * h + (i >> 1)][2 * (i & 1) + 1], T());
      stmatrix_x4_at(st + y_frag + h * 16 * 2, yv);
    }
    __syncthreads();
    if (at.n0 + kc < at.h_out) {
      const T* sy = reinterpret_cast<const T*>(smem + (st - ring));
#pragma unroll
      for (int i = 0; i < kNCH; ++i)
        if (row_ok[i]) *reinterpret_cast<uint4*>(y_row[i] + at.col) = *reinterpret_cast<const uint4*>(sy + tile_off[i] / 2);
    }
  }
  prefill_stamp(p, 11);
  cluster_wait();  // see the arrival after the exchange
#endif
}

// The instance's shared-memory limit, set once per process (a call per launch is host time in eager use).
template <typename T, int NV>
cudaError_t allow_smem() {
  static const cudaError_t e = cudaFuncSetAttribute(lora_prefill_kernel<T, NV>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    PrefillLayout<NV>::kSmemBytes);
  return e;
}

template <typename T, int NV>
Status launch(const PrefillArgs& a, bool pdl, cudaStream_t stream) {
  using L = PrefillLayout<NV>;
  auto kernel = lora_prefill_kernel<T, NV>;
  PUNICA_CUDA_RETURN_IF_ERROR((allow_smem<T, NV>()));
  const int tiles = (std::max(1, a.max_len) + L::kTM - 1) / L::kTM;
  const dim3 grid(static_cast<unsigned>(L::kCS * tiles), static_cast<unsigned>(a.num_segments));
  return launch_kernel(kernel, grid, dim3(kPT), L::kSmemBytes, pdl, L::kCS, stream, "lora_prefill_kernel launch", a);
}

template <typename T, int NV>
Status capacity(int* out) {
  using L = PrefillLayout<NV>;
  auto kernel = lora_prefill_kernel<T, NV>;
  PUNICA_CUDA_RETURN_IF_ERROR((allow_smem<T, NV>()));
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(L::kCS * 64);
  cfg.blockDim = dim3(kPT);
  cfg.dynamicSmemBytes = L::kSmemBytes;
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = L::kCS;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  int clusters = 0;
  if (cudaOccupancyMaxActiveClusters(&clusters, kernel, &cfg) != cudaSuccess) {
    (void)cudaGetLastError();  // not an error of the call: the kernel just cannot run here
    clusters = 0;
  }
  *out = clusters;
  return Status::ok();
}

template <typename Fn>
Status dispatch_nv(DType dtype, int nv, Fn&& fn) {
  return dispatch_dtype(dtype, [&](auto t) -> Status {
    using T = decltype(t);
    switch (nv) {
      case 16: return fn(T{}, std::integral_constant<int, 16>{});
      case 32: return fn(T{}, std::integral_constant<int, 32>{});
      case 64: return fn(T{}, std::integral_constant<int, 64>{});
      default: return internal_error("lora_prefill: no kernel for " + std::to_string(nv) + " v columns");
    }
  });
}

}  // namespace

Status lora_prefill_capacity(DType dtype, int nv, int* clusters) {
  static std::mutex mu;
  static std::map<std::pair<int, int>, int> known;  // (dtype, nv) -> clusters; the device does not change
  const std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(static_cast<int>(dtype), nv);
  if (auto it = known.find(key); it != known.end()) {
    *clusters = it->second;
    return Status::ok();
  }
  PUNICA_RETURN_IF_ERROR(dispatch_nv(dtype, nv, [&](auto t, auto n) {
    return capacity<decltype(t), decltype(n)::value>(clusters);
  }));
  known[key] = *clusters;
  return Status::ok();
}

Status lora_launch_prefill(DType dtype, const PrefillArgs& args, int nv, bool pdl, cudaStream_t stream) {
  return dispatch_nv(dtype, nv, [&](auto t, auto n) {
    return launch<decltype(t), decltype(n)::value>(args, pdl, stream);
  });
}

}  // namespace punica::cuda::lora_detail
