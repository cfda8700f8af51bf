#include "engine/generator.h"

#include <algorithm>
#include <random>

#include "model/lora_batch.h"

namespace punica::engine {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
  }
  return "";
}

Generator::Generator(model::LlamaModel& model, kv::KvCache& kv, GeneratorOptions options)
    : model_(model), kv_(kv), options_(options) {}

Expected<size_t> Generator::add(GenerationRequest request) {
  const std::string who = "request '" + request.id + "'";
  if (request.prompt.empty()) return invalid_argument(who + ": prompt has no tokens");
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= model_.vocab_size())
      return invalid_argument(who + ": token " + std::to_string(request.prompt[i]) + " at index " +
                              std::to_string(i) + " is outside the vocabulary [0, " +
                              std::to_string(model_.vocab_size()) + ")");
  }
  if (request.max_tokens < 0) return invalid_argument(who + ": max_tokens must be >= 0");
  Status st = sampling_params_check(request.sampling);
  if (!st) return invalid_argument(who + ": " + st.message());
  State s;
  s.seq_id = next_seq_id_++;
  s.rng = Rng(request.sampling.seed ? *request.sampling.seed : std::random_device{}());
  s.tokens = request.prompt;
  s.req = std::move(request);
  if (s.req.max_tokens == 0) s.finish = FinishReason::kLength;
  states_.push_back(std::move(s));
  return states_.size() - 1;
}

bool Generator::has_unfinished() const {
  return std::any_of(states_.begin(), states_.end(), [](const State& s) { return s.finish == FinishReason::kNone; });
}

void Generator::finish(State& s, FinishReason why) {
  s.finish = why;
  kv_.release(s.seq_id);
}

Expected<std::vector<GenerationEvent>> Generator::step() {
  // Schedule: decode tokens first (they are cheap and keep latency low), then prefill chunks, in budget.
  std::vector<model::BatchRequest> batch;
  std::vector<size_t> owners;
  int64_t budget = options_.max_batch_tokens;
  int64_t free_pages = kv_.num_free_pages();
  const int64_t page = kv_.config().page_size;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < states_.size() && budget > 0; ++i) {
      State& s = states_[i];
      if (s.finish != FinishReason::kNone) continue;
      const int64_t remaining = static_cast<int64_t>(s.tokens.size()) - s.num_cached;
      const bool is_decode = remaining == 1 && s.num_cached > 0;
      if (is_decode != (pass == 0)) continue;
      const int64_t n = std::min(remaining, budget);
      const int64_t have = static_cast<int64_t>(kv_.page_table(s.seq_id).size());
      const int64_t need = kv::KvCache::pages_for_tokens(s.num_cached + n, page) - have;
      if (need > free_pages) continue;   // waits for pages freed by finishing requests
      free_pages -= need;
      budget -= n;
      model::BatchRequest br;
      br.seq_id = s.seq_id;
      br.start_pos = s.num_cached;
      br.tokens.assign(s.tokens.begin() + s.num_cached, s.tokens.begin() + s.num_cached + n);
      br.no_logits = s.num_cached + n < static_cast<int64_t>(s.tokens.size());
      br.rope_len = static_cast<int64_t>(s.req.prompt.size());   // chunked prefill == one-shot prefill
      batch.push_back(std::move(br));
      owners.push_back(i);
    }
  }
  std::vector<GenerationEvent> events;
  if (batch.empty()) {
    if (has_unfinished()) return resource_exhausted("generate: no request fits in the KV cache");
    return events;
  }
  // Execute.
  // LoRA: rows sorted by adapter slot once per step; the segments are reused by every layer.
  std::vector<int32_t> slot_of_state;
  for (const State& s : states_) slot_of_state.push_back(s.req.adapter_slot);
  const std::vector<int32_t> slots = model::lora_sort_step_by_slot(&batch, &owners, slot_of_state);
  PUNICA_ASSIGN_OR_RETURN(model::BatchPlan plan, model::batch_plan_build(model_.config(), batch, kv_));
  const int num_slots = model_.lora_adapters() ? model_.lora_adapters()->num_slots() : 0;
  PUNICA_ASSIGN_OR_RETURN(model::LoraBatch lora,
                          model::lora_batch_build(slots, plan.row_start, plan.logit_row_start, num_slots));
  PUNICA_ASSIGN_OR_RETURN(std::vector<float> logits, model_.forward(plan, kv_, /*log_probs=*/false, &lora));
  // Update.
  const int64_t vocab = model_.vocab_size();
  for (size_t r = 0; r < batch.size(); ++r) {
    State& s = states_[owners[r]];
    s.num_cached += static_cast<int64_t>(batch[r].tokens.size());
    if (batch[r].no_logits) continue;
    const float* row = logits.data() + static_cast<int64_t>(plan.logit_row_start[r]) * vocab;
    const int32_t tok = sample_token(row, vocab, s.req.sampling, s.rng);
    s.tokens.push_back(tok);
    s.generated.push_back(tok);
    GenerationEvent ev{owners[r], tok, FinishReason::kNone};
    if (std::find(s.req.stop_token_ids.begin(), s.req.stop_token_ids.end(), tok) != s.req.stop_token_ids.end())
      ev.finish = FinishReason::kStop;
    else if (static_cast<int64_t>(s.generated.size()) >= s.req.max_tokens)
      ev.finish = FinishReason::kLength;
    if (ev.finish != FinishReason::kNone) finish(s, ev.finish);
    events.push_back(ev);
  }
  return events;
}

Status Generator::run_to_completion() {
  while (has_unfinished()) {
    auto ev = step();
    if (!ev) return ev.status();
  }
  return Status::ok();
}

}  // namespace punica::engine
