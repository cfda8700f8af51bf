// The LoRA ops contract: segmented shrink and expand over a batch whose tokens use different adapters.
// Every backend implements exactly this; src/backends/cpu/lora_cpu.cpp is the reference.
//
// For one projection W (h_in -> h_out) and the adapter in slot s, LoRA adds
//     y[t, :] += scale_s * (x[t, :] @ A_s^T) @ B_s^T
// with A_s: [r_s, h_in] and B_s: [h_out, r_s], both row-major in the "out x in" layout of nn.Linear and
// PEFT's lora_A.weight / lora_B.weight. The op is split in two:
//     shrink:  v[t, i, j]  = sum_k x[t, k] * A_{s,i}[j, k]          j < r_{s,i}   (v is fp32)
//     expand:  y[t, o_i+n] += scale_{s,i} * sum_j v[t, i, j] * B_{s,i}[n, j]      n < h_out_i
// where i is the slice of a fused projection (q|k|v share x and are 3 slices; gate|up are 2; a plain
// projection is 1) and o_i is the slice's column offset in y.
//
// Tokens are grouped into segments that share a slot (the batch planner sorts rows by slot once per step).
// Segment g covers tokens [seg_start[g], seg_start[g+1]) and uses slot seg_slot[g]; seg_slot < 0 means "no
// adapter": those rows are not read and not written. Segments may be empty. Tokens outside every segment are
// untouched. A slot that does not adapt slice i has a null pointer (or rank 0) in that slice's table: its
// rows are untouched for that slice. Ranks differ per slot and per slice (rank_pattern), 1..kMaxLoraRank.
// Shrink writes v[t, i, j] only for j < r_{s,i}; expand reads only those.
//
// Memory: x, y, v and all arrays below are in the backend's memory (device memory for CUDA). Adapter
// weights are addressed per slot through pointer tables, never assumed contiguous across adapters.
// dtype: x, A, B, y share one dtype: f32 (CPU path), f16 or bf16 (CUDA). v and accumulation are fp32.
// y is rounded to its dtype once, after the addition: y_new = round(y_old + scale * dot).
#pragma once

#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "punica/status.h"

namespace punica::ops {

constexpr int kMaxLoraSlices = 3;  // q|k|v
constexpr int kMaxLoraRank = 128;

// Per-step grouping of tokens by adapter slot (built once per step, reused by every layer).
struct LoraSegments {
  int num_tokens = 0;               // T
  int num_segments = 0;             // S
  const int32_t* seg_start = nullptr;  // [S + 1], non-decreasing, seg_start[S] <= T
  const int32_t* seg_slot = nullptr;   // [S], slot index or -1
  const int32_t* token_slot = nullptr; // [T], the slot of each token (-1 outside segments): for row-wise kernels
  // Host-side facts about the batch so a backend picks its algorithm without reading device memory.
  int max_seg_len = 0;              // longest segment, in tokens
  int num_adapted_segments = 0;     // segments with seg_slot >= 0
  // Longest segment with seg_slot >= 0; 0: not given (max_seg_len stands in). Like max_seg_len it must be
  // exact when given: a backend may size its work by it, and rows past an understated value may be left out.
  int max_adapted_seg_len = 0;
};

// Where each slot's weights for one slice live.
struct LoraSliceTable {
  const void* const* a = nullptr;   // [num_slots] -> A: [rank, h_in], or nullptr (slot does not adapt this slice)
  const void* const* b = nullptr;   // [num_slots] -> B: [h_out, rank], or nullptr
  const int32_t* rank = nullptr;    // [num_slots], 0..kMaxLoraRank
  const float* scale = nullptr;     // [num_slots], alpha / r (or alpha / sqrt(r) for rsLoRA)
  int h_out = 0;                    // this slice's output width
  int y_col_offset = 0;             // first column of this slice in y
};

struct LoraShrinkParams {
  DType dtype = DType::kF32;        // of x and A
  const void* x = nullptr;          // [T, h_in], row stride x_stride (elements)
  int64_t x_stride = 0;
  int h_in = 0;
  int num_slices = 1;
  int num_slots = 0;                // size of the slot tables
  LoraSliceTable slices[kMaxLoraSlices];
  float* v = nullptr;               // [T, num_slices, v_rank_stride] fp32
  int v_rank_stride = 0;            // >= every rank in the batch (the planner's max rank)
  LoraSegments seg;
};

struct LoraExpandParams {
  DType dtype = DType::kF32;        // of y and B
  const float* v = nullptr;         // [T, num_slices, v_rank_stride], as written by shrink
  int v_rank_stride = 0;
  void* y = nullptr;                // [T, y_stride]; slice i adds into columns [y_col_offset, +h_out)
  int64_t y_stride = 0;
  int num_slices = 1;
  int num_slots = 0;
  LoraSliceTable slices[kMaxLoraSlices];
  LoraSegments seg;
};

// Validates shapes and sizes that can be checked without reading the (possibly device) arrays.
// Returns InvalidArgument naming the field.
Status lora_shrink_check(const LoraShrinkParams& p);
Status lora_expand_check(const LoraExpandParams& p);

}  // namespace punica::ops
