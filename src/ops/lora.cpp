#include "ops/lora.h"

namespace punica::ops {
namespace {

bool is_lora_dtype(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

Status check_common(const char* op, DType dtype, int num_slices, int num_slots, int v_rank_stride,
                    const LoraSegments& seg, const LoraSliceTable* slices) {
  std::string pre = std::string(op) + ": ";
  if (!is_lora_dtype(dtype)) return invalid_argument(pre + "dtype must be f32, f16 or bf16");
  if (num_slices < 1 || num_slices > kMaxLoraSlices)
    return invalid_argument(pre + "num_slices must be 1.." + std::to_string(kMaxLoraSlices) + ", got " +
                            std::to_string(num_slices));
  if (num_slots < 0) return invalid_argument(pre + "num_slots must be >= 0");
  if (v_rank_stride < 1 || v_rank_stride > kMaxLoraRank)
    return invalid_argument(pre + "v_rank_stride must be 1.." + std::to_string(kMaxLoraRank) + ", got " +
                            std::to_string(v_rank_stride));
  if (seg.num_tokens < 0 || seg.num_segments < 0) return invalid_argument(pre + "negative token or segment count");
  if (seg.num_segments > 0 && (!seg.seg_start || !seg.seg_slot))
    return invalid_argument(pre + "seg_start and seg_slot are required when num_segments > 0");
  if (seg.max_adapted_seg_len < 0 || seg.max_adapted_seg_len > seg.max_seg_len)
    return invalid_argument(pre + "max_adapted_seg_len must be 0..max_seg_len (" + std::to_string(seg.max_seg_len) +
                            "), got " + std::to_string(seg.max_adapted_seg_len));
  for (int i = 0; i < num_slices; ++i) {
    const LoraSliceTable& s = slices[i];
    if (num_slots > 0 && (!s.a || !s.b || !s.rank || !s.scale))
      return invalid_argument(pre + "slice " + std::to_string(i) + ": a, b, rank and scale tables are required");
    if (s.h_out < 1 || s.y_col_offset < 0)
      return invalid_argument(pre + "slice " + std::to_string(i) + ": h_out must be >= 1 and y_col_offset >= 0");
  }
  return Status::ok();
}

}  // namespace

Status lora_shrink_check(const LoraShrinkParams& p) {
  PUNICA_RETURN_IF_ERROR(check_common("lora_shrink", p.dtype, p.num_slices, p.num_slots, p.v_rank_stride, p.seg,
                                      p.slices));
  if (p.h_in < 1) return invalid_argument("lora_shrink: h_in must be >= 1");
  if (p.x_stride < p.h_in) return invalid_argument("lora_shrink: x_stride must be >= h_in");
  if (p.seg.num_tokens > 0 && (!p.x || !p.v)) return invalid_argument("lora_shrink: x and v are required");
  return Status::ok();
}

Status lora_expand_check(const LoraExpandParams& p) {
  PUNICA_RETURN_IF_ERROR(check_common("lora_expand", p.dtype, p.num_slices, p.num_slots, p.v_rank_stride, p.seg,
                                      p.slices));
  for (int i = 0; i < p.num_slices; ++i) {
    if (p.slices[i].y_col_offset + p.slices[i].h_out > p.y_stride)
      return invalid_argument("lora_expand: slice " + std::to_string(i) + " columns [" +
                              std::to_string(p.slices[i].y_col_offset) + ", " +
                              std::to_string(p.slices[i].y_col_offset + p.slices[i].h_out) +
                              ") exceed y_stride " + std::to_string(p.y_stride));
  }
  if (p.seg.num_tokens > 0 && (!p.y || !p.v)) return invalid_argument("lora_expand: y and v are required");
  return Status::ok();
}

}  // namespace punica::ops
