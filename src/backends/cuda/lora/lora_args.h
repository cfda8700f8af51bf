// Kernel arguments of the LoRA shrink and expand kernels (passed by value), and the launchers that pick a
// template instance. Host-visible, no CUDA device code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "backends/cuda/lora/lora_cuda.h"
#include "core/dtype.h"
#include "ops/lora.h"
#include "punica/status.h"

namespace punica::cuda::lora_detail {

constexpr int kThreads = 128;  // 4 warps per block in every LoRA kernel but the prefill kernel (16 warps)
// Token rows per block iteration of the split-K reduce kernel: one (row, rank) element per thread, so that
// decode batches (a few rows per segment) still spread over many blocks.
constexpr int reduce_rows(int v_rank_stride) { return v_rank_stride >= kThreads ? 1 : kThreads / v_rank_stride; }
// h_in elements per shrink pipeline stage: small ranks take longer k-steps so that each stage still moves
// about 8 KB of A (16-row decode tiles only; 64-row tiles would not fit). `wide`: 128 for rank 64 too,
// which the host picks for the shrink kernel when every segment fits in two 16-row tiles (H100, many
// one-token adapters at rank 64: the shrink 7-9% faster, the add-on of 64 distinct adapters 34.3 -> 30.5 us;
// with longer segments the halved split-K lost up to 30%). The fused decode kernel always uses the narrow one.
constexpr int shrink_step_k(int tm, int rp, bool wide = false) {
  return tm == 16 && rp <= 16 ? 256 : tm == 16 && (rp <= 32 || (wide && rp <= 64)) ? 128 : 64;
}

struct SegmentArgs {
  const int32_t* seg_start;  // [S + 1]
  const int32_t* seg_slot;   // [S]
  int num_tokens;
};

struct ShrinkArgs {
  const void* x;
  int64_t x_stride;
  int h_in;
  int num_slices;
  const void* const* a[ops::kMaxLoraSlices];
  const int32_t* rank[ops::kMaxLoraSlices];
  float* v;                 // [T, num_slices, v_rank_stride]
  int v_rank_stride;
  // split-K over h_in: blockIdx.x = slice * ksplit + split covers k-steps [split * ksteps_per_split, +ksteps)
  int ksplit;
  int ksteps_per_split;
  float* vpart;             // [ksplit, T, num_slices, v_rank_stride] partial sums (ksplit > 1)
  SegmentArgs seg;
  // Streaming shrink only (lora_stream.cu): blockIdx.x = (slice * rank_groups + group) * ksplit + split, and
  // ksteps_per_split counts 32-column chunks; x is staged per batch in x_rows x x_pitch halves.
  int rank_groups;          // groups of 8 rank rows: ceil(v_rank_stride / 8)
  int x_rows;               // min(16, longest adapted segment)
  int x_pitch;              // halves: the batch's columns + 8
};

// Streaming shrink: 32-column chunks per warp kept in flight (16 x 16 bytes of A per lane), so a block
// stages at most 4 warps x 16 chunks = 2048 columns of x per batch.
constexpr int kStreamShrinkBatch = 16;
constexpr size_t stream_shrink_smem_bytes(int x_rows, int x_pitch) {
  return size_t(x_rows) * x_pitch * 2 + 4 * 16 * 8 * sizeof(float);
}
// Streaming expand: output columns per block, wide (16 KB of B per block at r <= 16, 32 KB above) or half
// of that (tall token tiles at r <= 16; plan_expand). 1024 columns at r = 16 (32 KB, 136+
// registers per thread) measured slower in lora_add (H100: distinct B = 128 20.9 vs 19.0 us): an expand block
// then needs more registers than a finishing shrink block frees, so it cannot start in its place.
constexpr int stream_expand_cols(int rp, bool wide) {
  return (rp <= 16 ? 512 : rp <= 64 ? 256 : 128) / (wide ? 1 : 2);
}

struct ExpandArgs {
  void* y;
  int64_t y_stride;
  int num_slices;
  const void* const* b[ops::kMaxLoraSlices];
  const int32_t* rank[ops::kMaxLoraSlices];
  const float* scale[ops::kMaxLoraSlices];
  int h_out[ops::kMaxLoraSlices];
  int y_col_offset[ops::kMaxLoraSlices];
  int ntile_begin[ops::kMaxLoraSlices + 1];  // blockIdx.x range of each slice's column tiles
  float* v;                 // [T, num_slices, v_rank_stride]
  int v_rank_stride;
  // When ksplit > 1 the kernel sums v from the shrink's partials (and blocks of column tile 0 write v).
  int ksplit;
  const float* vpart;
  int prefetch_y;           // 1: load y before griddep_wait (only when the previous kernel is our shrink/reduce)
  SegmentArgs seg;
};

struct LaunchShape {
  dim3 grid;
  int tm;      // token rows per tile: 16 (decode) or 64 (prefill)
  int rp;      // rank padded to a multiple of 16: 16, 32, 64, 128
  int nb;      // expand: output columns per block (64 or 128)
  int ks;      // shrink: h_in elements per pipeline stage (shrink_step_k)
  bool pdl;    // launch with Programmatic Dependent Launch
};

// The single-launch decode kernel (lora_fused.cu): shrink items, grid-wide arrival, expand items.
struct FusedShape {
  int rp, nb, sms;
  bool pdl;
  int tiles;         // 16-row tiles per segment (ceil(max_seg_len / 16))
  int n_shrink;      // ksplit * slices * segments * tiles
  int n_expand;      // column tiles (all slices) * segments * tiles
  unsigned* sync;    // counters in the workspace (zero at first use)
  float* acc;        // two accumulators of acc_floats each (zero at first use)
  int acc_floats;
};

// The cluster kernel (lora_cluster.cu): the whole add-on in one launch, one cluster of ClusterArgs::cluster_size
// CTAs (16, 8, 4 or 2) per (segment, token tile of 16 * mt rows). The host fills everything; lora_cluster_layout the
// smem plan.
constexpr int kLoraClusterSize = 16;  // the largest cluster (non-portable size)
// The kernel instances that exist. 16-CTA clusters take every padded rank, tile height and the few-row instance.
// Smaller clusters, for launches of many segments, take one m tile and only the ranks whose A and B slices (1 / cs
// of each) fit in shared memory: rank <= 64 at 8 CTAs, <= 32 at 4, 16 at 2 (few-row instance only; a 16-row x tile
// of 2048 columns does not fit next to them).
constexpr bool lora_cluster_instance(int cs, int rp, int mt, bool few) {
  if (few && mt != 1) return false;  // the few-row instance has one m tile
  if (cs == 16) return true;
  if (mt != 1) return false;
  return cs == 8 ? rp <= 64 : cs == 4 ? rp <= 32 : cs == 2 ? rp == 16 && few : false;
}
constexpr int kLoraClusterGemvRows = 4;
// The most rows an instance of padded rank rp takes on its CUDA-core phases: the per-thread arrays are sized by
// it (4 rows: 56-58 registers below rank 128, no spills; 2 at rank 128).
constexpr int lora_cluster_gemv_cap(int rp) { return rp >= 128 ? 2 : kLoraClusterGemvRows; }
// sm_90's largest shared memory per block is 227 KB, static included: 1 KB is left for the kernel's own.
constexpr int kLoraClusterMaxSmem = 226 * 1024;

// The whole add-on's operands, as the one-launch kernels (cluster, prefill) take them: the first members of their
// argument structs, in this order (the cluster kernel's parameter layout is the one measured before it was shared).
struct AddonArgs {
  const void* x;
  int64_t x_stride;
  int h_in;
  void* y;
  int64_t y_stride;
  float* v;                 // [T, num_slices, v_rank_stride]
  int v_rank_stride;
  int num_slices;
  const void* const* a[ops::kMaxLoraSlices];
  const void* const* b[ops::kMaxLoraSlices];
  const int32_t* rank[ops::kMaxLoraSlices];
  const float* scale[ops::kMaxLoraSlices];
  int h_out[ops::kMaxLoraSlices];
  int y_col_offset[ops::kMaxLoraSlices];
  SegmentArgs seg;
};

struct ClusterArgs : AddonArgs {
  int tiles;                // token tiles per segment (ceil(max_seg_len / (16 * mt)))
  int num_items;            // clusters: segments * tiles
  int k_per;                // h_in elements per CTA, a multiple of 16
  int a_pitch;              // k_per + 8: shared-memory row pitch of A and x (elements)
  int cspan[ops::kMaxLoraSlices];  // y columns per CTA of each slice, a multiple of 8
  int bcol[ops::kMaxLoraSlices];   // first shared-memory B row of each slice (unused slices: b_rows)
  int ycol[ops::kMaxLoraSlices];   // first column of each slice in the shared-memory y tile
  int b_rows;               // B rows in shared memory: sum of round_up(cspan, 16)
  int y_pitch;              // sum of cspan + 8
  // shared-memory plan (bytes), filled by lora_cluster_layout
  int off_b, off_x, off_y, off_vp, off_vr, smem_bytes;  // v hi / lo reuse A's space at offset 0
  // CTAs per cluster: 16, 8, 4 or 2 (lora_cluster_instance). The kernel has it as a template parameter; this field
  // takes the place of one the kernel did not read either, so that the parameter layout stays as measured.
  int cluster_size;
  int few_rows;             // 1: one m tile and no adapted segment longer than the few-row limit, so the launch takes
                            // the few-row kernel instance
  int direct_max;           // v tiles of at most this many elements: every CTA receives every partial
  int rs_stride;            // larger tiles (reduce-scatter): partials per source CTA in an owner's buffer
  // Benchmarking only: when set, thread 0 of each CTA writes kLoraTraceSlots stamps at trace[block * slots]
  // (clock64 at phases 0-9 and at the end of the shrink mma in slot 13, globaltimer at start and end in slots
  // 10 and 11; slot 9 is written right after 8).
  unsigned long long* trace;
};
using punica::cuda::kLoraTraceSlots;

// Fills the shared-memory plan of `a` (num_slices, a_pitch, b_rows, y_pitch, few_rows, cluster_size set); false if
// it exceeds kLoraClusterMaxSmem or (cluster_size, rp, mt, few_rows) has no kernel (lora_cluster_instance).
bool lora_cluster_layout(int rp, int mt, ClusterArgs* a);
// How many clusters of this instance with a.smem_bytes can be resident at once on this device (0: none;
// cached per size).
Status lora_cluster_capacity(DType dtype, const ClusterArgs& args, int rp, int mt, int* clusters);
Status lora_launch_cluster(DType dtype, const ClusterArgs& args, int rp, int mt, bool pdl, cudaStream_t stream);

// The prefill kernel (lora_prefill.cu): the whole add-on in one launch for segments of many tokens, one cluster of
// 2 CTAs per (segment, 32-row token tile). Grid: x = 2 * tiles, y = segments.
// The v columns one CTA holds: slices x padded rank, as 16 / 32 / 64 (0: the call needs more; the other paths
// take it).
constexpr int prefill_v_cols(int num_slices, int padded_rank) {
  const int n = num_slices * padded_rank;
  return n <= 16 ? 16 : n <= 32 ? 32 : n <= 64 ? 64 : 0;
}
struct PrefillArgs : AddonArgs {
  int rp;                   // v_rank_stride padded to a multiple of 16: slice i's v columns in shared memory start at i * rp
  int max_len;              // the longest adapted segment: the grid covers its token tiles
  int num_segments;
  // Benchmarking only: when set, thread 0 of each CTA writes globaltimer stamps at trace[block * kLoraTraceSlots]:
  // slot 10 at the start, 0 after the PDL wait, 1 after the shrink, 2 after the exchange's cluster barrier, 3 after
  // the exchange, 11 at the end.
  unsigned long long* trace;
};
// How many clusters of the prefill kernel for nv v columns can be resident at once (0: none; cached).
Status lora_prefill_capacity(DType dtype, int nv, int* clusters);
Status lora_launch_prefill(DType dtype, const PrefillArgs& args, int nv, bool pdl, cudaStream_t stream);

// The adapter-streaming decode kernel (lora_adapter_stream.cu): the whole add-on in one launch for segments of at
// most kAdapterStreamTok tokens, one CTA (or a cluster of cluster_size CTAs, each with 1 / cluster_size of h_in and
// of every slice's columns) per segment, the segment's A and then B streamed through a ring of 32 KB stages.
constexpr int kAdapterStreamTok = 4;            // tokens per segment of the multi-token instance (the other: 1)
constexpr int kAdapterStreamStageBytes = 32768;  // one ring slot
constexpr int kAdapterStreamStages = 4;          // ring slots (3 stages in flight)
struct AdapterStreamArgs : AddonArgs {
  int num_segments;  // grid: num_segments * cluster_size CTAs
  int cluster_size;  // 1, 2, 4 or 8
  int tok;           // 1 or kAdapterStreamTok: the instance; no adapted segment is longer
  int k_per;         // h_in elements per CTA, a multiple of 8
  int cspan[ops::kMaxLoraSlices];  // columns per CTA of each slice, a multiple of 8
  int ycol[ops::kMaxLoraSlices];   // first column of each slice in the shared-memory y tile
  int x_pitch;       // halves per shared-memory x row: k_per rounded up to the widest A stage, + 8
  int y_pitch;       // halves per shared-memory y row: sum of cspan, + 8
  int v_pitch;       // floats per (slice, token) row of v in shared memory: v_rank_stride rounded up to 4
  int off_x, off_y, off_v, off_recv, off_red, smem_bytes;  // shared-memory plan (the ring is at 0)
};
// Fills the shared-memory plan of `a` (everything else set); false when it does not fit.
bool lora_adapter_stream_layout(AdapterStreamArgs* a);
Status lora_launch_adapter_stream(DType dtype, const AdapterStreamArgs& args, bool pdl, cudaStream_t stream);

// Resident shrink blocks per SM for a tile shape and stage width (from the occupancy calculator).
int lora_shrink_blocks_per_sm(int tm, int rp, int ks);
Status lora_launch_shrink(DType dtype, const LaunchShape& shape, const ShrinkArgs& args, cudaStream_t stream);
// Sums the shrink's split-K partials into v (grid: slices, chunks of reduce_rows() token rows, segments).
Status lora_launch_reduce(const LaunchShape& shape, const ShrinkArgs& args, cudaStream_t stream);
Status lora_launch_fused_decode(DType dtype, const FusedShape& shape, const ShrinkArgs& sa, const ExpandArgs& ea,
                                cudaStream_t stream);
Status lora_launch_expand(DType dtype, const LaunchShape& shape, const ExpandArgs& args, cudaStream_t stream);
// The streaming decode kernels (lora_stream.cu). shape.tm: 16 when a token tile may have more than 8 rows,
// else 8; the expand's shape.nb is stream_expand_cols(rp, wide or not).
Status lora_launch_stream_shrink(DType dtype, const LaunchShape& shape, const ShrinkArgs& args, cudaStream_t stream);
Status lora_launch_stream_expand(DType dtype, const LaunchShape& shape, const ExpandArgs& args, cudaStream_t stream);

}  // namespace punica::cuda::lora_detail
