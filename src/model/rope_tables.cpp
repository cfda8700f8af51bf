#include "model/rope_tables.h"

#include <algorithm>
#include <cmath>

namespace punica::model {

std::vector<float> rope_inv_freq(const ModelConfig& c, int64_t seq_len) {
  const int64_t dim = c.head_dim;
  const RopeScaling& s = c.rope_scaling;
  double base = c.rope_theta;
  if (s.type == RopeScalingType::kDynamic) {
    const double max_pos = static_cast<double>(c.max_position_embeddings);
    const double len = std::max(static_cast<double>(seq_len), max_pos);
    base = base * std::pow(s.factor * len / max_pos - (s.factor - 1.0),
                           static_cast<double>(dim) / static_cast<double>(dim - 2));
  }
  std::vector<float> inv(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i) {
    // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), in float32.
    const float expo = static_cast<float>(2 * i) / static_cast<float>(dim);
    inv[static_cast<size_t>(i)] = static_cast<float>(1.0 / std::pow(base, static_cast<double>(expo)));
  }
  if (s.type == RopeScalingType::kLinear) {
    for (float& f : inv) f = static_cast<float>(f / s.factor);
  } else if (s.type == RopeScalingType::kLlama3) {
    const double old_len = static_cast<double>(s.original_max_position_embeddings);
    const double low_wavelen = old_len / s.low_freq_factor;
    const double high_wavelen = old_len / s.high_freq_factor;
    for (float& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > low_wavelen) {
        f = static_cast<float>(f / s.factor);
      } else if (wavelen >= high_wavelen) {   // medium: interpolate (inv_freq_llama is still f here)
        const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = static_cast<float>((1.0 - smooth) * f / s.factor + smooth * f);
      }
    }
  }
  // GGUF files of Llama-3-style models carry the llama3 scaling as per-frequency divisors (rope_freqs.weight,
  // see formats/gguf_model.cpp) instead of rope_scaling keys; llama.cpp divides each frequency by its factor.
  if (c.rope_freq_factors.size() == inv.size()) {
    for (size_t i = 0; i < inv.size(); ++i) inv[i] = static_cast<float>(inv[i] / c.rope_freq_factors[i]);
  }
  return inv;
}

void rope_append_cos_sin(const std::vector<float>& inv_freq, int64_t position, std::vector<float>* cos,
                         std::vector<float>* sin) {
  const float pos = static_cast<float>(position);
  for (float f : inv_freq) {
    const float angle = pos * f;
    cos->push_back(std::cos(angle));
    sin->push_back(std::sin(angle));
  }
}

}  // namespace punica::model
