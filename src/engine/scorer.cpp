#include "engine/scorer.h"

#include <algorithm>
#include <numeric>

#include "model/lora_batch.h"

namespace punica::engine {
namespace {

void top_k_of_row(const float* lp, int64_t vocab, int64_t k, std::vector<std::pair<int32_t, float>>* out) {
  k = std::min(k, vocab);
  std::vector<int32_t> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int32_t a, int32_t b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
  for (int64_t i = 0; i < k; ++i) out->emplace_back(idx[i], lp[idx[i]]);
}

}  // namespace

Expected<std::vector<ScoreResult>> score_sequences(model::LlamaModel& model, const std::vector<ScoreRequest>& requests,
                                                   const ScoreOptions& opt) {
  const int64_t vocab = model.vocab_size();
  int64_t longest = 0, total = 0;
  for (size_t r = 0; r < requests.size(); ++r) {
    const ScoreRequest& q = requests[r];
    const std::string who = "request " + std::to_string(r) + " (id '" + q.id + "')";
    if (q.tokens.empty()) return invalid_argument(who + ": tokens is empty");
    for (size_t i = 0; i < q.tokens.size(); ++i) {
      if (q.tokens[i] < 0 || q.tokens[i] >= vocab)
        return invalid_argument(who + ": tokens[" + std::to_string(i) + "] = " + std::to_string(q.tokens[i]) +
                                " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
    longest = std::max<int64_t>(longest, static_cast<int64_t>(q.tokens.size()));
    total += static_cast<int64_t>(q.tokens.size());
  }
  std::vector<ScoreResult> results(requests.size());
  if (requests.empty()) return results;
  const int64_t page = 16;
  PUNICA_ASSIGN_OR_RETURN(kv::KvCache kv,
                          model.make_kv_cache(std::max(longest, std::min(total, opt.max_kv_tokens)) + page, page));
  std::vector<int64_t> done(requests.size(), 0);
  size_t first_open = 0;
  while (first_open < requests.size()) {
    // Schedule in input order within the token budget and the free pages.
    std::vector<model::BatchRequest> batch;
    std::vector<size_t> owners;
    int64_t budget = opt.max_batch_tokens;
    int64_t free_pages = kv.num_free_pages();
    for (size_t r = first_open; r < requests.size() && budget > 0; ++r) {
      const auto& toks = requests[r].tokens;
      const int64_t n_all = static_cast<int64_t>(toks.size());
      if (done[r] == n_all) continue;
      const int64_t n = std::min(n_all - done[r], budget);
      const int64_t need = kv::KvCache::pages_for_tokens(done[r] + n, page) -
                           static_cast<int64_t>(kv.page_table(r).size());
      if (need > free_pages) break;   // keep input order: later requests wait
      free_pages -= need;
      budget -= n;
      model::BatchRequest br;
      br.seq_id = r;
      br.start_pos = done[r];
      br.tokens.assign(toks.begin() + done[r], toks.begin() + done[r] + n);
      br.all_logits = true;
      br.rope_len = static_cast<int64_t>(toks.size());   // as if the whole sequence ran in one step
      batch.push_back(std::move(br));
      owners.push_back(r);
    }
    if (batch.empty()) return internal_error("score: no request fits in the KV cache");
    // LoRA: rows sorted by adapter slot once per step; the segments are reused by every layer.
    std::vector<int32_t> slot_of_request;
    for (const ScoreRequest& q : requests) slot_of_request.push_back(q.adapter_slot);
    const std::vector<int32_t> slots = model::lora_sort_step_by_slot(&batch, &owners, slot_of_request);
    PUNICA_ASSIGN_OR_RETURN(model::BatchPlan plan, model::batch_plan_build(model.config(), batch, kv));
    const int num_slots = model.lora_adapters() ? model.lora_adapters()->num_slots() : 0;
    PUNICA_ASSIGN_OR_RETURN(model::LoraBatch lora,
                            model::lora_batch_build(slots, plan.row_start, plan.logit_row_start, num_slots));
    PUNICA_ASSIGN_OR_RETURN(std::vector<float> lp, model.forward(plan, kv, /*log_probs=*/true, &lora));
    for (size_t b = 0; b < batch.size(); ++b) {
      const size_t r = owners[b];
      const auto& toks = requests[r].tokens;
      ScoreResult& res = results[r];
      res.id = requests[r].id;
      const int64_t n = static_cast<int64_t>(batch[b].tokens.size());
      for (int64_t i = 0; i < n; ++i) {
        const int64_t p = done[r] + i;   // position of this row
        const float* row = lp.data() + (static_cast<int64_t>(plan.logit_row_start[b]) + i) * vocab;
        if (p + 1 < static_cast<int64_t>(toks.size())) res.token_logprobs.push_back(row[toks[p + 1]]);
        if (opt.top_k > 0) {
          res.top_logprobs.emplace_back();
          top_k_of_row(row, vocab, opt.top_k, &res.top_logprobs.back());
        }
      }
      done[r] += n;
      if (done[r] == static_cast<int64_t>(toks.size())) kv.release(r);
    }
    while (first_open < requests.size() && done[first_open] == static_cast<int64_t>(requests[first_open].tokens.size()))
      ++first_open;
  }
  return results;
}

}  // namespace punica::engine
