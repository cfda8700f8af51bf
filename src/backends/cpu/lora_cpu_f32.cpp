#include "backends/cpu/lora_cpu_f32.h"

#include <cblas.h>

#include "backends/cpu/lora_cpu.h"

namespace punica::cpu {
namespace {

// Segments shorter than this run as plain loops: a BLAS call costs more (thread wake-ups) than their math.
constexpr int kBlasMinRows = 8;

// 16 independent partial sums so the compiler vectorises the reduction without -ffast-math.
float dot_f32(const float* a, const float* b, int n) {
  float acc[16] = {};
  int k = 0;
  for (; k + 16 <= n; k += 16)
    for (int u = 0; u < 16; ++u) acc[u] += a[k + u] * b[k + u];
  float s = 0;
  for (int u = 0; u < 16; ++u) s += acc[u];
  for (; k < n; ++k) s += a[k] * b[k];
  return s;
}

// Calls fn(t0, len, slice, slot, weights, rank) for every non-empty segment with an adapter and every slice
// whose slot has weights there (A for shrink, B for expand): the iteration both ops share.
template <typename Fn>
void for_each_adapted_slice(const ops::LoraSegments& seg, int num_slices, const ops::LoraSliceTable* slices,
                            bool weights_a, Fn&& fn) {
  for (int g = 0; g < seg.num_segments; ++g) {
    const int slot = seg.seg_slot[g];
    const int t0 = seg.seg_start[g], len = seg.seg_start[g + 1] - t0;
    if (slot < 0 || len <= 0) continue;
    for (int i = 0; i < num_slices; ++i) {
      const ops::LoraSliceTable& s = slices[i];
      const float* w = static_cast<const float*>(weights_a ? s.a[slot] : s.b[slot]);
      const int r = w ? s.rank[slot] : 0;
      if (r > 0) fn(t0, len, i, slot, w, r);
    }
  }
}

}  // namespace

Status lora_shrink_f32(const ops::LoraShrinkParams& p) {
  if (p.dtype != DType::kF32) return lora_shrink(p);
  PUNICA_RETURN_IF_ERROR(ops::lora_shrink_check(p));
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  const float* x = static_cast<const float*>(p.x);
  for_each_adapted_slice(p.seg, p.num_slices, p.slices, /*weights_a=*/true,
                         [&](int t0, int len, int i, int, const float* a, int r) {
    float* v = p.v + t0 * v_row + static_cast<int64_t>(i) * p.v_rank_stride;
    if (len >= kBlasMinRows) {   // v_seg[len, r] = x_seg[len, h_in] @ A^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, r, p.h_in, 1.0f, x + t0 * p.x_stride,
                  static_cast<int>(p.x_stride), a, p.h_in, 0.0f, v, static_cast<int>(v_row));
      return;
    }
    for (int t = 0; t < len; ++t)
      for (int j = 0; j < r; ++j)
        v[t * v_row + j] = dot_f32(x + (t0 + t) * p.x_stride, a + static_cast<int64_t>(j) * p.h_in, p.h_in);
  });
  return Status::ok();
}

Status lora_expand_f32(const ops::LoraExpandParams& p) {
  if (p.dtype != DType::kF32) return lora_expand(p);
  PUNICA_RETURN_IF_ERROR(ops::lora_expand_check(p));
  const int64_t v_row = static_cast<int64_t>(p.num_slices) * p.v_rank_stride;
  float* y = static_cast<float*>(p.y);
  for_each_adapted_slice(p.seg, p.num_slices, p.slices, /*weights_a=*/false,
                         [&](int t0, int len, int i, int slot, const float* b, int r) {
    const ops::LoraSliceTable& s = p.slices[i];
    const float* v = p.v + t0 * v_row + static_cast<int64_t>(i) * p.v_rank_stride;
    float* yo = y + t0 * p.y_stride + s.y_col_offset;
    if (len >= kBlasMinRows) {   // y_seg += scale * v_seg[len, r] @ B^T
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, len, s.h_out, r, s.scale[slot], v,
                  static_cast<int>(v_row), b, r, 1.0f, yo, static_cast<int>(p.y_stride));
      return;
    }
    const float scale = s.scale[slot];
    for (int t = 0; t < len; ++t) {
      const float* vt = v + t * v_row;
      float* yt = yo + t * p.y_stride;
      for (int n = 0; n < s.h_out; ++n) {
        const float* bn = b + static_cast<int64_t>(n) * r;
        float acc = 0;
        for (int j = 0; j < r; ++j) acc += vt[j] * bn[j];
        yt[n] += scale * acc;
      }
    }
  });
  return Status::ok();
}

}  // namespace punica::cpu
