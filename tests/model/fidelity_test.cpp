// Whole-model fidelity on the tiny fixtures of tools/gen_model_fixtures.py: every token log-probability
// within 2e-3 of transformers' float64 reference, the same top-k tokens, greedy generation token for token,
// and batch independence (a request scored or generated in a mixed batch gives what it gives alone).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/generator.h"
#include "engine/runtime.h"
#include "engine/scorer.h"

namespace punica {
namespace {

const std::string kFixtures = std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/model/";
constexpr double kLogprobTol = 2e-3;

struct Expected_ {
  std::vector<std::vector<int32_t>> tokens, greedy;
  std::vector<std::vector<double>> token_lp;
  std::vector<std::vector<std::vector<std::pair<int32_t, double>>>> top;
  int64_t top_k = 0;
};

Expected_ load_expected(const std::string& name) {
  std::ifstream in(kFixtures + name + "/expected.json");
  nlohmann::json j = nlohmann::json::parse(in);
  Expected_ e;
  e.top_k = j["top_k"].get<int64_t>();
  for (const auto& s : j["sequences"]) {
    e.tokens.push_back(s["tokens"].get<std::vector<int32_t>>());
    e.greedy.push_back(s["greedy"].get<std::vector<int32_t>>());
    e.token_lp.push_back(s["token_logprobs"].get<std::vector<double>>());
    e.top.emplace_back();
    for (const auto& row : s["top_logprobs"]) {
      e.top.back().emplace_back();
      for (const auto& pr : row) e.top.back().back().emplace_back(pr[0].get<int32_t>(), pr[1].get<double>());
    }
  }
  return e;
}

class ModelFidelity : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelFidelity, ScoreMatchesTransformersFloat64) {
  auto rt = engine::Runtime::open(kFixtures + GetParam());
  ASSERT_TRUE(rt.has_value()) << rt.status().to_string();
  const Expected_ e = load_expected(GetParam());
  std::vector<engine::ScoreRequest> reqs;
  for (size_t i = 0; i < e.tokens.size(); ++i) reqs.push_back({"s" + std::to_string(i), e.tokens[i]});
  engine::ScoreOptions opt;
  opt.top_k = e.top_k;
  auto res = engine::score_sequences((*rt)->model(), reqs, opt);
  ASSERT_TRUE(res.has_value()) << res.status().to_string();
  double worst = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& r = (*res)[i];
    ASSERT_EQ(r.token_logprobs.size(), e.token_lp[i].size());
    for (size_t p = 0; p < r.token_logprobs.size(); ++p) {
      worst = std::max(worst, std::fabs(r.token_logprobs[p] - e.token_lp[i][p]));
      ASSERT_NEAR(r.token_logprobs[p], e.token_lp[i][p], kLogprobTol) << "sequence " << i << " position " << p;
    }
    ASSERT_EQ(r.top_logprobs.size(), e.top[i].size());
    for (size_t p = 0; p < r.top_logprobs.size(); ++p) {
      ASSERT_EQ(r.top_logprobs[p].size(), e.top[i][p].size());
      for (size_t k = 0; k < r.top_logprobs[p].size(); ++k) {
        const auto [ref_tok, ref_lp] = e.top[i][p][k];
        EXPECT_NEAR(r.top_logprobs[p][k].second, ref_lp, kLogprobTol) << "seq " << i << " pos " << p << " k " << k;
        // Token ids must agree unless the reference itself has a near-tie at this rank.
        const bool near_tie = (k > 0 && std::fabs(e.top[i][p][k - 1].second - ref_lp) < 1e-4) ||
                              (k + 1 < e.top[i][p].size() && std::fabs(e.top[i][p][k + 1].second - ref_lp) < 1e-4);
        if (!near_tie) {
          EXPECT_EQ(r.top_logprobs[p][k].first, ref_tok) << "seq " << i << " pos " << p << " k " << k;
        }
      }
    }
  }
  std::printf("%s: worst |logprob - reference| = %.3g\n", GetParam().c_str(), worst);
}

TEST_P(ModelFidelity, GreedyGenerationMatchesTransformers) {
  auto rt = engine::Runtime::open(kFixtures + GetParam());
  ASSERT_TRUE(rt.has_value()) << rt.status().to_string();
  const Expected_ e = load_expected(GetParam());
  auto kv = (*rt)->model().make_kv_cache(512);
  ASSERT_TRUE(kv.has_value());
  engine::GeneratorOptions go;
  go.max_batch_tokens = 16;   // forces chunked prefill of the longer prompts, mixed with decode rows
  engine::Generator gen((*rt)->model(), *kv, go);
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    engine::GenerationRequest r;
    r.id = std::to_string(i);
    r.prompt = e.tokens[i];
    r.max_tokens = static_cast<int64_t>(e.greedy[i].size());
    ASSERT_TRUE(gen.add(r).has_value());
  }
  ASSERT_TRUE(gen.run_to_completion().is_ok());
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    EXPECT_EQ(gen.generated(i), e.greedy[i]) << "sequence " << i;
    EXPECT_EQ(gen.finish_reason(i), engine::FinishReason::kLength);
  }
  EXPECT_EQ(kv->num_free_pages(), kv->config().num_pages) << "finished requests must release their pages";
}

// Each sequence scored alone vs all of them in one batch (and, for generation, alone vs together).
TEST_P(ModelFidelity, MixedBatchEqualsAlone) {
  auto rt = engine::Runtime::open(kFixtures + GetParam());
  ASSERT_TRUE(rt.has_value()) << rt.status().to_string();
  const Expected_ e = load_expected(GetParam());
  std::vector<engine::ScoreRequest> all;
  for (size_t i = 0; i < e.tokens.size(); ++i) all.push_back({std::to_string(i), e.tokens[i]});
  engine::ScoreOptions opt;
  opt.max_batch_tokens = 4096;
  auto together = engine::score_sequences((*rt)->model(), all, opt);
  ASSERT_TRUE(together.has_value());
  double worst = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    auto alone = engine::score_sequences((*rt)->model(), {all[i]}, opt);
    ASSERT_TRUE(alone.has_value());
    const auto& a = (*alone)[0].token_logprobs;
    const auto& b = (*together)[i].token_logprobs;
    ASSERT_EQ(a.size(), b.size());
    for (size_t p = 0; p < a.size(); ++p) {
      worst = std::max(worst, double(std::fabs(a[p] - b[p])));
      ASSERT_NEAR(a[p], b[p], 1e-5) << "sequence " << i << " position " << p;
    }
  }
  std::printf("%s: worst |alone - batched| = %.3g\n", GetParam().c_str(), worst);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelFidelity,
                         ::testing::Values("llama_gqa", "qwen2_bias_tied", "mistral_mha", "llama3_rope",
                                           "llama_linear_long", "llama_dynamic_long"));

}  // namespace
}  // namespace punica
