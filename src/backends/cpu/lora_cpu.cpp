#include "backends/cpu/lora_cpu.h"

#include "core/half.h"

namespace punica::cpu {
namespace {

float load(DType t, const void* base, int64_t i) {
  switch (t) {
    case DType::kF16: return fp16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::kBF16: return bf16_to_float(static_cast<const uint16_t*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}

void store(DType t, void* base, int64_t i, float v) {
  switch (t) {
    case DType::kF16: static_cast<uint16_t*>(base)[i] = float_to_fp16(v); break;
    case DType::kBF16: static_cast<uint16_t*>(base)[i] = float_to_bf16(v); break;
    default: static_cast<float*>(base)[i] = v; break;
  }
}

// Calls fn(token, slot) for every token in a segment with an adapter.
template <typename Fn>
void for_each_adapted_token(const ops::LoraSegments& seg, Fn&& fn) {
  for (int g = 0; g < seg.num_segments; ++g) {
    const int slot = seg.seg_slot[g];
    if (slot < 0) continue;
    for (int t = seg.seg_start[g]; t < seg.seg_start[g + 1]; ++t) fn(t, slot);
  }
}

}  // namespace

Status lora_shrink(const ops::LoraShrinkParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::lora_shrink_check(p));
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  for_each_adapted_token(p.seg, [&](int t, int slot) {
    for (int i = 0; i < p.num_slices; ++i) {
      const ops::LoraSliceTable& s = p.slices[i];
      const void* a = s.a[slot];
      const int r = a ? s.rank[slot] : 0;
      float* v = p.v + t * v_row + static_cast<int64_t>(i) * p.v_rank_stride;
      for (int j = 0; j < r; ++j) {
        double acc = 0;  // double keeps the reference's own rounding error far below the kernels'
        for (int k = 0; k < p.h_in; ++k)
          acc += static_cast<double>(load(p.dtype, p.x, t * p.x_stride + k)) *
                 load(p.dtype, a, static_cast<int64_t>(j) * p.h_in + k);
        v[j] = static_cast<float>(acc);
      }
    }
  });
  return Status::ok();
}

Status lora_expand(const ops::LoraExpandParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::lora_expand_check(p));
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  for_each_adapted_token(p.seg, [&](int t, int slot) {
    for (int i = 0; i < p.num_slices; ++i) {
      const ops::LoraSliceTable& s = p.slices[i];
      const void* b = s.b[slot];
      const int r = b ? s.rank[slot] : 0;
      if (r == 0) continue;
      const float scale = s.scale[slot];
      const float* v = p.v + t * v_row + static_cast<int64_t>(i) * p.v_rank_stride;
      for (int n = 0; n < s.h_out; ++n) {
        double acc = 0;
        for (int j = 0; j < r; ++j) acc += static_cast<double>(v[j]) * load(p.dtype, b, static_cast<int64_t>(n) * r + j);
        const int64_t yi = t * p.y_stride + s.y_col_offset + n;
        store(p.dtype, p.y, yi, load(p.dtype, p.y, yi) + scale * static_cast<float>(acc));
      }
    }
  });
  return Status::ok();
}

}  // namespace punica::cpu
