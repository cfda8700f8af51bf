// The adapter-streaming decode kernel: the whole add-on in one launch for batches of many adapters with a few
// tokens each (decode), one CTA per segment, or one cluster of CS CTAs per segment when there are fewer segments than
// SMs (each CTA then takes 1 / CS of h_in in the shrink and of every slice's columns in the expand).
//
// Why: at these shapes the add-on is a stream of adapter weights (128 adapters of rank 16 at 4096 x 4096: 33.5 MB),
// and the two-kernel streaming path (lora_stream.cu) pays a kernel boundary and two ramps: its shrink and expand ran
// back to back without overlap (H100, distinct r = 16 B = 128: 10.6 + 9.1 us alone, 19.5 together). Here one CTA owns
// an adapter's whole weight stream: A's stages, then B's, through one ring of 16 KB slots kept full by 16-byte
// cp.async (the per-CTA read probe: ~17 GB/s per SM with all SMs reading, 53 with one), so B's loads run while the
// shrink's last stages are summed and v is exchanged. The tenth session's prefill kernel in this role lost because
// its stages were small (4 KB of A per 128 columns at rank 16) and each carried a chain of mma work; here a stage is
// 16 KB whatever the rank and its work is a few fp32 FMAs per thread on the CUDA cores.
//
// Each stage, 512 threads:
//   shrink (stage = r rows x KB columns of A, KB = 8192 / rp, rp = r rounded up to 16 / 32 / 64 / 128):
//     TPR = 512 / rp consecutive threads share a rank row, each takes 2 of its KB / 8 sixteen-byte pieces and keeps a
//     running fp32 sum per token over all stages; after the slice's last stage the TPR lanes are summed by shuffles.
//   expand (stage = NB = 8192 / rp columns of B, each column's r halves contiguous):
//     TPC = rp / 16 consecutive threads share a column, each takes 16 of its ranks; shuffles sum them and the first
//     writes y = round(y + scale * sum) straight to global memory (y was staged in shared memory after the PDL wait).
// v stays fp32. With clusters each CTA pushes its partial v (a few hundred floats) into every CTA's receive buffer
// with st.async counted on that CTA's mbarrier; sums run in cluster-rank order: deterministic, no atomics.
#include <cooperative_groups.h>

#include <algorithm>
#include <string>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"
#include "backends/cuda/lora/lora_launch.cuh"

namespace punica::cuda::lora_detail {
namespace {

namespace cg = cooperative_groups;

constexpr int kAT = 512;                              // threads per CTA
constexpr int kSlot = kAdapterStreamStageBytes / 2;   // halves per ring slot (8192)

__device__ __forceinline__ int pad_rank(int r) { return r <= 16 ? 16 : r <= 32 ? 32 : r <= 64 ? 64 : 128; }

// cp.async.wait_group with the count in a register (the ring depth is the host's): at most n groups pending
__device__ __forceinline__ void cp_async_wait_upto(int n) {
  switch (n) {
    case 0: cp_async_wait<0>(); break;
    case 1: cp_async_wait<1>(); break;
    case 2: cp_async_wait<2>(); break;
    case 3: cp_async_wait<3>(); break;
    case 4: cp_async_wait<4>(); break;
    case 5: cp_async_wait<5>(); break;
    default: cp_async_wait<6>(); break;
  }
}

// sum of the products of 8 halves (one 16-byte piece) of a and b, added to acc
template <typename T>
__device__ __forceinline__ float dot8(uint4 a, uint4 b, float acc) {
  const uint32_t aw[4] = {a.x, a.y, a.z, a.w}, bw[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 af = pair_to_float2(aw[i], T()), bf = pair_to_float2(bw[i], T());
    acc = fmaf(af.x, bf.x, acc);
    acc = fmaf(af.y, bf.y, acc);
  }
  return acc;
}
// 8 halves of b times 8 fp32 values at v (16-byte aligned), added to acc
template <typename T>
__device__ __forceinline__ float dot8f(uint4 b, const float* v, float acc) {
  const float4 v0 = *reinterpret_cast<const float4*>(v), v1 = *reinterpret_cast<const float4*>(v + 4);
  const float2 b0 = pair_to_float2(b.x, T()), b1 = pair_to_float2(b.y, T()), b2 = pair_to_float2(b.z, T()),
               b3 = pair_to_float2(b.w, T());
  acc = fmaf(b0.x, v0.x, acc);
  acc = fmaf(b0.y, v0.y, acc);
  acc = fmaf(b1.x, v0.z, acc);
  acc = fmaf(b1.y, v0.w, acc);
  acc = fmaf(b2.x, v1.x, acc);
  acc = fmaf(b2.y, v1.y, acc);
  acc = fmaf(b3.x, v1.z, acc);
  acc = fmaf(b3.y, v1.w, acc);
  return acc;
}

struct StreamSlice {
  const void* a;
  const void* b;
  int r;        // 0: the slot does not adapt this slice
  float scale;
  int col_b;    // this CTA's first column of the slice
  int ncols;    // this CTA's columns of the slice (a multiple of 8, may be 0)
};

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
  __shared__ StreamSlice si[kS];
  // ring stages of the stream's phases: q < kS the A stages of slice q, q >= kS the B stages of slice q - kS
  __shared__ int nst[2 * kS];
  __shared__ __align__(8) uint64_t bar_v;  // the pushed partials (clusters)
  const int kb = crank * p.k_per;
  const int kvalid = max(0, min(p.k_per, p.h_in - kb));  // this CTA's k range [kb, kb + kvalid)
  if (tid < kS) {
    StreamSlice s{};
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
    const int per = s.r ? kSlot / pad_rank(s.r) : 1;  // A columns (B columns) per stage
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
  int total = 0, pushed = 0;
#pragma unroll
  for (int q = 0; q < kS; ++q) {
    total += nst[q] + nst[kS + q];
    pushed += rows * si[q].r;
  }
  if (pushed == 0) return;  // no slice adapted: the same in every CTA of the cluster
  const int v_pitch = p.v_pitch;
  float* sv = reinterpret_cast<float*>(smem + p.off_v);        // [S][TOK][v_pitch]: v
  float* recv = reinterpret_cast<float*>(smem + p.off_recv);   // [CS][S * TOK * v_pitch]: pushed partials
  const int v_elems = S * TOK * v_pitch;
  if (CS > 1) {
    if (tid == 0) mbar_arrive_expect_tx(&bar_v, static_cast<unsigned>(CS * pushed * 4));
    cluster_arrive_relaxed();  // "I run": waited for before the first push into another CTA
  }

  // Stage j of this CTA's stream: slice s's A stages in slice order, then B's. Issued by all threads into ring slot
  // j % stages; stages past the end issue nothing (their commit groups are empty).
  T* const ring = reinterpret_cast<T*>(smem);
  auto issue = [&](int j) {
    if (j >= total) return;
    T* dst = ring + (j % p.stages) * kSlot;
    int q = 0;
    while (j >= nst[q]) j -= nst[q++];  // j < total: q ends below 2 * kS
    const bool is_a = q < kS;
    const StreamSlice& c = si[is_a ? q : q - kS];
    const int per = kSlot / pad_rank(c.r);
    if (is_a) {
      const int k0 = j * per, ppr = per / 8;  // pieces per row in this stage
      const T* a = static_cast<const T*>(c.a) + kb + k0;
      const bool vec = (reinterpret_cast<uintptr_t>(c.a) & 15) == 0;
      for (int pc = tid; pc < c.r * ppr; pc += kAT) {
        const int row = pc / ppr, k = (pc - row * ppr) * 8;
        const bool ok = k0 + k < kvalid;  // k ranges are multiples of 8: a piece is all in or all out
        if (vec) {
          cp_async_16(dst + row * per + k, ok ? a + static_cast<int64_t>(row) * p.h_in + k : c.a, ok ? 16 : 0);
        } else {  // A not 16-byte aligned: plain loads (visible after the barrier that opens stage j)
#pragma unroll
          for (int e = 0; e < 8; ++e) dst[row * per + k + e] = ok ? a[static_cast<int64_t>(row) * p.h_in + k + e] : T(0.f);
        }
      }
    } else {
      const int c0 = j * per, nc = min(per, c.ncols - c0);
      const T* b = static_cast<const T*>(c.b) + static_cast<int64_t>(c.col_b + c0) * c.r;  // nc columns, contiguous
      const int n8 = nc * c.r / 8;  // nc is a multiple of 8
      if ((reinterpret_cast<uintptr_t>(c.b) & 15) == 0) {  // (col_b + c0) * r * 2 bytes is a multiple of 16
        for (int pc = tid; pc < n8; pc += kAT) cp_async_16(dst + pc * 8, b + pc * 8, 16);
      } else {
        for (int e = tid; e < nc * c.r; e += kAT) dst[e] = b[e];
      }
    }
  };

  // ---- before the wait: the ring's first stages (weights only)
  for (int j = 0; j < p.stages - 1; ++j) {
    issue(j);
    cp_async_commit();
  }
  griddep_wait();
  // ---- after it: x (this CTA's k range, zeros up to the x tile's end: the last A stage may reach past kvalid) and
  // the y tile (this CTA's columns of each adapted slice)
  T* const sx = reinterpret_cast<T*>(smem + p.off_x);
  T* const sy = reinterpret_cast<T*>(smem + p.off_y);
  {
    const T* x = static_cast<const T*>(p.x) + static_cast<int64_t>(t0) * p.x_stride + kb;
    const int xc = (p.x_pitch - 8) / 8;
    for (int c = tid; c < rows * xc; c += kAT) {
      const int row = c / xc, k = (c - row * xc) * 8;
      const bool ok = k < kvalid;
      cp_async_16(sx + row * p.x_pitch + k, ok ? x + static_cast<int64_t>(row) * p.x_stride + k : p.x, ok ? 16 : 0);
    }
    const T* y = static_cast<const T*>(p.y);
    for (int s = 0; s < S; ++s) {
      const StreamSlice& c = si[s];
      if (c.r == 0 || c.ncols == 0) continue;
      const int yc = c.ncols / 8;
      const T* src = y + static_cast<int64_t>(t0) * p.y_stride + pick_slice(p.y_col_offset, s) + c.col_b;
      T* dst = sy + pick_slice(p.ycol, s);
      for (int e = tid; e < rows * yc; e += kAT) {
        const int row = e / yc, n = (e - row * yc) * 8;
        cp_async_16(dst + row * p.y_pitch + n, src + static_cast<int64_t>(row) * p.y_stride + n, 16);
      }
    }
    cp_async_commit();
  }

  const int64_t v_row = static_cast<int64_t>(S) * p.v_rank_stride;
  float acc[TOK];
  int q = 0, i = 0;  // the phase (nst) and stage within it of stage j
  auto settle = [&] {  // past phases without stages (slices the slot does not adapt)
    while (q < 2 * kS && i >= nst[q]) i = 0, ++q;
  };
  settle();
  bool first_push = true;
#pragma unroll 1
  for (int j = 0; j < total; ++j) {
    if (j == 0) cp_async_wait<0>();  // the first stages and x / y
    else cp_async_wait_upto(p.stages - 2);
    __syncthreads();  // stage j is in; every thread is done with stage j - 1, whose slot the next issue refills
    issue(j + p.stages - 1);
    cp_async_commit();
    const T* st = ring + (j % p.stages) * kSlot;
    const bool is_a = q < kS;
    const int s = is_a ? q : q - kS;
    const StreamSlice& c = si[s];
    const int rp = pad_rank(c.r);
    if (is_a) {
      // ---- shrink stage: rows of A times x
      const int per = kSlot / rp, tpr = kAT / rp;
      const int n = tid / tpr, part = tid - n * tpr;
      if (i == 0) {
#pragma unroll
        for (int t = 0; t < TOK; ++t) acc[t] = 0.f;
      }
      if (n < c.r) {
        const int k0 = i * per;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int k = (part + h * tpr) * 8;
          const uint4 av = *reinterpret_cast<const uint4*>(st + n * per + k);
#pragma unroll
          for (int t = 0; t < TOK; ++t)
            if (t < rows) acc[t] = dot8<T>(av, *reinterpret_cast<const uint4*>(sx + t * p.x_pitch + k0 + k), acc[t]);
        }
      }
      if (i == nst[q] - 1) {  // the slice's last A stage: sum the row's lanes, deliver this CTA's partial v
#pragma unroll
        for (int t = 0; t < TOK; ++t)
          for (int o = tpr / 2; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
        if (CS > 1 && first_push) {
          cluster_wait();  // every CTA of the cluster runs: its shared memory and mbarrier exist
          first_push = false;
        }
        if (part == 0 && n < c.r) {
#pragma unroll
          for (int t = 0; t < TOK; ++t) {
            if (t >= rows) break;
            const int e = (s * TOK + t) * v_pitch + n;
            if constexpr (CS == 1) {
              sv[e] = acc[t];
              p.v[(t0 + t) * v_row + s * p.v_rank_stride + n] = acc[t];
            } else {
              const float val = acc[t];
#pragma unroll
              for (int d = 0; d < CS; ++d)
                st_async_mapped(map_remote(recv + crank * v_elems + e, d), val, map_remote(&bar_v, d));
            }
          }
        }
      }
      ++i;
      settle();
      if (q >= kS) {  // the A stream ended with this stage
        if constexpr (CS > 1) {
          mbar_wait(&bar_v, 0);  // every CTA's partials are here
          for (int e = tid; e < v_elems; e += kAT) {
            const int ss = e / (TOK * v_pitch), rest = e - ss * TOK * v_pitch, t = rest / v_pitch, jj = rest - t * v_pitch;
            if (t >= rows || jj >= si[ss].r) continue;
            float val = 0.f;
#pragma unroll
            for (int src = 0; src < CS; ++src) val += recv[src * v_elems + e];  // in rank order: deterministic
            sv[e] = val;
            if (crank == 0) p.v[(t0 + t) * v_row + ss * p.v_rank_stride + jj] = val;
          }
        }
        // sv is read from the next stage on, after the barrier that opens it
      }
    } else {
      // ---- expand stage: columns of B times v, y stored
      const int per = kSlot / rp, tpc = rp / 16;
      const int col = tid / tpc, sub = tid - col * tpc;
      const int c0 = i * per, nc = min(per, c.ncols - c0);
      float ya[TOK];
#pragma unroll
      for (int t = 0; t < TOK; ++t) ya[t] = 0.f;
      if (col < nc) {
        const T* bcol = st + col * c.r;
        const float* vv = sv + s * TOK * v_pitch;
        const int j0 = sub * 16, j1 = min(c.r, j0 + 16);
        if ((c.r & 7) == 0) {  // 16-byte pieces: col * r + j0 is a multiple of 8
          for (int jj = j0; jj < j1; jj += 8) {
            const uint4 bv = *reinterpret_cast<const uint4*>(bcol + jj);
#pragma unroll
            for (int t = 0; t < TOK; ++t)
              if (t < rows) ya[t] = dot8f<T>(bv, vv + t * v_pitch + jj, ya[t]);
          }
        } else {
          for (int jj = j0; jj < j1; ++jj) {
            const float bf = to_float(bcol[jj]);
#pragma unroll
            for (int t = 0; t < TOK; ++t)
              if (t < rows) ya[t] = fmaf(bf, vv[t * v_pitch + jj], ya[t]);
          }
        }
      }
#pragma unroll
      for (int t = 0; t < TOK; ++t)
        for (int o = tpc / 2; o > 0; o >>= 1) ya[t] += __shfl_xor_sync(0xffffffffu, ya[t], o);
      if (sub == 0 && col < nc) {
        T* y = static_cast<T*>(p.y) + static_cast<int64_t>(t0) * p.y_stride + pick_slice(p.y_col_offset, s) + c.col_b + c0 + col;
        const T* yold = sy + pick_slice(p.ycol, s) + c0 + col;
#pragma unroll
        for (int t = 0; t < TOK; ++t)
          if (t < rows) y[static_cast<int64_t>(t) * p.y_stride] = T(to_float(yold[t * p.y_pitch]) + c.scale * ya[t]);
      }
      ++i;
      settle();
    }
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
  a->x_pitch = (a->k_per + 511) / 512 * 512 + 8;
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
  const int rest = x_bytes + y_bytes + v_bytes + recv_bytes;
  a->stages = std::min(8, (kLoraClusterMaxSmem - rest) / kAdapterStreamStageBytes);
  if (a->stages < 3) return false;
  a->off_x = a->stages * kAdapterStreamStageBytes;
  a->off_y = a->off_x + x_bytes;
  a->off_v = a->off_y + y_bytes;
  a->off_recv = a->off_v + v_bytes;
  a->smem_bytes = a->off_recv + recv_bytes;
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
