// Token sampling from one row of logits: temperature, top-k, top-p, min-p, and a per-request seeded RNG,
// so a request with a seed gives the same tokens whatever else is in the batch.
// Order (as vLLM/transformers apply them): temperature -> top-k -> top-p -> min-p -> draw.
// temperature <= 0 (or top_k == 1) is greedy: the first index of the largest logit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "punica/status.h"

namespace punica::engine {

struct SamplingParams {
  float temperature = 0.f;        // 0 = greedy
  int64_t top_k = 0;              // 0 = off
  float top_p = 1.f;              // 1 = off
  float min_p = 0.f;              // 0 = off
  std::optional<uint64_t> seed;   // none = from std::random_device
};

Status sampling_params_check(const SamplingParams& p);   // InvalidArgument naming the field

// xoshiro256** seeded through splitmix64: fixed algorithm, so a seed gives the same stream everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next();
  double uniform();               // [0, 1), 53 random bits
 private:
  uint64_t s_[4];
};

int32_t sample_greedy(const float* logits, int64_t vocab);
int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& p, Rng& rng);

}  // namespace punica::engine
