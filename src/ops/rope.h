// Rotary position embedding in the Hugging Face "rotate_half" (NeoX) layout: within each head of size D,
// element i pairs with element i + D/2:
//   out[i]       = x[i] * cos[t, i] - x[i + D/2] * sin[t, i]
//   out[i + D/2] = x[i + D/2] * cos[t, i] + x[i] * sin[t, i]          i < D/2
// cos/sin are per token (built once per step by the batch planner from each token's position and its
// request's inv_freq, which carries the rope scaling), so the op knows nothing about scaling.
#pragma once

#include <cstdint>

#include "punica/status.h"

namespace punica::ops {

struct RopeParams {
  float* q = nullptr;             // [T, q_stride]: num_q_heads heads of head_dim, rotated in place
  int64_t q_stride = 0;
  float* k = nullptr;             // [T, k_stride]: num_kv_heads heads of head_dim
  int64_t k_stride = 0;
  const float* cos = nullptr;     // [T, head_dim / 2]
  const float* sin = nullptr;     // [T, head_dim / 2]
  int64_t num_tokens = 0;
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;           // even
};

Status rope_check(const RopeParams& p);

}  // namespace punica::ops
