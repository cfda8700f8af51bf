#include "model/lora_apply.h"

#include <algorithm>
#include <cstring>

namespace punica::model {

Status lora_add_projections(ops::Backend& backend, const LoraAdapterSet& set, const LoraSegmentArrays& seg,
                            int layer, const std::vector<LoraModule>& modules, const float* x, int64_t x_stride,
                            int64_t h_in, const std::vector<LoraOutput>& outputs, LoraScratch& scratch) {
  const int ns = static_cast<int>(modules.size());
  if (ns < 1 || ns > ops::kMaxLoraSlices || outputs.size() != modules.size())
    return invalid_argument("lora: 1.." + std::to_string(ops::kMaxLoraSlices) + " modules with one output each");
  if (seg.num_adapted_segments == 0 || set.max_rank() == 0) return Status::ok();
  bool any = false;
  for (LoraModule m : modules) any |= set.adapts(m, layer);
  if (!any) return Status::ok();

  const int64_t T = seg.num_tokens;
  const int R = set.max_rank();
  const ops::LoraSegments sv = seg.view();
  ops::LoraShrinkParams sp;
  sp.x = x;
  sp.x_stride = x_stride;
  sp.h_in = static_cast<int>(h_in);
  sp.num_slices = ns;
  sp.num_slots = set.num_slots();
  int64_t width = 0;
  for (int i = 0; i < ns; ++i) {
    sp.slices[i] = set.table(modules[static_cast<size_t>(i)], layer);
    sp.slices[i].h_out = static_cast<int>(outputs[static_cast<size_t>(i)].width);
    sp.slices[i].y_col_offset = static_cast<int>(width);
    width += outputs[static_cast<size_t>(i)].width;
  }
  const size_t v_size = static_cast<size_t>(T) * ns * R;
  if (scratch.v.size() < v_size) scratch.v.resize(v_size);
  sp.v = scratch.v.data();
  sp.v_rank_stride = R;
  sp.seg = sv;
  PUNICA_RETURN_IF_ERROR(backend.lora_shrink(sp));

  ops::LoraExpandParams ep;
  ep.v = scratch.v.data();
  ep.v_rank_stride = R;
  ep.num_slices = ns;
  ep.num_slots = sp.num_slots;
  for (int i = 0; i < ns; ++i) ep.slices[i] = sp.slices[i];
  ep.seg = sv;
  if (ns == 1) {   // expand straight into the output
    ep.slices[0].y_col_offset = 0;
    ep.y = outputs[0].y;
    ep.y_stride = outputs[0].y_stride;
    return backend.lora_expand(ep);
  }
  // Fused outputs are separate buffers: expand into one [T, width] delta, then add it to each output's
  // adapted rows. delta starts at zero, so each output gets y + (0 + scale * dot) = y + scale * dot.
  const size_t d_size = static_cast<size_t>(T * width);
  if (scratch.delta.size() < d_size) scratch.delta.resize(d_size);
  std::fill_n(scratch.delta.begin(), d_size, 0.0f);
  ep.y = scratch.delta.data();
  ep.y_stride = width;
  PUNICA_RETURN_IF_ERROR(backend.lora_expand(ep));
  for (size_t g = 0; g < seg.seg_slot.size(); ++g) {
    if (seg.seg_slot[g] < 0) continue;
    for (int32_t t = seg.seg_start[g]; t < seg.seg_start[g + 1]; ++t) {
      const float* d = scratch.delta.data() + t * width;
      for (int i = 0; i < ns; ++i) {
        if (sp.slices[i].a[seg.seg_slot[g]] == nullptr) continue;
        const LoraOutput& o = outputs[static_cast<size_t>(i)];
        float* y = o.y + t * o.y_stride;
        const float* di = d + sp.slices[i].y_col_offset;
        for (int64_t n = 0; n < o.width; ++n) y[n] += di[n];
      }
    }
  }
  return Status::ok();
}

Status lora_add_embedding(ops::Backend& backend, const LoraAdapterSet& set, const LoraSegmentArrays& seg,
                          const int32_t* token_ids, int64_t vocab, float* x, int64_t hidden, LoraScratch& scratch) {
  if (seg.num_adapted_segments == 0 || !set.adapts(LoraModule::kEmbedTokens, -1)) return Status::ok();
  const ops::LoraSliceTable table = set.table(LoraModule::kEmbedTokens, -1);
  for (size_t g = 0; g < seg.seg_slot.size(); ++g) {
    const int slot = seg.seg_slot[g];
    const int32_t t0 = seg.seg_start[g], len = seg.seg_start[g + 1] - t0;
    if (slot < 0 || len == 0 || !set.embed_a_rows(slot)) continue;
    const int r = table.rank[slot];
    // v[t, :] = A[:, token[t]] = row token[t] of A^T [vocab, r]
    ops::EmbeddingParams gp;
    gp.table = {ops::LinearWeightFormat::kF32, set.embed_a_rows(slot), vocab, r, static_cast<int64_t>(r) * 4};
    gp.ids = token_ids + t0;
    gp.num_tokens = len;
    if (scratch.v.size() < static_cast<size_t>(len) * r) scratch.v.resize(static_cast<size_t>(len) * r);
    gp.out = scratch.v.data();
    PUNICA_RETURN_IF_ERROR(backend.embedding(gp));
    const int32_t one_start[2] = {0, len};
    const int32_t one_slot[1] = {slot};
    const std::vector<int32_t> token_slot(static_cast<size_t>(len), slot);
    ops::LoraExpandParams ep;
    ep.v = scratch.v.data();
    ep.v_rank_stride = r;
    ep.y = x + static_cast<int64_t>(t0) * hidden;
    ep.y_stride = hidden;
    ep.num_slices = 1;
    ep.num_slots = set.num_slots();
    ep.slices[0] = table;
    ep.slices[0].h_out = static_cast<int>(hidden);
    ep.seg.num_tokens = len;
    ep.seg.num_segments = 1;
    ep.seg.seg_start = one_start;
    ep.seg.seg_slot = one_slot;
    ep.seg.token_slot = token_slot.data();
    ep.seg.max_seg_len = len;
    ep.seg.num_adapted_segments = 1;
    PUNICA_RETURN_IF_ERROR(backend.lora_expand(ep));
  }
  return Status::ok();
}

}  // namespace punica::model
