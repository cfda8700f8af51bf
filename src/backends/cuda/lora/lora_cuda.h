// CUDA implementation of the LoRA ops contract (src/ops/lora.h) for f16 and bf16.
//
// Additive extension of the contract for GPU use: a caller-owned workspace (size queried up front, zeroed
// once) and a stream. Nothing here allocates, synchronises with the host or reads device memory on the
// host, so every call can be captured in a CUDA graph. All pointers in the params are device pointers.
//
//   size_t bytes = lora_workspace_size();            // once, at start-up
//   cudaMalloc(&ptr, bytes); lora_workspace_init({ptr, bytes}, stream);
//   per projection and step:  lora_add(shrink_params, expand_params, ws, stream);   // y += scale * x A^T B^T
//
// lora_add picks the algorithm by shape on the host. On sm_90, batches with few adapted segments (<= 12 at
// rank <= 32, <= 6 above; segments <= 128 tokens) run the whole add-on as ONE launch of the cluster kernel
// (lora_cluster.cu: a 16-CTA cluster per segment tile, partial v pushed through distributed shared memory)
// when its shared-memory plan fits; prefill batches (64-row token tiles) with at most 64 v columns run the
// prefill kernel (lora_prefill.cu: one launch, a 2-CTA cluster per 32-row tile of a segment); batches of many
// short segments run the streaming shrink + expand (lora_stream.cu: weights loaded straight into mma
// fragments); everything else (and everything before sm_90) runs a persistent single-launch kernel or the tiled
// shrink [+ split-K reduce] + expand kernels. All are launched with Programmatic Dependent Launch.
// PDL contract: the kernels read the segment arrays, slot tables and adapter weights BEFORE waiting for the
// previous kernel in the stream (that overlap is most of the speed of small batches), x and y after. So
// those arrays and weights must not be written by the kernel launched just before; the once-per-step
// upload (cudaMemcpyAsync) and adapter loading satisfy this.
// Alignment requirements (checked, InvalidArgument otherwise): x, y, v 16-byte aligned; h_in, x_stride,
// y_stride, every slice's h_out and y_col_offset multiples of 8; A pointers 16-byte aligned. B pointers may
// have any 2-byte alignment (odd ranks make B rows unaligned; a slower path handles those).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "ops/lora.h"

namespace punica::cuda {

// Scratch memory: split-K partial sums of the shrink (fp32) and the decode kernel's arrival counters. One
// workspace serves any number of calls on one stream (calls on different streams need their own). A null or smaller workspace is allowed:
// the kernels then split K less (slower for small batches, same results up to fp32 summation order).
struct LoraWorkspace {
  void* ptr = nullptr;
  size_t bytes = 0;
};

// Bytes of the workspace that gives every shape its preferred split (a constant, 8.5 MiB + 256 bytes).
size_t lora_workspace_size();

// Zeroes the workspace (asynchronously on `stream`). Required once after allocating it: the single-launch
// decode kernel keeps two counters there, which every call leaves at zero again.
Status lora_workspace_init(const LoraWorkspace& ws, cudaStream_t stream);

// v = x @ A^T per segment (ops/lora.h). Writes v for adapted rows, j < rank.
Status lora_shrink(const ops::LoraShrinkParams& p, const LoraWorkspace& ws, cudaStream_t stream);

// y += scale * v @ B^T per segment (ops/lora.h).
Status lora_expand(const ops::LoraExpandParams& p, cudaStream_t stream);

// The whole add-on of one (possibly fused multi-slice) projection: shrink then expand. `shrink.v` and
// `expand.v` must be the same buffer with the same v_rank_stride; both params must describe the same
// segments. For small batches the expand sums the shrink's split-K partials itself (one launch fewer); v is
// still written (for slices whose slot has both A and B), so after the call it holds x @ A^T as
// lora_shrink leaves it. Launches 1 kernel (cluster, prefill or persistent), 2, or 3 when a split-K reduce pass is needed.
Status lora_add(const ops::LoraShrinkParams& shrink, const ops::LoraExpandParams& expand, const LoraWorkspace& ws,
                cudaStream_t stream);

// Benchmarking and testing only (not thread-safe): overrides lora_add's choice of the cluster kernel.
// -1: by shape (default; the PUNICA_LORA_CLUSTER environment variable sets the initial value), 0: never,
// 1 / 2 / 4: for every call it can take (sm_90, shared-memory plan fits), with token tiles of 16 / 32 / 64
// rows, whatever the shape.
void lora_set_cluster_override(int cluster_size);

// Benchmarking and testing only (not thread-safe): overrides the choice of the streaming decode kernels
// (lora_stream.cu) for lora_shrink, lora_expand and lora_add's two-kernel path. -1: by shape (the
// PUNICA_LORA_STREAM environment variable sets the initial value), 0: never, 1: for every shape, and
// lora_add's persistent decode kernel off.
void lora_set_stream_override(int mode);

// Benchmarking and testing only (not thread-safe): overrides lora_add's choice of the adapter-streaming decode kernel
// (lora_adapter_stream.cu). -1: by shape (the PUNICA_LORA_ASTREAM environment variable sets the initial value), 0:
// never, 1: for every call it can take (sm_90, segments of at most 4 tokens), before the cluster kernel.
void lora_set_adapter_stream_override(int mode);

// Benchmarking and testing only (not thread-safe): overrides lora_add's choice of the prefill kernel
// (lora_prefill.cu). -1: by shape (the PUNICA_LORA_PREFILL environment variable sets the initial value), 0: never,
// 1: for every call it can take (sm_90, at most 64 v columns), before any other path.
void lora_set_prefill_override(int mode);

// Benchmarking only (not thread-safe): cluster-kernel launches made while set write per-CTA phase stamps to
// buf (16 u64 per CTA: clock64 at 10 phases and at the end of the shrink mma, globaltimer at start and end);
// nullptr turns it off.
void lora_set_cluster_trace(unsigned long long* buf);
constexpr int kLoraTraceSlots = 16;  // u64 stamps per CTA in a trace buffer

// Benchmarking only: how many clusters of cluster_size CTAs of the cluster kernel can be resident at once on this
// device for a one-slice h_in -> h_out projection of this rank with token tiles of tile_rows (16, 32 or 64; 1..4:
// the few-row instance); 0 where the kernel cannot run (before sm_90, no such instance, or its shared-memory plan
// does not fit).
Status lora_cluster_capacity_for(DType dtype, int h_in, int h_out, int rank, int tile_rows, int cluster_size,
                                 int* clusters);

// Benchmarking only: how many clusters of the prefill kernel can be resident at once for one slice of this rank (0:
// none, or the kernel cannot take the rank).
Status lora_prefill_capacity_for(DType dtype, int rank, int* clusters);

}  // namespace punica::cuda
