// The LoRA add-on of the model's projections, as op calls on an ops::Backend (ops/lora.h):
//   lora_add_projections: modules that share one input x (q|k|v: 3 slices with GQA widths; gate|up: 2;
//     o, down, lm_head: 1) -> one fused shrink, then the expand adds each slice into its output.
//   lora_add_embedding: x_emb[t] += scale * B @ A[:, token[t]] per adapted segment (rows of A^T gathered
//     with the embedding op, then a one-segment expand).
// Rows of base-model requests are never touched. Nothing runs when no slot adapts the modules or no
// segment has an adapter.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/lora_adapter.h"
#include "model/lora_adapter_set.h"
#include "model/lora_batch.h"
#include "ops/backend.h"

namespace punica::model {

// Scratch reused across layers and steps.
struct LoraScratch {
  std::vector<float> v;       // [T, slices, max_rank] shrink output
  std::vector<float> delta;   // [T, sum of widths] for fused outputs that live in separate buffers
};

struct LoraOutput {
  float* y = nullptr;         // [T, y_stride]
  int64_t y_stride = 0;
  int64_t width = 0;          // this module's output width (h_out)
};

Status lora_add_projections(ops::Backend& backend, const LoraAdapterSet& set, const LoraSegmentArrays& seg,
                            int layer, const std::vector<LoraModule>& modules, const float* x, int64_t x_stride,
                            int64_t h_in, const std::vector<LoraOutput>& outputs, LoraScratch& scratch);

Status lora_add_embedding(ops::Backend& backend, const LoraAdapterSet& set, const LoraSegmentArrays& seg,
                          const int32_t* token_ids, int64_t vocab, float* x, int64_t hidden, LoraScratch& scratch);

}  // namespace punica::model
