// Generator: a batched generation loop as a CPU state machine, schedule -> execute -> update (vLLM v1's
// engine core shape), so a scheduler or server can drive it step by step.
//
// Each step takes every unfinished request's next chunk: the rest of its prompt (prefill, cut to the
// step's token budget) or its last sampled token (decode). Prefill chunks and decode tokens share one
// BatchPlan. A request whose chunk reaches the end of its known tokens samples one token; it finishes on a
// stop token id or after max_tokens new tokens, and its KV pages are released at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/sampling.h"
#include "kv/kv_cache.h"
#include "model/llama_model.h"

namespace punica::engine {

enum class FinishReason { kNone, kStop, kLength };
const char* finish_reason_name(FinishReason r);   // "", "stop", "length"

struct GenerationRequest {
  std::string id;
  std::vector<int32_t> prompt;          // >= 1 token
  SamplingParams sampling;
  int64_t max_tokens = 16;              // new tokens, >= 0
  std::vector<int32_t> stop_token_ids;  // e.g. the model's EOS ids
  int32_t adapter_slot = -1;            // LoRA adapter (slot in the model's LoraAdapterSet), -1 = base model
};

struct GenerationEvent {
  size_t request = 0;                   // index returned by add()
  int32_t token = -1;
  FinishReason finish = FinishReason::kNone;
};

struct GeneratorOptions {
  int64_t max_batch_tokens = 256;       // token budget of one step
};

class Generator {
 public:
  Generator(model::LlamaModel& model, kv::KvCache& kv, GeneratorOptions options = {});

  // Validates (token ids within the vocabulary, sampling fields) and queues the request; its index.
  Expected<size_t> add(GenerationRequest request);
  bool has_unfinished() const;
  // One engine step. ResourceExhausted when no request fits in the KV cache.
  Expected<std::vector<GenerationEvent>> step();
  // Runs step() until every request has finished.
  Status run_to_completion();

  const std::vector<int32_t>& generated(size_t request) const { return states_[request].generated; }
  FinishReason finish_reason(size_t request) const { return states_[request].finish; }

 private:
  struct State {
    GenerationRequest req;
    std::vector<int32_t> tokens;        // prompt + generated
    std::vector<int32_t> generated;
    int64_t num_cached = 0;             // tokens whose K/V are in the cache
    uint64_t seq_id = 0;
    Rng rng;
    FinishReason finish = FinishReason::kNone;
  };
  void finish(State& s, FinishReason why);

  model::LlamaModel& model_;
  kv::KvCache& kv_;
  GeneratorOptions options_;
  std::vector<State> states_;
  uint64_t next_seq_id_ = 1;
};

}  // namespace punica::engine
