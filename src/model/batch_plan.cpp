#include "model/batch_plan.h"

#include <algorithm>
#include <string>
#include <unordered_set>

#include "model/rope_tables.h"

namespace punica::model {

Expected<BatchPlan> batch_plan_build(const ModelConfig& config, const std::vector<BatchRequest>& requests,
                                     kv::KvCache& kv) {
  BatchPlan plan;
  plan.num_requests = static_cast<int64_t>(requests.size());
  std::unordered_set<uint64_t> seen;
  int64_t total = 0;
  for (size_t r = 0; r < requests.size(); ++r) {
    const BatchRequest& q = requests[r];
    if (q.tokens.empty()) return invalid_argument("batch: request " + std::to_string(r) + " has no tokens");
    if (q.start_pos < 0) return invalid_argument("batch: request " + std::to_string(r) + " has a negative start");
    if (!seen.insert(q.seq_id).second)
      return invalid_argument("batch: sequence " + std::to_string(q.seq_id) + " appears twice in one step");
    total += static_cast<int64_t>(q.tokens.size());
    if (total > INT32_MAX || q.start_pos + static_cast<int64_t>(q.tokens.size()) > INT32_MAX)
      return invalid_argument("batch: too many tokens");
  }
  for (const BatchRequest& q : requests)
    PUNICA_RETURN_IF_ERROR(kv.reserve(q.seq_id, q.start_pos + static_cast<int64_t>(q.tokens.size())));

  plan.num_tokens = total;
  plan.row_start.push_back(0);
  plan.page_table_start.push_back(0);
  plan.logit_row_start.push_back(0);
  for (const BatchRequest& q : requests) {
    const int64_t n = static_cast<int64_t>(q.tokens.size());
    const int32_t first_row = static_cast<int32_t>(plan.token_ids.size());
    const std::vector<float> inv_freq = rope_inv_freq(config, std::max(q.rope_len, q.start_pos + n));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = q.start_pos + i;
      plan.token_ids.push_back(q.tokens[static_cast<size_t>(i)]);
      plan.positions.push_back(static_cast<int32_t>(pos));
      plan.kv_slots.push_back(kv.slot(q.seq_id, pos));
      rope_append_cos_sin(inv_freq, pos, &plan.rope_cos, &plan.rope_sin);
      if (!q.no_logits && (q.all_logits || i == n - 1)) plan.logit_rows.push_back(first_row + static_cast<int32_t>(i));
    }
    plan.row_start.push_back(static_cast<int32_t>(plan.token_ids.size()));
    plan.kv_len.push_back(static_cast<int32_t>(q.start_pos + n));
    const auto& table = kv.page_table(q.seq_id);
    plan.page_indices.insert(plan.page_indices.end(), table.begin(), table.end());
    plan.page_table_start.push_back(static_cast<int32_t>(plan.page_indices.size()));
    plan.logit_row_start.push_back(static_cast<int32_t>(plan.logit_rows.size()));
  }
  return plan;
}

}  // namespace punica::model
