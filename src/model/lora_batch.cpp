#include "model/lora_batch.h"

#include <algorithm>
#include <numeric>
#include <string>

namespace punica::model {
namespace {

// Runs of consecutive requests with one slot -> segments over [start[r], start[r+1]).
LoraSegmentArrays segments_from_runs(const std::vector<int32_t>& slot, const std::vector<int32_t>& start) {
  LoraSegmentArrays s;
  const size_t R = slot.size();
  s.num_tokens = start[R];
  s.token_slot.assign(static_cast<size_t>(s.num_tokens), -1);
  s.seg_start.push_back(0);
  for (size_t r = 0; r < R;) {
    size_t e = r;
    while (e < R && slot[e] == slot[r]) ++e;
    const int32_t b = start[r], end = start[e];
    if (end > b) {   // requests without rows here (e.g. no logits this step) make no segment
      s.seg_slot.push_back(slot[r]);
      s.seg_start.push_back(end);
      s.max_seg_len = std::max(s.max_seg_len, end - b);
      if (slot[r] >= 0) {
        ++s.num_adapted_segments;
        s.max_adapted_seg_len = std::max(s.max_adapted_seg_len, end - b);
        std::fill(s.token_slot.begin() + b, s.token_slot.begin() + end, slot[r]);
      }
    }
    r = e;
  }
  return s;
}

}  // namespace

ops::LoraSegments LoraSegmentArrays::view() const {
  ops::LoraSegments v;
  v.num_tokens = num_tokens;
  v.num_segments = static_cast<int>(seg_slot.size());
  v.seg_start = seg_start.data();
  v.seg_slot = seg_slot.data();
  v.token_slot = token_slot.data();
  v.max_seg_len = max_seg_len;
  v.num_adapted_segments = num_adapted_segments;
  v.max_adapted_seg_len = max_adapted_seg_len;
  return v;
}

Expected<LoraBatch> lora_batch_build(const std::vector<int32_t>& request_slot, const std::vector<int32_t>& row_start,
                                     const std::vector<int32_t>& logit_row_start, int num_slots) {
  const size_t R = request_slot.size();
  if (row_start.size() != R + 1 || logit_row_start.size() != R + 1)
    return invalid_argument("lora batch: row_start and logit_row_start must have one entry per request + 1");
  LoraBatch b;
  b.request_slot = request_slot;
  for (size_t r = 0; r < R; ++r) {
    if (request_slot[r] < -1 || request_slot[r] >= num_slots)
      return invalid_argument("lora batch: request " + std::to_string(r) + " has adapter slot " +
                              std::to_string(request_slot[r]) + ", outside -1.." + std::to_string(num_slots - 1));
    if (row_start[r + 1] < row_start[r] || logit_row_start[r + 1] < logit_row_start[r])
      return invalid_argument("lora batch: row starts must be non-decreasing");
    b.active |= request_slot[r] >= 0;
  }
  b.rows = segments_from_runs(request_slot, row_start);
  b.logit_rows = segments_from_runs(request_slot, logit_row_start);
  return b;
}

std::vector<size_t> lora_order_by_slot(const std::vector<int32_t>& request_slot) {
  std::vector<size_t> order(request_slot.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return request_slot[a] < request_slot[b]; });
  return order;
}

std::vector<int32_t> lora_sort_step_by_slot(std::vector<BatchRequest>* batch, std::vector<size_t>* owners,
                                            const std::vector<int32_t>& slot_of_owner) {
  std::vector<int32_t> slots;
  for (size_t o : *owners) slots.push_back(slot_of_owner[o]);
  const std::vector<size_t> order = lora_order_by_slot(slots);
  std::vector<BatchRequest> b;
  std::vector<size_t> own;
  std::vector<int32_t> sorted;
  for (size_t i : order) {
    b.push_back(std::move((*batch)[i]));
    own.push_back((*owners)[i]);
    sorted.push_back(slots[i]);
  }
  *batch = std::move(b);
  *owners = std::move(own);
  return sorted;
}

}  // namespace punica::model
