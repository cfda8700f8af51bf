// Scoring: log-probabilities of given token sequences (`punica score`). Each sequence's
//   token_logprobs[p] = log P(tokens[p+1] | tokens[0..p])     p = 0..n-2
//   top_logprobs[p]   = the top_k most likely next tokens after tokens[0..p], most likely first
//                       (ties: lower token id first)                                p = 0..n-1
// All sequences are scored as one batch; long inputs are cut into steps of at most max_batch_tokens tokens
// (sequences are split into prefill chunks across steps), which does not change any number.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/llama_model.h"

namespace punica::engine {

struct ScoreRequest {
  std::string id;
  std::vector<int32_t> tokens;   // >= 1
  int32_t adapter_slot = -1;     // LoRA adapter (slot in the model's LoraAdapterSet), -1 = base model
};

struct ScoreResult {
  std::string id;
  std::vector<float> token_logprobs;
  std::vector<std::vector<std::pair<int32_t, float>>> top_logprobs;
};

struct ScoreOptions {
  int64_t top_k = 0;
  int64_t max_batch_tokens = 256;
  int64_t max_kv_tokens = 32768;   // cache size cap; sequences are admitted while they fit
};

// Errors name the request (by index and id) and what is wrong (empty, token outside the vocabulary).
Expected<std::vector<ScoreResult>> score_sequences(model::LlamaModel& model,
                                                   const std::vector<ScoreRequest>& requests,
                                                   const ScoreOptions& options = {});

}  // namespace punica::engine
