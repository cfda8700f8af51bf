// The model with many adapters in one batch, against PEFT (tools/gen_lora_fixtures.py): every token's
// float64 log-probability within 2e-3, greedy continuations token for token, a request in the mixed batch
// equal to the same request alone, and the planner's segments.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "backends/cpu/cpu_backend.h"
#include "formats/peft_adapter.h"
#include "formats/weight_source.h"
#include "lora_test_util.h"
#include "model/lora_batch.h"
#include "model/llama_model.h"

namespace punica {
namespace {

using lora_test::fixture_dir;
using lora_test::read_json;

TEST(LoraBatch, SegmentsAreRunsOfOneSlot) {
  // requests: slots 1, 1, -1, 0, 2 with 2, 3, 1, 0(not in logits), 4 rows
  auto b = model::lora_batch_build({1, 1, -1, 0, 2}, {0, 2, 5, 6, 8, 12}, {0, 1, 2, 3, 3, 7}, 3);
  ASSERT_TRUE(b.has_value()) << b.status().to_string();
  EXPECT_TRUE(b->active);
  EXPECT_EQ(b->rows.seg_start, (std::vector<int32_t>{0, 5, 6, 8, 12}));
  EXPECT_EQ(b->rows.seg_slot, (std::vector<int32_t>{1, -1, 0, 2}));
  EXPECT_EQ(b->rows.token_slot, (std::vector<int32_t>{1, 1, 1, 1, 1, -1, 0, 0, 2, 2, 2, 2}));
  EXPECT_EQ(b->rows.max_seg_len, 5);
  EXPECT_EQ(b->rows.num_adapted_segments, 3);
  EXPECT_EQ(b->rows.max_adapted_seg_len, 5);
  // the longest segment without an adapter does not count as an adapted one
  auto nb = model::lora_batch_build({-1, 0, 1}, {0, 6, 7, 9}, {0, 1, 2, 3}, 2);
  ASSERT_TRUE(nb.has_value()) << nb.status().to_string();
  EXPECT_EQ(nb->rows.max_seg_len, 6);
  EXPECT_EQ(nb->rows.max_adapted_seg_len, 2);
  EXPECT_EQ(nb->rows.view().max_adapted_seg_len, 2);
  EXPECT_EQ(b->logit_rows.seg_start, (std::vector<int32_t>{0, 2, 3, 7}));   // slot 0 has no logit rows
  EXPECT_EQ(b->logit_rows.seg_slot, (std::vector<int32_t>{1, -1, 2}));
  EXPECT_FALSE(model::lora_batch_build({3}, {0, 1}, {0, 1}, 3).has_value());
  EXPECT_EQ(model::lora_order_by_slot({2, -1, 0, 2, -1}), (std::vector<size_t>{1, 4, 2, 0, 3}));
}

struct Loaded {
  std::unique_ptr<cpu::CpuBackend> backend;
  std::unique_ptr<model::LlamaModel> model;
  std::unique_ptr<model::LoraAdapterSet> adapters;
};

Loaded load_fixture(const std::string& name) {
  Loaded l;
  l.backend = std::make_unique<cpu::CpuBackend>(2);
  auto files = open_model(fixture_dir(name) + "/base");
  EXPECT_TRUE(files.has_value()) << files.status().to_string();
  if (!files.has_value()) return l;
  const ModelConfig config = files->config;
  auto m = model::LlamaModel::load(std::move(*files), *l.backend);
  EXPECT_TRUE(m.has_value()) << m.status().to_string();
  if (!m.has_value()) return l;
  l.model = std::move(*m);
  l.adapters = std::make_unique<model::LoraAdapterSet>(config);
  const nlohmann::json expected = read_json(fixture_dir(name) + "/expected.json");
  for (const auto& [ad, modules] : expected["peft_modules"].items()) {
    auto a = load_peft_adapter(fixture_dir(name) + "/adapters/" + ad, config);
    EXPECT_TRUE(a.has_value()) << a.status().to_string();
    if (a.has_value()) {
      EXPECT_TRUE(l.adapters->add(ad, std::move(*a)).has_value());
    }
  }
  l.model->set_lora_adapters(l.adapters.get());
  return l;
}

struct Req {
  int slot;
  std::vector<int32_t> tokens;
};

// Log-probabilities of every row of every request, all requests in one step.
std::vector<std::vector<float>> score_batch(Loaded& l, const std::vector<Req>& reqs) {
  auto kv = l.model->make_kv_cache(1024);
  EXPECT_TRUE(kv.has_value());
  std::vector<model::BatchRequest> br;
  std::vector<int32_t> slots;
  for (size_t i = 0; i < reqs.size(); ++i) {
    model::BatchRequest q;
    q.seq_id = i;
    q.tokens = reqs[i].tokens;
    q.all_logits = true;
    br.push_back(q);
    slots.push_back(reqs[i].slot);
  }
  auto plan = model::batch_plan_build(l.model->config(), br, *kv);
  EXPECT_TRUE(plan.has_value()) << plan.status().to_string();
  auto lora = model::lora_batch_build(slots, plan->row_start, plan->logit_row_start, l.adapters->num_slots());
  EXPECT_TRUE(lora.has_value());
  auto lp = l.model->forward(*plan, *kv, /*log_probs=*/true, &*lora);
  EXPECT_TRUE(lp.has_value()) << lp.status().to_string();
  std::vector<std::vector<float>> out;
  const int64_t V = l.model->vocab_size();
  for (size_t r = 0; r < reqs.size(); ++r) {
    std::vector<float> row;
    const int32_t first = plan->logit_row_start[r];
    for (size_t p = 0; p + 1 < reqs[r].tokens.size(); ++p)
      row.push_back((*lp)[static_cast<size_t>((first + static_cast<int64_t>(p)) * V + reqs[r].tokens[p + 1])]);
    out.push_back(row);
  }
  return out;
}

// Greedy decoding of all requests together: one prefill step, then one decode step per new token.
std::vector<std::vector<int32_t>> greedy_batch(Loaded& l, const std::vector<Req>& reqs, int new_tokens) {
  auto kv = l.model->make_kv_cache(1024);
  std::vector<std::vector<int32_t>> seqs, out(reqs.size());
  std::vector<int32_t> slots;
  for (const Req& r : reqs) {
    seqs.push_back(r.tokens);
    slots.push_back(r.slot);
  }
  for (int step = 0; step < new_tokens; ++step) {
    std::vector<model::BatchRequest> br;
    for (size_t i = 0; i < reqs.size(); ++i) {
      model::BatchRequest q;
      q.seq_id = i;
      q.start_pos = step == 0 ? 0 : static_cast<int64_t>(seqs[i].size()) - 1;
      q.tokens = step == 0 ? seqs[i] : std::vector<int32_t>{seqs[i].back()};
      br.push_back(q);
    }
    auto plan = model::batch_plan_build(l.model->config(), br, *kv);
    auto lora = model::lora_batch_build(slots, plan->row_start, plan->logit_row_start, l.adapters->num_slots());
    auto logits = l.model->forward(*plan, *kv, false, &*lora);
    EXPECT_TRUE(logits.has_value()) << logits.status().to_string();
    const int64_t V = l.model->vocab_size();
    for (size_t i = 0; i < reqs.size(); ++i) {
      const float* row = logits->data() + i * V;
      const int32_t best = static_cast<int32_t>(std::max_element(row, row + V) - row);
      seqs[i].push_back(best);
      out[i].push_back(best);
    }
  }
  return out;
}

std::vector<Req> fixture_requests(Loaded& l, const nlohmann::json& expected) {
  std::vector<Req> reqs;
  for (const auto& r : expected["requests"]) {
    Req q;
    q.slot = r["adapter"].is_null() ? -1 : *l.adapters->slot_of(r["adapter"].get<std::string>());
    q.tokens = r["tokens"].get<std::vector<int32_t>>();
    reqs.push_back(q);
  }
  return reqs;
}

class LoraModel : public ::testing::TestWithParam<std::string> {};

TEST_P(LoraModel, MixedBatchMatchesPeftFloat64) {
  Loaded l = load_fixture(GetParam());
  ASSERT_TRUE(l.model && l.adapters);
  const nlohmann::json expected = read_json(fixture_dir(GetParam()) + "/expected.json");
  const std::vector<Req> reqs = fixture_requests(l, expected);
  const auto got = score_batch(l, reqs);
  double worst = 0;
  for (size_t r = 0; r < reqs.size(); ++r) {
    const auto want = expected["requests"][r]["logprobs"].get<std::vector<double>>();
    ASSERT_EQ(got[r].size(), want.size());
    for (size_t p = 0; p < want.size(); ++p) {
      EXPECT_NEAR(got[r][p], want[p], 2e-3) << "request " << r << " token " << p + 1;
      worst = std::max(worst, std::fabs(got[r][p] - want[p]));
    }
  }
  std::printf("worst |logprob - PEFT float64| = %.3g\n", worst);
  // The adapters matter: the same tokens through the base model differ visibly.
  std::vector<Req> base_only = reqs;
  for (Req& r : base_only) r.slot = -1;
  const auto base = score_batch(l, base_only);
  for (size_t r = 0; r < reqs.size(); ++r) {
    if (reqs[r].slot < 0 || reqs[r].tokens.size() < 2) continue;
    double diff = 0;
    for (size_t p = 0; p < base[r].size(); ++p) diff = std::max(diff, static_cast<double>(std::fabs(base[r][p] - got[r][p])));
    EXPECT_GT(diff, 0.05) << "request " << r << ": adapter has no visible effect";
  }
}

TEST_P(LoraModel, GreedyMatchesPeft) {
  Loaded l = load_fixture(GetParam());
  ASSERT_TRUE(l.model && l.adapters);
  const nlohmann::json expected = read_json(fixture_dir(GetParam()) + "/expected.json");
  const std::vector<Req> reqs = fixture_requests(l, expected);
  const auto got = greedy_batch(l, reqs, expected["greedy_new_tokens"].get<int>());
  for (size_t r = 0; r < reqs.size(); ++r)
    EXPECT_EQ(got[r], expected["requests"][r]["greedy"].get<std::vector<int32_t>>()) << "request " << r;
}

TEST_P(LoraModel, RequestInMixedBatchEqualsAlone) {
  Loaded l = load_fixture(GetParam());
  ASSERT_TRUE(l.model && l.adapters);
  const nlohmann::json expected = read_json(fixture_dir(GetParam()) + "/expected.json");
  std::vector<Req> reqs = fixture_requests(l, expected);
  // Sorted by slot (the planner's order) and in file order: both equal each request alone.
  const auto mixed = score_batch(l, reqs);
  std::vector<Req> sorted;
  const auto order = model::lora_order_by_slot([&] {
    std::vector<int32_t> s;
    for (const Req& r : reqs) s.push_back(r.slot);
    return s;
  }());
  for (size_t i : order) sorted.push_back(reqs[i]);
  const auto mixed_sorted = score_batch(l, sorted);
  for (size_t r = 0; r < reqs.size(); ++r) {
    const auto alone = score_batch(l, {reqs[r]});
    ASSERT_EQ(alone[0].size(), mixed[r].size());
    // f32 rounding only (dense GEMMs sum in a row-count-dependent order): relative 1e-5 (PEFT tolerance is 2e-3).
    for (size_t p = 0; p < alone[0].size(); ++p)
      EXPECT_NEAR(mixed[r][p], alone[0][p], 1e-5 * std::max(1.0f, std::fabs(alone[0][p]))) << "request " << r;
  }
  for (size_t k = 0; k < order.size(); ++k)
    for (size_t p = 0; p < mixed[order[k]].size(); ++p)
      EXPECT_NEAR(mixed_sorted[k][p], mixed[order[k]][p], 1e-5 * std::max(1.0f, std::fabs(mixed[order[k]][p])));
}

INSTANTIATE_TEST_SUITE_P(Models, LoraModel, ::testing::Values("llama_gqa", "qwen2_tied"));

}  // namespace
}  // namespace punica
