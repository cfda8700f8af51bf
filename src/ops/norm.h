// RMSNorm (Llama): y = x / sqrt(mean(x^2) + eps) * weight, per row, computed in fp32.
#pragma once

#include <cstdint>

#include "punica/status.h"

namespace punica::ops {

struct RmsNormParams {
  const float* x = nullptr;       // [T, dim]
  const float* weight = nullptr;  // [dim]
  float* y = nullptr;             // [T, dim]; may equal x
  int64_t num_tokens = 0;
  int64_t dim = 0;
  float eps = 1e-6f;
};

Status rms_norm_check(const RmsNormParams& p);

}  // namespace punica::ops
