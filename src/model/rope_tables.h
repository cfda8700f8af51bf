// RoPE frequencies as Hugging Face transformers computes them (modeling_rope_utils.py), per scaling type:
//   none:    inv_freq[i] = 1 / theta^(2i/D)
//   linear:  inv_freq / factor
//   dynamic: (NTK) theta' = theta * ((factor * L / max_pos) - (factor - 1))^(D / (D - 2)) with
//            L = max(seq_len, max_pos); seq_len = the request's highest position + 1 in this step. So the
//            frequencies depend on how long the request is so far (keys already cached keep the rotation
//            they got when they were written, as in transformers' generate()).
//   llama3:  per-frequency interpolation between inv_freq and inv_freq / factor by wavelength.
// cos/sin are then cos(pos * inv_freq) in fp32, as transformers does (autocast off, float32).
#pragma once

#include <cstdint>
#include <vector>

#include "formats/model_config.h"

namespace punica::model {

// head_dim / 2 inverse frequencies for a request whose highest position in this step is seq_len - 1.
std::vector<float> rope_inv_freq(const ModelConfig& config, int64_t seq_len);

// Appends head_dim / 2 cos and sin values for `position` to cos/sin.
void rope_append_cos_sin(const std::vector<float>& inv_freq, int64_t position, std::vector<float>* cos,
                         std::vector<float>* sin);

}  // namespace punica::model
