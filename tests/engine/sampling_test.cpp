#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <vector>

#include "engine/sampling.h"

namespace punica::engine {
namespace {

TEST(Sampling, GreedyTakesFirstMaximum) {
  const std::vector<float> l = {0.f, 3.f, -1.f, 3.f};
  Rng rng(1);
  EXPECT_EQ(sample_greedy(l.data(), 4), 1);
  SamplingParams p;   // temperature 0
  EXPECT_EQ(sample_token(l.data(), 4, p, rng), 1);
  p.temperature = 1.f;
  p.top_k = 1;
  EXPECT_EQ(sample_token(l.data(), 4, p, rng), 1);
}

TEST(Sampling, SeedGivesTheSameStream) {
  std::vector<float> l(100);
  for (int i = 0; i < 100; ++i) l[i] = std::sin(i * 0.37f) * 2;
  SamplingParams p;
  p.temperature = 1.f;
  Rng a(42), b(42), c(43);
  std::vector<int32_t> xa, xb, xc;
  for (int i = 0; i < 50; ++i) {
    xa.push_back(sample_token(l.data(), 100, p, a));
    xb.push_back(sample_token(l.data(), 100, p, b));
    xc.push_back(sample_token(l.data(), 100, p, c));
  }
  EXPECT_EQ(xa, xb);
  EXPECT_NE(xa, xc);
}

// Empirical frequencies match the filtered, renormalised softmax.
TEST(Sampling, TopKTopPMinPFilterAndFrequenciesMatch) {
  const std::vector<float> l = {std::log(0.5f), std::log(0.25f), std::log(0.15f), std::log(0.07f), std::log(0.03f)};
  auto freq = [&](SamplingParams p) {
    Rng rng(7);
    std::map<int32_t, double> f;
    const int n = 40000;
    for (int i = 0; i < n; ++i) f[sample_token(l.data(), 5, p, rng)] += 1.0 / n;
    return f;
  };
  SamplingParams p;
  p.temperature = 1.f;
  auto all = freq(p);
  EXPECT_NEAR(all[0], 0.5, 0.01);
  EXPECT_NEAR(all[4], 0.03, 0.005);
  p.top_k = 2;
  auto k2 = freq(p);
  EXPECT_EQ(k2.size(), 2u);
  EXPECT_NEAR(k2[0], 0.5 / 0.75, 0.01);
  p.top_k = 0;
  p.top_p = 0.8f;   // 0.5 + 0.25 = 0.75 < 0.8: the third token is needed
  auto p8 = freq(p);
  EXPECT_EQ(p8.size(), 3u);
  EXPECT_NEAR(p8[2], 0.15 / 0.9, 0.01);
  p.top_p = 1.f;
  p.min_p = 0.2f;   // keeps p >= 0.1
  auto mp = freq(p);
  EXPECT_EQ(mp.size(), 3u);
  p.min_p = 0.f;
  p.temperature = 0.5f;   // sharpens: p ~ q^2
  auto t = freq(p);
  const double z = 0.25 + 0.0625 + 0.0225 + 0.0049 + 0.0009;
  EXPECT_NEAR(t[0], 0.25 / z, 0.01);
}

TEST(Sampling, ParamsCheckNamesTheField) {
  SamplingParams p;
  p.top_p = 0.f;
  EXPECT_NE(sampling_params_check(p).message().find("top_p"), std::string::npos);
  p = {};
  p.temperature = -1.f;
  EXPECT_NE(sampling_params_check(p).message().find("temperature"), std::string::npos);
  p = {};
  p.min_p = 2.f;
  EXPECT_NE(sampling_params_check(p).message().find("min_p"), std::string::npos);
  p = {};
  p.top_k = -1;
  EXPECT_NE(sampling_params_check(p).message().find("top_k"), std::string::npos);
}

}  // namespace
}  // namespace punica::engine
