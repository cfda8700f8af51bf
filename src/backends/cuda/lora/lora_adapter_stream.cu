// The adapter-streaming decode kernel: the whole add-on in one launch for decode batches of many adapters (segments
// of at most 4 tokens), one CTA per segment, or one cluster of CS = 2 / 4 / 8 CTAs per segment (the host's choice: the
// largest CS with adapted segments x CS <= SMs, larger where that plan does not fit; each CTA then takes 1 / CS of
// h_in in the shrink and of every slice's columns in the expand).
//
// Why: at these shapes the add-on is a stream of adapter weights (128 adapters of rank 16 at 4096 x 4096: 33.5 MB),
// and the two-kernel streaming path (lora_stream.cu) pays a kernel boundary and two ramps: its shrink and expand ran
// back to back without overlap (H100, distinct r = 16 B = 128: 10.6 + 9.1 us alone, 19.5 together). Here one CTA owns
// an adapter's whole weight stream, A's stages then B's, through one ring of 32 KB slots (3 stages in flight, 16-byte
// cp.async by all 512 threads, the first stages before the PDL wait), so B's loads run while the shrink's last stages
// are summed and v is exchanged. docs/perf/lora-kernels.md (eleventh session) has the measurements behind each choice:
// the first versions were bound by instructions per stage (integer divisions, f16 -> f32 conversions), not by memory.
//
// Each stage (512 threads, 16 warps):
//   shrink (r rows x per = 16384 / rp columns of A, rp = r rounded up to 16 / 32 / 64 / 128): mma.m16n8k16 with x as
//     the 16-row operand (the segment's token rows, zeros below) and A's rows as the 8-column one, by ldmatrix from a
//     slot whose 16-byte chunks are XOR-swizzled by row; warp w owns rank group w % (rp / 16) and 4 of the stage's
//     64 / (rp / 16) k steps, and keeps its fp32 sums over all stages; the warps' sums meet in shared memory once per
//     slice.
//   expand (per = 16384 / rp columns of B, each column's r halves contiguous): at ranks 16 / 32 / 64 mma with v as the
//     16-row operand (hi + lo halves: v stays fp32 to ~16-22 bits) and the columns by ldmatrix from swizzled chunks;
//     other ranks on the CUDA cores. Results go into the shared-memory y tile (staged after the PDL wait; y is rounded
//     once), which is stored with 16-byte stores at the end.
// With clusters each CTA pushes its partial v (rows x ranks of each slice, at most 1536 floats) into every CTA's
// receive buffer with st.async counted on that CTA's mbarrier; sums run in cluster-rank order: deterministic, no
// atomics. A and B slot pointers that are not 16-byte aligned take plain loads into the ring (no prefetch overlap;
// the oracle's pools are aligned, so those paths have been read, not run).
#include <cooperative_groups.h>

#include <algorithm>
#include <climits>
#include <string>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"
#include "backends/cuda/lora/lora_launch.cuh"

namespace punica::cuda::lora_detail {
namespace {

namespace cg = cooperative_groups;

constexpr int kAT = 512;                              // threads per CTA
constexpr int kSlot = kAdapterStreamStageBytes / 2;   // halves per ring slot
constexpr int kPP = kAdapterStreamStageBytes / 16 / kAT;  // 16-byte pieces per thread and stage
constexpr int kLogPieces = kSlot / 8 == 2048 ? 11 : 10;  // log2 of the 16-byte pieces of a slot
static_assert(kSlot / 8 == (1 << kLogPieces) && kPP % 2 == 0, "a slot is 1024 or 2048 pieces, an even number per thread");
[[maybe_unused]] constexpr int kNS = kAdapterStreamStages;  // ring slots (unused where sm_80 compiles the body out)

[[maybe_unused]] __device__ __forceinline__ int pad_rank(int r) { return r <= 16 ? 16 : r <= 32 ? 32 : r <= 64 ? 64 : 128; }

// 8 halves of b times 8 fp32 values at v (16-byte aligned), added to two sums (two chains of FMAs)
template <typename T>
__device__ __forceinline__ void dot8f(uint4 b, const float* v, float& acc0, float& acc1) {
  const float4 v0 = *reinterpret_cast<const float4*>(v), v1 = *reinterpret_cast<const float4*>(v + 4);
  const float2 b0 = pair_to_float2(b.x, T()), b1 = pair_to_float2(b.y, T()), b2 = pair_to_float2(b.z, T()),
               b3 = pair_to_float2(b.w, T());
  acc0 = fmaf(b0.x, v0.x, acc0);
  acc1 = fmaf(b1.x, v0.z, acc1);
  acc0 = fmaf(b0.y, v0.y, acc0);
  acc1 = fmaf(b1.y, v0.w, acc1);
  acc0 = fmaf(b2.x, v1.x, acc0);
  acc1 = fmaf(b3.x, v1.z, acc1);
  acc0 = fmaf(b2.y, v1.y, acc0);
  acc1 = fmaf(b3.y, v1.w, acc1);
}

template <typename T>
__device__ __forceinline__ uint32_t pack_pair(T lo, T hi) {
  return static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&lo)) |
         (static_cast<uint32_t>(*reinterpret_cast<const uint16_t*>(&hi)) << 16);
}

// One phase of a CTA's stream as one thread sees it (lora_adapter_stream_kernel: setup).
template <typename T>
struct Phase {
  int q;            // nst index; 2 * kMaxLoraSlices: past the end
  int n;            // stages
  bool is_a, vec, lead;
  int s, r, per;    // slice, its rank, A columns / B columns per stage
  // copies: this thread's kPP 16-byte pieces of a stage
  const T* base;      // the pieces' sources at stage 0: base + src[h]
  int src[kPP];
  int dst[kPP];       // halves into the slot
  int lim[kPP];       // the piece holds data at stage ci while ci * adv < lim (A: else zero-filled); INT_MIN: no piece
  int adv;
  int step;           // halves the source advances per stage
  // compute
  int lane_group;   // B on the CUDA cores: threads per column, summed by shuffles
  int row;          // B on the CUDA cores: first column within the stage (the others: + kAT / lane_group each)
  int off[kPP];     // A and B with mma: this lane's ldmatrix offsets in a slot; B on the CUDA cores: first B element
                    // of each column (kPP / 2) in a slot
  int xoff[kPP];    // A: the x fragment's column in the stage per k step; B on the CUDA cores: [0] first rank, [1] end
                    // of the rank range
  float scale;      // B
  int ycol, ncols;  // B: the slice's first column in the y tile; the CTA's columns of the slice
  bool mma;         // B on the tensor cores (rank 16, 32 or 64); A always is
  int rg;           // A: this warp's group of 16 ranks (read only in the set-up; kept so that the build is the one
                    // measured: without it ptxas allocates registers differently, unmeasured)
  int ksteps;       // B (mma): k steps of 16 ranks
};

// Phase q of a CTA's stream (or the first one after it with stages; q = 2 kMaxLoraSlices: the end) as thread tid
// sees it; powers of two by shifts (a division costs ~25 instructions). Inlined: as a call it spilled 100-150 bytes.
template <typename T>
__device__ __forceinline__ Phase<T> stream_phase(const AdapterStreamArgs& p, const CtaSlice* si, const int* nst, int q,
                                              int tid, int kb, int kvalid) {
  constexpr int kS = ops::kMaxLoraSlices;
  while (q < 2 * kS && nst[q] == 0) ++q;
  Phase<T> f{};
  f.q = q;
  if (q == 2 * kS) return f;
  f.is_a = q < kS;
  f.s = f.is_a ? q : q - kS;
  const CtaSlice& c = si[f.s];
  const int rp = pad_rank(c.r), lg = rp == 16 ? 4 : rp == 32 ? 5 : rp == 64 ? 6 : 7;
  f.n = nst[q];
  f.per = kSlot >> lg;  // A columns / B columns per stage
  f.r = c.r;
  const int warp = tid >> 5, lane = tid & 31;
  if (f.is_a) {
    // copies: piece pc (0 .. rp * ppr) of a stage is row pc / ppr, 8 columns at (pc % ppr) * 8; ppr = 2048 / rp (rows
    // >= r are not copied: they feed only v columns >= r, never read). In
    // the slot a row's 16-byte chunk c sits at chunk c ^ (row & 7): ldmatrix's 8 rows then hit 8 different banks.
    const int lp = kLogPieces - lg;
    f.vec = (reinterpret_cast<uintptr_t>(c.a) & 15) == 0;
    f.base = static_cast<const T*>(c.a) + kb;
#pragma unroll
    for (int h = 0; h < kPP; ++h) {
      const int pc = tid + h * kAT, row = pc >> lp, ch = pc & ((1 << lp) - 1);
      f.src[h] = row * p.h_in + ch * 8;  // < 128 * h_in: an int
      f.dst[h] = row * f.per + ((ch ^ (row & 7)) << 3);
      // stages in which the piece holds data (k0 + k < kvalid); the rest are zero-filled; rows past r: none
      f.lim[h] = row < c.r ? kvalid - ch * 8 : INT_MIN;  // data while k0 + ch * 8 < kvalid
    }
    f.step = f.per;
    f.adv = f.per;
    // compute, mma.m16n8k16 with x as the 16-row operand (token rows, zeros past the segment's) and the stage's A
    // rows as the 8-column one: warp w takes rank group rg = w % RG (RG = rp / 16) and the stage's k steps
    // w / RG + h * 16 / RG, h < 4 (per / 16 = 64 / RG k steps per stage).
    const int RG = rp >> 4;
    f.rg = warp & (RG - 1);
    const int row = f.rg * 16 + (lane & 7) + (lane >> 4) * 8;  // this lane's ldmatrix row
#pragma unroll
    for (int h = 0; h < kPP; ++h) {
      const int ks = (warp >> (lg - 4)) + h * (16 >> (lg - 4));  // warp / RG + h * 16 / RG
      const int ch = ks * 2 + ((lane >> 3) & 1);
      f.off[h] = row * f.per + ((ch ^ (row & 7)) << 3);
      f.xoff[h] = ks * 16 + 2 * (lane & 3);  // x fragment: token row lane / 4, k 2q, 2q + 1 (and + 8)
    }
  } else {
    // copies: the stage's columns of B are one contiguous run of per * r halves (the last stage's may be shorter).
    // With mma a column's cpc = r / 8 chunks are swizzled (chunk ^ (col >> sh) & (cpc - 1)), so that ldmatrix's 8
    // column rows hit 8 different bank groups.
    f.vec = (reinterpret_cast<uintptr_t>(c.b) & 15) == 0;
    f.mma = f.vec && (c.r == 16 || c.r == 32 || c.r == 64);
    const int lcpc = c.r == 16 ? 1 : c.r == 32 ? 2 : 3, sh = 3 - lcpc;
    f.base = static_cast<const T*>(c.b) + static_cast<int64_t>(c.col_b) * c.r;
    const int run = f.per * c.r / 8, total8 = c.ncols * c.r / 8;  // 16-byte pieces per full stage, in all
#pragma unroll
    for (int h = 0; h < kPP; ++h) {
      const int pc = tid + h * kAT;
      f.src[h] = pc * 8;
      const int col = pc >> lcpc, ch = pc & ((1 << lcpc) - 1);
      f.dst[h] = f.mma ? col * c.r + ((ch ^ ((col >> sh) & ((1 << lcpc) - 1))) << 3) : pc * 8;
      f.lim[h] = pc < run ? total8 - pc : INT_MIN;  // data while ci * run + pc < total8
    }
    f.step = f.per * c.r;
    f.adv = run;
    // compute: TPC = rp / 16 threads per column, each 16 of its ranks, kPP / 2 columns per thread
    const int tpc = rp >> 4;
    f.lane_group = tpc;
    f.row = tid >> (lg - 4);  // the first column within the stage (tid / tpc)
    const int sub = tid & (tpc - 1);
#pragma unroll
    for (int h = 0; h < kPP / 2; ++h) f.off[h] = (f.row + h * (kAT >> (lg - 4))) * c.r + sub * 16;
    f.xoff[0] = sub * 16;                     // its first rank
    f.xoff[1] = min(c.r, sub * 16 + 16);      // end of its rank range
    f.lead = sub == 0;
    if (f.mma) {
      // warp w takes the stage's column pairs (16 columns) w + 16 h, h < per / 256, each over all r / 16 k steps:
      // ldmatrix offsets u = h * ksteps + kk (always 4 of them: per / 256 * r / 16 = 4)
      f.ksteps = c.r >> 4;
      const int pairs = f.per >> 8;
#pragma unroll
      for (int h = 0; h < kPP; ++h) {
        const int lk = lg - 4;  // ksteps = r / 16 = rp / 16 here
        const int pr = warp + (h >> lk) * 16, kk = h & (f.ksteps - 1);
        const int col = pr * 16 + (lane & 7) + (lane >> 4) * 8, ch = kk * 2 + ((lane >> 3) & 1);
        f.off[h] = col * c.r + ((ch ^ ((col >> sh) & ((1 << lcpc) - 1))) << 3);
      }
      (void)pairs;
    }
    f.scale = c.scale;
    f.ycol = pick_slice(p.ycol, f.s);
    f.ncols = c.ncols;
  }
  return f;
}

template <typename T, int CS, int TOK>
__global__ void __launch_bounds__(kAT, 1) lora_adapter_stream_kernel(const AdapterStreamArgs p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  (void)p;  // PDL and clusters need sm_90; the host launches this kernel only there
#else
  extern __shared__ __align__(16) unsigned char smem[];
  griddep_launch_dependents();
  const int crank = CS > 1 ? static_cast<int>(cg::this_cluster().block_rank()) : 0;
  const int seg = blockIdx.x / CS;
  const int tid = threadIdx.x;

  // ---- metadata (never written by the kernel this one overlaps under PDL)
  const int slot = p.seg.seg_slot[seg];
  const int t0 = p.seg.seg_start[seg];
  const int rows = min(TOK, p.seg.seg_start[seg + 1] - t0);
  if (slot < 0 || rows <= 0) return;  // the same in every CTA of the cluster
  constexpr int kS = ops::kMaxLoraSlices;
  __shared__ CtaSlice si[kS];
  // ring stages of the stream's phases: q < kS the A stages of slice q, q >= kS the B stages of slice q - kS
  __shared__ int nst[2 * kS];
  __shared__ __align__(8) uint64_t bar_v;  // the pushed partials (clusters)
  const int kb = crank * p.k_per;
  const int kvalid = max(0, min(p.k_per, p.h_in - kb));  // this CTA's k range [kb, kb + kvalid)
  if (tid < kS) {
    CtaSlice s{};
    if (tid < p.num_slices) {
      const SlotSlice ss = slot_slice(p, tid, slot);
      if (ss.a && ss.b && ss.rank > 0) {
        const int span = pick_slice(p.cspan, tid);
        s.a = ss.a;
        s.b = ss.b;
        s.r = min(ss.rank, p.v_rank_stride);
        s.scale = ss.scale;
        s.col_b = crank * span;
        s.ncols = max(0, min(pick_slice(p.h_out, tid) - s.col_b, span));
      }
    }
    si[tid] = s;
    const int per = s.r ? kSlot / pad_rank(s.r) : 1;  // A columns (B columns) per stage (once per CTA)
    // at least one A stage per adapted slice, zeros if this CTA has no k range: its partial is pushed all the same
    nst[tid] = s.r ? max(1, (kvalid + per - 1) / per) : 0;
    nst[kS + tid] = s.r ? (s.ncols + per - 1) / per : 0;
  }
  if (CS > 1 && tid == 0) {
    mbar_init(&bar_v, 1);
    fence_mbar_init();
  }
  __syncthreads();
  const int S = p.num_slices;
  int pushed = 0;
#pragma unroll
  for (int q = 0; q < kS; ++q) pushed += rows * si[q].r;
  if (pushed == 0) return;  // no slice adapted: the same in every CTA of the cluster
  const int v_pitch = p.v_pitch;
  float* sv = reinterpret_cast<float*>(smem + p.off_v);        // [S][TOK][v_pitch]: v
  float* recv = reinterpret_cast<float*>(smem + p.off_recv);   // [CS][S * TOK * v_pitch]: pushed partials
  const int v_elems = S * TOK * v_pitch;
  if (CS > 1) {
    if (tid == 0) mbar_arrive_expect_tx(&bar_v, static_cast<unsigned>(CS * pushed * 4));
    cluster_arrive_relaxed();  // "I run": waited for before the first push into another CTA
  }

  // The stream: phase q < kS the A stages of slice q, q >= kS the B stages of slice q - kS (nst), in that order,
  // through ring slots 0, 1, .., kNS - 1, 0, ... Everything a thread needs of a phase is worked out once when a cursor
  // enters it (Phase), so a stage costs its copies and FMAs and a few adds: the first version worked the indices out
  // per stage with integer divisions and spent ~195 instructions per warp per stage (Nsight, call 3).
  T* const ring = reinterpret_cast<T*>(smem);
  T* const sx = reinterpret_cast<T*>(smem + p.off_x);
  T* const sy = reinterpret_cast<T*>(smem + p.off_y);
  auto setup = [&](int q) { return stream_phase<T>(p, si, nst, q, tid, kb, kvalid); };
  // ---- the copy cursor: stage ci of phase `cp` into slot cslot
  Phase<T> cpf = setup(0);
  int ci = 0, cslot = 0;
  auto issue_next = [&] {
    if (cpf.q < 2 * kS) {
      T* dst = ring + cslot * kSlot;
#pragma unroll
      for (int h = 0; h < kPP; ++h) {
        if (cpf.lim[h] == INT_MIN) continue;  // no such piece in this phase
        const bool ok = ci * cpf.adv < cpf.lim[h];
        if (cpf.is_a) {
          if (cpf.vec) {
            cp_async_16(dst + cpf.dst[h], ok ? cpf.base + cpf.src[h] + ci * cpf.step : cpf.base, ok ? 16 : 0);
          } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) dst[cpf.dst[h] + e] = ok ? cpf.base[cpf.src[h] + ci * cpf.step + e] : T(0.f);
          }
        } else if (ok) {
          if (cpf.vec) {
            cp_async_16(dst + cpf.dst[h], cpf.base + cpf.src[h] + static_cast<int64_t>(ci) * cpf.step, 16);
          } else {
#pragma unroll
            for (int e = 0; e < 8; ++e) dst[cpf.dst[h] + e] = cpf.base[cpf.src[h] + static_cast<int64_t>(ci) * cpf.step + e];
          }
        }
      }
      if (++ci == cpf.n) {
        cpf = setup(cpf.q + 1);
        ci = 0;
      }
      cslot = cslot == kNS - 1 ? 0 : cslot + 1;
    }
    cp_async_commit();  // one group per stage, empty past the end
  };

  // ---- before the wait: the ring's first stages (weights only)
#pragma unroll 1
  for (int j = 0; j < kNS - 1; ++j) issue_next();
  griddep_wait();
  // ---- after it: x (this CTA's k range, zeros up to the x tile's end: the last A stage may reach past kvalid) and
  // the y tile (this CTA's columns of each adapted slice)
  {
    const T* x = static_cast<const T*>(p.x) + static_cast<int64_t>(t0) * p.x_stride + kb;
#pragma unroll 1
    for (int row = 0; row < rows; ++row)
      for (int k = tid * 8; k < p.x_pitch - 8; k += kAT * 8) {
        const bool ok = k < kvalid;
        cp_async_16(sx + row * p.x_pitch + k, ok ? x + static_cast<int64_t>(row) * p.x_stride + k : p.x, ok ? 16 : 0);
      }
    const T* y = static_cast<const T*>(p.y);
    for (int s = 0; s < S; ++s) {
      const CtaSlice& c = si[s];
      if (c.r == 0 || c.ncols == 0) continue;
      const T* src = y + static_cast<int64_t>(t0) * p.y_stride + pick_slice(p.y_col_offset, s) + c.col_b;
      T* dst = sy + pick_slice(p.ycol, s);
#pragma unroll 1
      for (int row = 0; row < rows; ++row)
        for (int n = tid * 8; n < c.ncols; n += kAT * 8)
          cp_async_16(dst + row * p.y_pitch + n, src + static_cast<int64_t>(row) * p.y_stride + n, 16);
    }
    cp_async_commit();
  }

  const int64_t v_row = static_cast<int64_t>(S) * p.v_rank_stride;
  T* const yg = static_cast<T*>(p.y) + static_cast<int64_t>(t0) * p.y_stride;
  bool first_push = true, first_stage = true;
  int slot_ix = 0;
  // ---- the compute cursor: phase by phase, stage by stage
  const int lane = tid & 31, warp = tid >> 5, g = lane >> 2, q4 = lane & 3;
  float* const red = reinterpret_cast<float*>(smem + p.off_red);  // [16 warps][TOK][16]: the shrink's warp sums
#pragma unroll 1
  for (Phase<T> f = setup(0); f.q < 2 * kS; f = setup(f.q + 1)) {
    float acc[2][4] = {};  // A: this warp's sums over its k steps, 2 n tiles of its rank group
    uint32_t vh[4][2], vl[4][2];  // B (mma): v's hi / lo fragments (a0, a2) per k step; token row g
    if (!f.is_a && f.mma) {
      const float* vv = sv + (f.s * TOK + (g < TOK ? g : 0)) * v_pitch;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float v0 = 0.f, v1 = 0.f;
          if (kk < f.ksteps && g < rows) {
            v0 = vv[kk * 16 + e * 8 + 2 * q4];
            v1 = vv[kk * 16 + e * 8 + 2 * q4 + 1];
          }
          T h0, l0, h1, l1;
          split_hi_lo(v0, h0, l0);
          split_hi_lo(v1, h1, l1);
          vh[kk][e] = pack_pair(h0, h1);
          vl[kk][e] = pack_pair(l0, l1);
        }
    }
#pragma unroll 1
    for (int i = 0; i < f.n; ++i) {
      if (first_stage) cp_async_wait<0>();  // the first stages and x / y
      else cp_async_wait<kNS - 2>();
      first_stage = false;
      __syncthreads();  // this stage is in; every thread is done with the previous one, whose slot is refilled now
      issue_next();
      const uint32_t st = smem_addr(ring + slot_ix * kSlot);
      slot_ix = slot_ix == kNS - 1 ? 0 : slot_ix + 1;
      if (f.is_a) {
        // ---- shrink stage on the tensor cores: x (token rows g < rows, zeros else) times the stage's A rows
        const T* xs = sx + (g < TOK ? g : 0) * p.x_pitch + i * f.per;
#pragma unroll
        for (int h = 0; h < kPP; ++h) {
          uint32_t b[4];
          ldmatrix_x4_at(b, st + 2u * static_cast<uint32_t>(f.off[h]));
          uint32_t a[4] = {0u, 0u, 0u, 0u};
          if (g < rows) {
            a[0] = *reinterpret_cast<const uint32_t*>(xs + f.xoff[h]);
            a[2] = *reinterpret_cast<const uint32_t*>(xs + f.xoff[h] + 8);
          }
          MmaF16<T>::run(acc[0], a, b);
          MmaF16<T>::run(acc[1], a, b + 2);
        }
      } else if (f.mma) {
        // ---- expand stage on the tensor cores: v (hi + lo) times the stage's B columns, into the y tile
        const int c0 = i * f.per, nc = min(f.per, f.ncols - c0);
        // K k steps per column pair, 4 / K pairs per warp: every index below is a compile-time one
        auto pairs = [&](auto kc) {
          constexpr int K = decltype(kc)::value;
#pragma unroll
          for (int hp = 0; hp < kPP; hp += K) {
            float ya[2][4] = {};
#pragma unroll
            for (int kk = 0; kk < K; ++kk) {
              uint32_t b[4];
              ldmatrix_x4_at(b, st + 2u * static_cast<uint32_t>(f.off[hp + kk]));
              const uint32_t ah[4] = {vh[kk][0], 0u, vh[kk][1], 0u}, al[4] = {vl[kk][0], 0u, vl[kk][1], 0u};
              MmaF16<T>::run(ya[0], ah, b);
              MmaF16<T>::run(ya[0], al, b);
              MmaF16<T>::run(ya[1], ah, b + 2);
              MmaF16<T>::run(ya[1], al, b + 2);
            }
            if (g < rows) {
              const int pr = warp + (hp / K) * 16;
#pragma unroll
              for (int nt = 0; nt < 2; ++nt) {
                const int n = pr * 16 + nt * 8 + 2 * q4;  // column within the stage (and n + 1)
                if (n < nc) {  // y = round(y + scale * sum) in the y tile; stored with 16-byte stores at the end
                  uint32_t* cell = reinterpret_cast<uint32_t*>(sy + g * p.y_pitch + f.ycol + c0 + n);
                  const float2 old = pair_to_float2(*cell, T());
                  *cell = float2_to_pair(old.x + f.scale * ya[nt][0], old.y + f.scale * ya[nt][1], T());
                }
              }
            }
          }
        };
        if (f.ksteps == 1) pairs(std::integral_constant<int, 1>{});
        else if (f.ksteps == 2) pairs(std::integral_constant<int, 2>{});
        else pairs(std::integral_constant<int, 4>{});
      } else {
        // ---- expand stage on the CUDA cores (ranks other than 16 / 32 / 64, or B not 16-byte aligned)
        const T* sts = ring + (slot_ix == 0 ? kNS - 1 : slot_ix - 1) * kSlot;
        const int c0 = i * f.per, nc = min(f.per, f.ncols - c0);
        const float* vv = sv + f.s * TOK * v_pitch + f.xoff[0];
        const int nr = f.xoff[1] - f.xoff[0];  // this thread's ranks (0 .. 16)
#pragma unroll
        for (int h = 0; h < kPP / 2; ++h) {
          const int col = f.row + h * (kAT / f.lane_group);  // (ranks other than 16 / 32 / 64, or B unaligned)
          float ya[TOK], yb[TOK];
#pragma unroll
          for (int t = 0; t < TOK; ++t) ya[t] = yb[t] = 0.f;
          if (col < nc) {
            const T* bcol = sts + f.off[h];
            if ((f.r & 7) == 0) {  // 16-byte pieces: col * r + sub * 16 is a multiple of 8
              for (int jj = 0; jj < nr; jj += 8) {
                const uint4 bv = *reinterpret_cast<const uint4*>(bcol + jj);
#pragma unroll
                for (int t = 0; t < TOK; ++t)
                  if (t < rows) dot8f<T>(bv, vv + t * v_pitch + jj, ya[t], yb[t]);
              }
            } else {
              for (int jj = 0; jj < nr; ++jj) {
                const float bf = to_float(bcol[jj]);
#pragma unroll
                for (int t = 0; t < TOK; ++t)
                  if (t < rows) ya[t] = fmaf(bf, vv[t * v_pitch + jj], ya[t]);
              }
            }
          }
#pragma unroll
          for (int t = 0; t < TOK; ++t) {
            ya[t] += yb[t];
            for (int o = f.lane_group / 2; o > 0; o >>= 1) ya[t] += __shfl_xor_sync(0xffffffffu, ya[t], o);
          }
          if (f.lead && col < nc) {
            const int n = c0 + col;
#pragma unroll
            for (int t = 0; t < TOK; ++t)
              if (t < rows) sy[t * p.y_pitch + f.ycol + n] = T(to_float(sy[t * p.y_pitch + f.ycol + n]) + f.scale * ya[t]);
          }
        }
      }
    }
    if (!f.is_a) continue;
    // ---- the slice's A stream is done: the warps' sums (token row g, ranks 2q, 2q + 1 of each n tile) through
    // shared memory, summed per rank in warp order, and this CTA's partial v delivered
    if (g < rows) {
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        red[(warp * TOK + g) * 16 + nt * 8 + 2 * q4] = acc[nt][0];
        red[(warp * TOK + g) * 16 + nt * 8 + 2 * q4 + 1] = acc[nt][1];
      }
    }
    __syncthreads();
    if (CS > 1 && first_push) {
      cluster_wait();  // every CTA of the cluster runs: its shared memory and mbarrier exist
      first_push = false;
    }
    {
      const int rp = pad_rank(f.r), RG = rp >> 4, lg = rp == 16 ? 4 : rp == 32 ? 5 : rp == 64 ? 6 : 7;
      const int t = tid >> lg, n = tid & (rp - 1);
      if (t < rows && n < f.r) {
        float vsum = 0.f;
        for (int w = n >> 4; w < 16; w += RG) vsum += red[(w * TOK + t) * 16 + (n & 15)];
        const int e = (f.s * TOK + t) * v_pitch + n;
        if constexpr (CS == 1) {
          sv[e] = vsum;
          p.v[(t0 + t) * v_row + f.s * p.v_rank_stride + n] = vsum;
        } else {
#pragma unroll
          for (int d = 0; d < CS; ++d) st_async_mapped(map_remote(recv + crank * v_elems + e, d), vsum, map_remote(&bar_v, d));
        }
      }
    }
    if (f.q + 1 < kS) {  // more A phases may follow: is this the last?
      int qn = f.q + 1;
      while (qn < kS && nst[qn] == 0) ++qn;
      if (qn < kS) continue;
    }
    // the A stream ended: v complete (clusters: the pushed partials summed in rank order)
    if constexpr (CS > 1) {
      mbar_wait(&bar_v, 0);
      for (int e = tid; e < v_elems; e += kAT) {
        const int ss = e / (TOK * v_pitch), rest = e - ss * TOK * v_pitch, t = rest / v_pitch, jj = rest - t * v_pitch;
        if (t >= rows || jj >= si[ss].r) continue;
        float val = 0.f;
#pragma unroll
        for (int src = 0; src < CS; ++src) val += recv[src * v_elems + e];  // deterministic
        sv[e] = val;
        if (crank == 0) p.v[(t0 + t) * v_row + ss * p.v_rank_stride + jj] = val;
      }
    }
    __syncthreads();  // sv complete before the B phase builds its v fragments
  }
  // ---- the finished y tile, 16-byte stores (one 2- or 4-byte store per lane and column made the expand stages
  // ~2x longer in instructions: Nsight, eleventh session, call 9)
  __syncthreads();
  for (int s = 0; s < S; ++s) {
    const CtaSlice& c = si[s];
    if (c.r == 0 || c.ncols == 0) continue;
    T* dst = yg + pick_slice(p.y_col_offset, s) + c.col_b;
    const T* src = sy + pick_slice(p.ycol, s);
#pragma unroll 1
    for (int row = 0; row < rows; ++row)
      for (int n = tid * 8; n < c.ncols; n += kAT * 8)
        *reinterpret_cast<uint4*>(dst + static_cast<int64_t>(row) * p.y_stride + n) =
            *reinterpret_cast<const uint4*>(src + row * p.y_pitch + n);
  }
#endif
}

template <typename T, int CS, int TOK>
Status launch(const AdapterStreamArgs& a, bool pdl, cudaStream_t stream) {
  auto kernel = lora_adapter_stream_kernel<T, CS, TOK>;
  static const cudaError_t attr = [&] {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kLoraClusterMaxSmem);
    return e;
  }();
  PUNICA_RETURN_IF_ERROR(cuda_status(attr, "lora_adapter_stream_kernel attributes"));
  return launch_kernel(kernel, dim3(static_cast<unsigned>(a.num_segments * CS)), dim3(kAT), static_cast<size_t>(a.smem_bytes),
                       pdl, CS > 1 ? CS : 0, stream, "lora_adapter_stream_kernel launch", a);
}

int align16(int bytes) { return (bytes + 15) & ~15; }

}  // namespace

bool lora_adapter_stream_layout(AdapterStreamArgs* a) {
  const int S = a->num_slices, tok = a->tok, cs = a->cluster_size;
  // x rows reach to the end of the last A stage: a multiple of the widest stage (rank 16: kSlot / 16 columns)
  constexpr int kWidest = kSlot / 16;
  a->x_pitch = (a->k_per + kWidest - 1) / kWidest * kWidest + 8;
  int cols = 0;
  for (int s = 0; s < S; ++s) {
    a->ycol[s] = cols;
    cols += a->cspan[s];
  }
  a->y_pitch = cols + 8;
  a->v_pitch = (a->v_rank_stride + 3) & ~3;
  const int x_bytes = align16(tok * a->x_pitch * 2);
  const int y_bytes = align16(tok * a->y_pitch * 2);
  const int v_bytes = S * tok * a->v_pitch * 4;
  const int recv_bytes = cs > 1 ? cs * v_bytes : 0;
  const int red_bytes = 16 * tok * 16 * 4;  // the shrink's per-warp sums
  const int rest = x_bytes + y_bytes + v_bytes + recv_bytes + red_bytes;
  if (rest + kAdapterStreamStages * kAdapterStreamStageBytes > kLoraClusterMaxSmem) return false;
  a->off_x = kAdapterStreamStages * kAdapterStreamStageBytes;
  a->off_y = a->off_x + x_bytes;
  a->off_v = a->off_y + y_bytes;
  a->off_recv = a->off_v + v_bytes;
  a->off_red = a->off_recv + recv_bytes;
  a->smem_bytes = a->off_red + red_bytes;
  return true;
}

Status lora_launch_adapter_stream(DType dtype, const AdapterStreamArgs& args, bool pdl, cudaStream_t stream) {
  return dispatch_dtype(dtype, [&](auto t) -> Status {
    using T = decltype(t);
    auto by_tok = [&](auto cs) -> Status {
      constexpr int C = decltype(cs)::value;
      return args.tok == 1 ? launch<T, C, 1>(args, pdl, stream) : launch<T, C, kAdapterStreamTok>(args, pdl, stream);
    };
    switch (args.cluster_size) {
      case 1: return by_tok(std::integral_constant<int, 1>{});
      case 2: return by_tok(std::integral_constant<int, 2>{});
      case 4: return by_tok(std::integral_constant<int, 4>{});
      case 8: return by_tok(std::integral_constant<int, 8>{});
      default: return internal_error("lora_adapter_stream: no kernel for cluster size " + std::to_string(args.cluster_size));
    }
  });
}

}  // namespace punica::cuda::lora_detail
