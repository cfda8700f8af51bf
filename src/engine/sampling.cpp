#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace punica::engine {

Status sampling_params_check(const SamplingParams& p) {
  if (!(p.temperature >= 0.f) || !std::isfinite(p.temperature))
    return invalid_argument("temperature must be a finite number >= 0");
  if (p.top_k < 0) return invalid_argument("top_k must be >= 0");
  if (!(p.top_p > 0.f && p.top_p <= 1.f)) return invalid_argument("top_p must be in (0, 1]");
  if (!(p.min_p >= 0.f && p.min_p <= 1.f)) return invalid_argument("min_p must be in [0, 1]");
  return Status::ok();
}

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  for (auto& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

int32_t sample_greedy(const float* logits, int64_t vocab) {
  int64_t best = 0;
  for (int64_t i = 1; i < vocab; ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

int32_t sample_token(const float* logits, int64_t vocab, const SamplingParams& p, Rng& rng) {
  if (p.temperature <= 0.f || p.top_k == 1) return sample_greedy(logits, vocab);
  // Candidates by descending logit (ties: lower id first), cut to top_k.
  std::vector<int32_t> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  auto before = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  int64_t n = vocab;
  if (p.top_k > 0 && p.top_k < vocab) {
    n = p.top_k;
    std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), before);
  } else {
    std::sort(idx.begin(), idx.end(), before);
  }
  // Softmax of logits / temperature over the candidates, in double.
  std::vector<double> prob(static_cast<size_t>(n));
  const double mx = logits[idx[0]] / static_cast<double>(p.temperature);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    prob[i] = std::exp(logits[idx[i]] / static_cast<double>(p.temperature) - mx);
    sum += prob[i];
  }
  for (double& q : prob) q /= sum;
  // top-p: the smallest prefix whose mass reaches top_p (the first token is always kept).
  if (p.top_p < 1.f) {
    double cum = 0.0;
    int64_t keep = n;
    for (int64_t i = 0; i < n; ++i) {
      cum += prob[i];
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  // min-p: drop tokens below min_p times the most likely one.
  if (p.min_p > 0.f) {
    const double floor = p.min_p * prob[0];
    int64_t keep = 1;
    while (keep < n && prob[keep] >= floor) ++keep;
    n = keep;
  }
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += prob[i];
  const double u = rng.uniform() * total;
  double cum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    cum += prob[i];
    if (u < cum) return idx[i];
  }
  return idx[n - 1];
}

}  // namespace punica::engine
