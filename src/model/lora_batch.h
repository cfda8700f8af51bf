// LoraBatch: the per-step LoRA segments (ops::LoraSegments) of a batch, built once per step by the batch
// planner and read by every layer. Rows are grouped into segments of consecutive rows that share an
// adapter slot (-1 = base model: those rows are never touched by the LoRA ops). Ordering the requests by
// slot first (lora_order_by_slot) makes one segment per adapter; any order is still correct.
#pragma once

#include <cstdint>
#include <vector>

#include "model/batch_plan.h"
#include "ops/lora.h"
#include "punica/status.h"

namespace punica::model {

struct LoraSegmentArrays {
  int32_t num_tokens = 0;
  std::vector<int32_t> seg_start;    // [S + 1]
  std::vector<int32_t> seg_slot;     // [S]
  std::vector<int32_t> token_slot;   // [T]
  int max_seg_len = 0;
  int num_adapted_segments = 0;
  int max_adapted_seg_len = 0;
  // A view for the ops; valid while this object lives and is not modified.
  ops::LoraSegments view() const;
};

struct LoraBatch {
  bool active = false;               // some row uses an adapter
  std::vector<int32_t> request_slot; // [R]
  LoraSegmentArrays rows;            // over the step's rows [T]
  LoraSegmentArrays logit_rows;      // over the rows whose logits are computed (lm_head LoRA)
};

// request_slot[r] is request r's adapter slot (-1: none, else < num_slots); row_start [R + 1] and
// logit_row_start [R + 1] give each request's rows and logit rows (BatchPlan's arrays).
Expected<LoraBatch> lora_batch_build(const std::vector<int32_t>& request_slot, const std::vector<int32_t>& row_start,
                                     const std::vector<int32_t>& logit_row_start, int num_slots);

// A stable order of requests by adapter slot (base-model requests first): the planner's sort, so each
// adapter becomes one segment. Returns the permutation (new position -> original index).
std::vector<size_t> lora_order_by_slot(const std::vector<int32_t>& request_slot);

// The planner's per-step sort: reorders a step's requests and their owner indices (parallel arrays) by
// adapter slot (slot_of_owner[owner] = that request's slot). Returns the slots in the new order, ready for
// lora_batch_build once the BatchPlan is built.
std::vector<int32_t> lora_sort_step_by_slot(std::vector<BatchRequest>* batch, std::vector<size_t>* owners,
                                            const std::vector<int32_t>& slot_of_owner);

}  // namespace punica::model
