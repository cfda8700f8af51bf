#include "backends/cpu/lora_cpu_f32.h"

#include <cblas.h>

#include "backends/cpu/lora_cpu.h"

namespace punica::cpu {

Status lora_shrink_f32(const ops::LoraShrinkParams& p) {
  if (p.dtype != DType::kF32) return lora_shrink(p);
  PUNICA_RETURN_IF_ERROR(ops::lora_shrink_check(p));
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  const float* x = static_cast<const float*>(p.x);
  for (int g = 0; g < p.seg.num_segments; ++g) {
    const int slot = p.seg.seg_slot[g];
    const int t0 = p.seg.seg_start[g], len = p.seg.seg_start[g + 1] - t0;
    if (slot < 0 || len <= 0) continue;
    for (int i = 0; i < p.num_slices; ++i) {
      const ops::LoraSliceTable& s = p.slices[i];
      const float* a = static_cast<const float*>(s.a[slot]);
      const int r = a ? s.rank[slot] : 0;
      if (r == 0) continue;
      float* v = p.v + t0 * v_row + static_cast<int64_t>(i) * p.v_rank_stride;
      if (len == 1) {   // decode: one row, a GEMV
        cblas_sgemv(CblasRowMajor, CblasNoTrans, r, p.h_in, 1.0f, a, p.h_in, x + t0 * p.x_stride, 1, 0.0f, v, 1);
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, r, p.h_in, 1.0f, x + t0 * p.x_stride,
                    static_cast<int>(p.x_stride), a, p.h_in, 0.0f, v, static_cast<int>(v_row));
      }
    }
  }
  return Status::ok();
}

Status lora_expand_f32(const ops::LoraExpandParams& p) {
  if (p.dtype != DType::kF32) return lora_expand(p);
  PUNICA_RETURN_IF_ERROR(ops::lora_expand_check(p));
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  float* y = static_cast<float*>(p.y);
  for (int g = 0; g < p.seg.num_segments; ++g) {
    const int slot = p.seg.seg_slot[g];
    const int t0 = p.seg.seg_start[g], len = p.seg.seg_start[g + 1] - t0;
    if (slot < 0 || len <= 0) continue;
    for (int i = 0; i < p.num_slices; ++i) {
      const ops::LoraSliceTable& s = p.slices[i];
      const float* b = static_cast<const float*>(s.b[slot]);
      const int r = b ? s.rank[slot] : 0;
      if (r == 0) continue;
      const float* v = p.v + t0 * v_row + static_cast<int64_t>(i) * p.v_rank_stride;
      float* yo = y + t0 * p.y_stride + s.y_col_offset;
      if (len == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, s.h_out, r, s.scale[slot], b, r, v, 1, 1.0f, yo, 1);
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, s.h_out, r, s.scale[slot], v,
                    static_cast<int>(v_row), b, r, 1.0f, yo, static_cast<int>(p.y_stride));
      }
    }
  }
  return Status::ok();
}

}  // namespace punica::cpu
