// BatchPlan: everything about one forward step that does not depend on the layer, built once per step and
// read by every layer (DESIGN.md section 3, step 4). The batch is a ragged array of tokens from several
// requests; each request brings a chunk of tokens starting at its own position (a prefill chunk or one
// decode token) and says whether it wants logits for every row (scoring) or only its last row (sampling).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/model_config.h"
#include "kv/kv_cache.h"
#include "punica/status.h"

namespace punica::model {

struct BatchRequest {
  uint64_t seq_id = 0;              // the request's KV sequence id
  int64_t start_pos = 0;            // position of tokens[0]; the KV cache holds positions [0, start_pos) already
  std::vector<int32_t> tokens;      // this step's chunk (>= 1 token)
  bool all_logits = false;          // logits for every row, else only for the last row
  bool no_logits = false;           // no logits at all (a prefill chunk that does not end the prompt)
  // Sequence length the dynamic-NTK rope frequencies are computed for; 0 = this chunk's end. transformers
  // runs a whole prompt in one forward, so a prompt cut into chunks passes the prompt length here to give
  // every chunk the frequencies the unchunked prompt gets.
  int64_t rope_len = 0;
};

struct BatchPlan {
  int64_t num_tokens = 0;           // T
  int64_t num_requests = 0;         // R
  std::vector<int32_t> token_ids;   // [T]
  std::vector<int32_t> positions;   // [T]
  std::vector<int32_t> row_start;   // [R + 1]: request r owns rows [row_start[r], row_start[r+1])
  std::vector<int32_t> kv_len;      // [R]: tokens in the cache once this step's are appended
  std::vector<int32_t> page_table_start;  // [R + 1] into page_indices
  std::vector<int32_t> page_indices;      // concatenated page tables
  std::vector<int64_t> kv_slots;    // [T]: flat cache slot each row's k/v is written to
  std::vector<float> rope_cos;      // [T, head_dim / 2]
  std::vector<float> rope_sin;      // [T, head_dim / 2]
  // Rows whose logits are computed, in output order; logit_row_start[r] is request r's first output row.
  std::vector<int32_t> logit_rows;
  std::vector<int32_t> logit_row_start;   // [R + 1]

  // LoRA goes here: per-step adapter segments (ops::LoraSegments arrays: rows grouped by adapter slot,
  // seg_start / seg_slot / token_slot), filled by the planner and read by LlamaModel::project().
};

// Builds the plan and reserves the KV pages each request needs (ResourceExhausted if the pool is short).
// Requests must have distinct seq_ids and at least one token; token ids are checked by the model.
Expected<BatchPlan> batch_plan_build(const ModelConfig& config, const std::vector<BatchRequest>& requests,
                                     kv::KvCache& kv);

}  // namespace punica::model
