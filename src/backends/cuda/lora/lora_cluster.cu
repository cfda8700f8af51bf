// Decode-sized LoRA add-on in ONE launch without any grid-wide dependency: one thread-block CLUSTER
// (sm_90, 8 or 16 CTAs) per (segment, 16-token tile).
//
// The two-kernel path pays a kernel boundary between shrink and expand and the persistent single-launch
// kernel a grid-wide barrier (each ~2 us on H100). Here the only dependency of the expand on the shrink is
// inside the cluster: each CTA computes a partial v over 1/CS of h_in (mma.sync, A and x in shared
// memory), the partials are summed through distributed shared memory after a cluster barrier in a fixed
// rank order (deterministic, no atomics, no workspace), and each CTA then adds scale * v B^T into its
// 1/CS of every slice's y columns. Small v tiles: every CTA sums all CS partials itself (one barrier).
// Larger ones: CTA c sums the elements e % CS == c (reduce-scatter), a second barrier, and every CTA
// gathers the sums (all-gather). The first A chunks and B chunks are loaded before griddep_wait (the slot
// tables and weights are not written by the previous kernel), x after it; y is prefetched into L2.
// Segments longer than 16 tokens get several clusters, each re-reading A and B (from L2).
#include <cooperative_groups.h>

#include <algorithm>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/lora/lora_args.h"
#include "backends/cuda/lora/lora_device.cuh"

namespace punica::cuda::lora_detail {
namespace {

namespace cg = cooperative_groups;

constexpr int TM = 16;   // token rows per cluster (one mma M tile)
constexpr int KA = 64;   // h_in elements per A chunk
constexpr int NB = 64;   // y columns per B chunk (16 per warp)
constexpr int kAPitch = KA + 8;

template <int RP>
struct ClusterLayout {
  static constexpr int NA = RP == 16 ? 8 : RP == 32 ? 6 : RP == 64 ? 4 : 2;   // A ring stages
  static constexpr int NBS = RP == 16 ? 8 : RP == 32 ? 6 : RP == 64 ? 3 : 2;  // B ring stages
  static constexpr int WN = 4 < RP / 16 ? 4 : RP / 16;  // shrink: warps over rank groups
  static constexpr int WK = 4 / WN;                     // shrink: warps over k16 steps of a chunk
  static constexpr int kRanksPerWarp = RP / WN;
  static constexpr int kNJ = kRanksPerWarp / 16;
  static constexpr int kVPitch = RP + 4;   // fp32 partial v rows
  static constexpr int kBPitch = RP + 8;   // B rows and v hi/lo rows (halves)
  static constexpr int kABytes = NA * RP * kAPitch * 2;
  static constexpr int kBBytes = NBS * NB * kBPitch * 2;
  static constexpr int kRedBytes = ops::kMaxLoraSlices * WK * TM * kVPitch * 4;
  static constexpr int kSumBytes = ops::kMaxLoraSlices * TM * kVPitch * 4;  // aliases the A ring
  static constexpr int kHiLoBytes = 2 * ops::kMaxLoraSlices * TM * kBPitch * 2;
  static constexpr int kFixedBytes = kABytes + kBBytes + kRedBytes + kHiLoBytes;  // x follows
  static_assert(kSumBytes <= kABytes, "the reduce-scatter sums live in the A ring");
  static_assert(KA / 16 % WK == 0, "k16 steps split evenly over warps");
};

template <typename T>
__device__ __forceinline__ void split_hi_lo(float v, T& hi, T& lo) {
  hi = T(v);
  const float h = to_float(hi);
  lo = isinf(h) ? T(0.f) : T(v - h);
}

__device__ __forceinline__ void cluster_arrive() { asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];\n" ::"l"(p)); }

struct SliceInfo {
  const void* a;
  const void* b;
  int r;
  float scale;
  int nq;            // A chunks of this CTA's k range
  int col_b, col_e;  // this CTA's y columns of the slice [col_b, col_e)
  int nc;            // B chunks
};

template <typename T, int RP>
__global__ void __launch_bounds__(kThreads) lora_cluster_decode_kernel(const ClusterArgs p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  (void)p;  // clusters need sm_90; the host launches this kernel only there
  (void)ClusterLayout<RP>::kNJ;
#else
  using L = ClusterLayout<RP>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sa = reinterpret_cast<T*>(smem);
  float* ssum = reinterpret_cast<float*>(smem);  // after the shrink
  T* sb = reinterpret_cast<T*>(smem + L::kABytes);
  float* sred = reinterpret_cast<float*>(smem + L::kABytes + L::kBBytes);
  T* svh = reinterpret_cast<T*>(smem + L::kABytes + L::kBBytes + L::kRedBytes);
  T* svl = svh + ops::kMaxLoraSlices * TM * L::kBPitch;
  T* sx = reinterpret_cast<T*>(smem + L::kFixedBytes);

  cg::cluster_group cluster = cg::this_cluster();
  const int CS = static_cast<int>(cluster.num_blocks());
  const int crank = static_cast<int>(cluster.block_rank());
  const int item = blockIdx.x / CS;
  const int seg = item / p.tiles, ttile = item % p.tiles;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, q = lane & 3;

  // ---- the cluster's work (identical in every CTA of the cluster, so they all leave together)
  const int slot = p.seg.seg_slot[seg];
  const int t0 = p.seg.seg_start[seg] + ttile * TM;
  const int rows = min(TM, p.seg.seg_start[seg + 1] - t0);
  if (slot < 0 || rows <= 0) return;
  const int kb = crank * p.k_per;
  const int kspan = min(p.k_per, p.h_in - kb);
  // per-slice facts of this CTA (computed once, read by all threads from shared memory)
  __shared__ SliceInfo si[ops::kMaxLoraSlices];
  __shared__ int s_any;
  if (tid == 0) {
    int any = 0;
    for (int i = 0; i < ops::kMaxLoraSlices; ++i) {
      SliceInfo s{};
      if (i < p.num_slices) {
        s.a = p.a[i][slot];
        s.b = p.b[i][slot];
        s.r = (s.a && s.b) ? min(p.rank[i][slot], p.v_rank_stride) : 0;
        if (s.r > 0) {
          any = 1;
          s.scale = p.scale[i][slot];
          s.nq = kspan > 0 ? (kspan + KA - 1) / KA : 0;
          const int span = (p.h_out[i] + CS - 1) / CS;
          const int cspan = (span + 7) / 8 * 8;
          s.col_b = crank * cspan;
          s.col_e = min(p.h_out[i], s.col_b + cspan);
          s.nc = s.col_e > s.col_b ? (s.col_e - s.col_b + NB - 1) / NB : 0;
        } else {
          s = SliceInfo{};
        }
      }
      si[i] = s;
    }
    s_any = any;
  }
  __syncthreads();
  if (!s_any) return;  // the same in every CTA of the cluster
  const int na_total = si[0].nq + si[1].nq + si[2].nq;
  const int nb_total = si[0].nc + si[1].nc + si[2].nc;

  // chunk c of the A sequence (slices in order) -> slice, chunk in slice
  auto a_chunk = [&](int c, int& slice, int& qq) {
    slice = 0;
    while (slice < ops::kMaxLoraSlices - 1 && c >= si[slice].nq) c -= si[slice++].nq;
    qq = c;
  };
  auto load_a = [&](int c) {
    int slice, qq;
    a_chunk(c, slice, qq);
    const SliceInfo& s = si[slice];
    const T* a = static_cast<const T*>(s.a);
    T* da = sa + (c % L::NA) * RP * kAPitch;
    const int k0 = kb + qq * KA;
    const int rows16 = (s.r + 15) / 16 * 16;
    constexpr int kChunks = KA / 8;
    for (int e = tid; e < rows16 * kChunks; e += kThreads) {
      const int j = e / kChunks, k = k0 + (e % kChunks) * 8;
      const bool ok = j < s.r && k < p.h_in;
      cp_async_16(da + j * kAPitch + (e % kChunks) * 8, ok ? a + static_cast<int64_t>(j) * p.h_in + k : a, ok ? 16 : 0);
    }
  };
  auto b_chunk = [&](int c, int& slice, int& n0) {
    slice = 0;
    while (slice < ops::kMaxLoraSlices - 1 && c >= si[slice].nc) c -= si[slice++].nc;
    n0 = si[slice].col_b + c * NB;
  };
  auto load_b = [&](int c) {
    int slice, n0;
    b_chunk(c, slice, n0);
    const SliceInfo& s = si[slice];
    const T* b = static_cast<const T*>(s.b);
    T* db = sb + (c % L::NBS) * NB * L::kBPitch;
    if ((s.r & 7) == 0 && (reinterpret_cast<uintptr_t>(b) & 15) == 0) {
      constexpr int kChunks = RP / 8;
      for (int e = tid; e < NB * kChunks; e += kThreads) {
        const int n = e / kChunks, k = (e % kChunks) * 8;
        const bool ok = n0 + n < s.col_e && k < s.r;
        cp_async_16(db + n * L::kBPitch + k, ok ? b + static_cast<int64_t>(n0 + n) * s.r + k : b, ok ? 16 : 0);
      }
    } else {  // odd ranks: B rows are not 16-byte aligned
      for (int e = tid; e < NB * RP; e += kThreads) {
        const int n = e / RP, k = e % RP;
        db[n * L::kBPitch + k] = (n0 + n < s.col_e && k < s.r) ? b[static_cast<int64_t>(n0 + n) * s.r + k] : T(0.f);
      }
    }
  };

  // ---- before the wait: weights only
  for (int c = 0; c < min(na_total, L::NA); ++c) load_a(c);
  for (int c = 0; c < min(nb_total, L::NBS); ++c) load_b(c);
  cp_async_commit();
  griddep_wait();
  griddep_launch_dependents();
  const T* x = static_cast<const T*>(p.x);
  {  // this CTA's k range of x, zeros past h_in and past the tile's rows
    const int kChunks = p.k_per / 8;
    for (int e = tid; e < TM * kChunks; e += kThreads) {
      const int row = e / kChunks, k = kb + (e % kChunks) * 8;
      const bool ok = row < rows && k < p.h_in;
      cp_async_16(sx + row * p.x_pitch + (e % kChunks) * 8, ok ? x + (t0 + row) * p.x_stride + k : x, ok ? 16 : 0);
    }
    cp_async_commit();
  }
  T* y = static_cast<T*>(p.y);
#pragma unroll
  for (int i = 0; i < ops::kMaxLoraSlices; ++i) {  // y into L2 while the shrink runs
    if (si[i].nc == 0) continue;
    const int lines = (si[i].col_e - si[i].col_b + 63) / 64;  // 128-byte lines
    for (int e = tid; e < rows * lines; e += kThreads)
      prefetch_l2(y + (t0 + e / lines) * p.y_stride + p.y_col_offset[i] +
                  min(si[i].col_b + (e % lines) * 64, si[i].col_e - 1));
  }

  // ---- shrink: partial v over this CTA's k range, per slice, into sred[slice][wk]
  const int wn = warp % L::WN, wk = warp / L::WN;
  {
    float acc[L::kNJ * 2][4];
    for (int c = 0; c < na_total; ++c) {
      if (c == 0) cp_async_wait<0>();
      else if (c >= L::NA) cp_async_wait<L::NA - 1>();
      __syncthreads();
      int slice, qq;
      a_chunk(c, slice, qq);
      const int r = si[slice].r;
      if (qq == 0) {
#pragma unroll
        for (int n8 = 0; n8 < L::kNJ * 2; ++n8) acc[n8][0] = acc[n8][1] = acc[n8][2] = acc[n8][3] = 0.f;
      }
      const T* ca = sa + (c % L::NA) * RP * kAPitch + (wn * L::kRanksPerWarp) * kAPitch;
      const T* cx = sx + qq * KA;
#pragma unroll
      for (int kk = wk; kk < KA / 16; kk += L::WK) {
        uint32_t af[4];
        ldmatrix_x4(af, cx + (lane & 15) * p.x_pitch + kk * 16 + (lane >> 4) * 8);
#pragma unroll
        for (int jj = 0; jj < L::kNJ; ++jj) {
          if (wn * L::kRanksPerWarp + jj * 16 >= r) break;
          uint32_t bf[4];
          ldmatrix_x4(bf, ca + (jj * 16 + (lane & 7) + (lane >> 4) * 8) * kAPitch + kk * 16 + ((lane >> 3) & 1) * 8);
          MmaF16<T>::run(acc[jj * 2], af, bf);
          MmaF16<T>::run(acc[jj * 2 + 1], af, bf + 2);
        }
      }
      if (qq == si[slice].nq - 1) {  // the slice's last chunk: park this warp's partial
        float* dst = sred + ((slice * L::WK + wk) * TM) * L::kVPitch + wn * L::kRanksPerWarp;
#pragma unroll
        for (int n8 = 0; n8 < L::kNJ * 2; ++n8) {
          *reinterpret_cast<float2*>(dst + g * L::kVPitch + n8 * 8 + 2 * q) = make_float2(acc[n8][0], acc[n8][1]);
          *reinterpret_cast<float2*>(dst + (g + 8) * L::kVPitch + n8 * 8 + 2 * q) = make_float2(acc[n8][2], acc[n8][3]);
        }
      }
      __syncthreads();  // the stage is free
      if (c + L::NA < na_total) load_a(c + L::NA);
      cp_async_commit();
    }
  }
  // v elements of the tile: [slice][row < rows][j < r], flattened slice by slice
  const int n0e = rows * si[0].r, n1e = n0e + rows * si[1].r, nv = n1e + rows * si[2].r;
  auto v_elem = [&](int e, int& slice, int& row, int& j) {
    slice = e < n0e ? 0 : e < n1e ? 1 : 2;
    const int off = e - (slice == 0 ? 0 : slice == 1 ? n0e : n1e);
    row = off / si[slice].r;
    j = off % si[slice].r;
  };
  // CTA-local sum over the warps that split k (slices with no k chunk here hold zeros)
  for (int e = tid; e < nv; e += kThreads) {
    int slice, row, j;
    v_elem(e, slice, row, j);
    float* base = sred + (slice * L::WK * TM + row) * L::kVPitch + j;
    float s = 0.f;
    if (si[slice].nq > 0) {
#pragma unroll
      for (int w = 0; w < L::WK; ++w) s += base[w * TM * L::kVPitch];
    }
    base[0] = s;
  }
  // zero the hi/lo tiles outside [rows, r)
  for (int e = tid; e < ops::kMaxLoraSlices * TM * RP; e += kThreads) {
    const int slice = e / (TM * RP), row = (e / RP) % TM, j = e % RP;
    if (row >= rows || j >= si[slice].r) {
      svh[(slice * TM + row) * L::kBPitch + j] = T(0.f);
      svl[(slice * TM + row) * L::kBPitch + j] = T(0.f);
    }
  }
  cluster_arrive();
  cluster_wait();  // every CTA's partial v is in its shared memory

  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  auto sum_ranks = [&](int slice, int row, int j) {
    float s = 0.f;
    const int off = (slice * L::WK * TM + row) * L::kVPitch + j;
    for (int rk = 0; rk < CS; ++rk) s += cluster.map_shared_rank(sred, rk)[off];  // fixed order
    return s;
  };
  auto put_v = [&](int slice, int row, int j, float val) {
    T hi, lo;
    split_hi_lo(val, hi, lo);
    svh[(slice * TM + row) * L::kBPitch + j] = hi;
    svl[(slice * TM + row) * L::kBPitch + j] = lo;
  };
  if (nv * CS <= 4 * kThreads) {  // small tile: every CTA sums every element itself
    for (int e = tid; e < nv; e += kThreads) {
      int slice, row, j;
      v_elem(e, slice, row, j);
      const float val = sum_ranks(slice, row, j);
      if (crank == 0) p.v[(t0 + row) * v_row + slice * p.v_rank_stride + j] = val;
      put_v(slice, row, j, val);
    }
    cluster_arrive();  // done reading the others' shared memory (waited for before exit)
  } else {  // reduce-scatter (CTA c sums elements e % CS == c), then all-gather
    for (int e = crank + tid * CS; e < nv; e += kThreads * CS) {
      int slice, row, j;
      v_elem(e, slice, row, j);
      const float val = sum_ranks(slice, row, j);
      p.v[(t0 + row) * v_row + slice * p.v_rank_stride + j] = val;
      ssum[e / CS] = val;
    }
    cluster_arrive();
    cluster_wait();
    for (int e = tid; e < nv; e += kThreads) {
      int slice, row, j;
      v_elem(e, slice, row, j);
      put_v(slice, row, j, cluster.map_shared_rank(ssum, e % CS)[e / CS]);
    }
    cluster_arrive();
  }

  // ---- expand: this CTA's columns of every slice, B chunks from the ring
  for (int c = 0; c < nb_total; ++c) {
    if (c == 0) cp_async_wait<0>();
    else if (c >= L::NBS) cp_async_wait<L::NBS - 1>();
    __syncthreads();
    int slice, n0;
    b_chunk(c, slice, n0);
    const SliceInfo& s = si[slice];
    float acc[2][4] = {};
    const T* cb = sb + (c % L::NBS) * NB * L::kBPitch + (warp * 16) * L::kBPitch;
    const T* vh = svh + slice * TM * L::kBPitch;
    const T* vl = svl + slice * TM * L::kBPitch;
#pragma unroll
    for (int kk = 0; kk < RP / 16; ++kk) {
      if (kk * 16 >= s.r) break;
      uint32_t ah[4], al[4], bf[4];
      ldmatrix_x4(ah, vh + (lane & 15) * L::kBPitch + kk * 16 + (lane >> 4) * 8);
      ldmatrix_x4(al, vl + (lane & 15) * L::kBPitch + kk * 16 + (lane >> 4) * 8);
      ldmatrix_x4(bf, cb + ((lane & 7) + (lane >> 4) * 8) * L::kBPitch + kk * 16 + ((lane >> 3) & 1) * 8);
      MmaF16<T>::run(acc[0], ah, bf);
      MmaF16<T>::run(acc[0], al, bf);
      MmaF16<T>::run(acc[1], ah, bf + 2);
      MmaF16<T>::run(acc[1], al, bf + 2);
    }
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const int n = n0 + warp * 16 + nt * 8 + 2 * q;
      if (n >= s.col_e) continue;
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int row = g + half * 8;
        if (row >= rows) continue;
        uint32_t* dst = reinterpret_cast<uint32_t*>(y + (t0 + row) * p.y_stride + p.y_col_offset[slice] + n);
        const float2 old = pair_to_float2(*dst, T());
        *dst = float2_to_pair(old.x + s.scale * acc[nt][half * 2], old.y + s.scale * acc[nt][half * 2 + 1], T());
      }
    }
    __syncthreads();  // the stage is free
    if (c + L::NBS < nb_total) load_b(c + L::NBS);
    cp_async_commit();
  }
  cp_async_wait<0>();
  cluster_wait();  // nobody reads this CTA's shared memory any more
#endif
}

template <typename T, int RP>
Status launch(const ClusterArgs& args, int cluster_size, bool pdl, cudaStream_t stream) {
  using L = ClusterLayout<RP>;
  auto kernel = lora_cluster_decode_kernel<T, RP>;
  const int smem = L::kFixedBytes + TM * args.x_pitch * 2;
  PUNICA_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  if (cluster_size > 8)
    PUNICA_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(args.num_items * cluster_size));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = static_cast<size_t>(smem);
  cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = static_cast<unsigned>(cluster_size);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  attr[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[1].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 2 : 1;
  PUNICA_CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&cfg, kernel, args));
  return cuda_status(cudaGetLastError(), "lora_cluster_decode_kernel launch");
}

template <typename T>
Status launch_rp(const ClusterArgs& args, int rp, int cluster_size, bool pdl, cudaStream_t stream) {
  switch (rp) {
    case 16: return launch<T, 16>(args, cluster_size, pdl, stream);
    case 32: return launch<T, 32>(args, cluster_size, pdl, stream);
    case 64: return launch<T, 64>(args, cluster_size, pdl, stream);
    case 128: return launch<T, 128>(args, cluster_size, pdl, stream);
    default: return internal_error("lora_cluster_decode: no kernel for padded rank " + std::to_string(rp));
  }
}

}  // namespace

int lora_cluster_smem_bytes(int rp, int x_pitch) {
  const int x = TM * x_pitch * 2;
  switch (rp) {
    case 16: return ClusterLayout<16>::kFixedBytes + x;
    case 32: return ClusterLayout<32>::kFixedBytes + x;
    case 64: return ClusterLayout<64>::kFixedBytes + x;
    default: return ClusterLayout<128>::kFixedBytes + x;
  }
}

Status lora_launch_cluster_decode(DType dtype, const ClusterArgs& args, int rp, int cluster_size, bool pdl,
                                  cudaStream_t stream) {
  if (dtype == DType::kF16) return launch_rp<__half>(args, rp, cluster_size, pdl, stream);
  return launch_rp<__nv_bfloat16>(args, rp, cluster_size, pdl, stream);
}

}  // namespace punica::cuda::lora_detail
