#include <gtest/gtest.h>

#include "model/rope_tables.h"

namespace punica::model {
namespace {

ModelConfig llama3_scaled() {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 500000.0;
  c.max_position_embeddings = 131072;
  c.rope_scaling.type = RopeScalingType::kLlama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  return c;
}

// A GGUF of a Llama-3 model stores its rope scaling as per-frequency divisors (rope_freqs.weight), the way
// llama.cpp's converter computes them from the HF llama3 rule. Both descriptions must give one RoPE.
TEST(RopeTables, GgufFrequencyFactorsReproduceLlama3Scaling) {
  const ModelConfig scaled = llama3_scaled();
  ModelConfig plain = scaled;
  plain.rope_scaling = RopeScaling{};
  const std::vector<float> want = rope_inv_freq(scaled, 16);
  const std::vector<float> base = rope_inv_freq(plain, 16);
  ASSERT_EQ(want.size(), base.size());

  ModelConfig with_factors = plain;
  bool any_scaled = false;
  for (size_t i = 0; i < base.size(); ++i) {
    with_factors.rope_freq_factors.push_back(base[i] / want[i]);
    any_scaled |= with_factors.rope_freq_factors.back() > 1.5f;
  }
  ASSERT_TRUE(any_scaled) << "the llama3 rule should scale the low frequencies";
  const std::vector<float> got = rope_inv_freq(with_factors, 16);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6f * want[i]) << i;
}

TEST(RopeTables, FactorsOfTheWrongLengthAreIgnoredNotMisapplied) {
  ModelConfig c = llama3_scaled();
  c.rope_scaling = RopeScaling{};
  const std::vector<float> base = rope_inv_freq(c, 16);
  c.rope_freq_factors = {2.0f};  // formats rejects this; the model must not read past it
  EXPECT_EQ(rope_inv_freq(c, 16), base);
}

}  // namespace
}  // namespace punica::model
