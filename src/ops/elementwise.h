// Element-wise ops of the Llama block: SwiGLU (out = silu(gate) * up), residual add, row gather
// (the rows whose logits are wanted) and log-softmax over the vocabulary.
#pragma once

#include <cstdint>

#include "punica/status.h"

namespace punica::ops {

struct SiluMulParams {
  const float* gate = nullptr;    // [T, n]
  const float* up = nullptr;      // [T, n]
  float* out = nullptr;           // [T, n]; may equal gate
  int64_t num_tokens = 0;
  int64_t n = 0;
};

struct AddParams {
  float* y = nullptr;             // [n] y += x
  const float* x = nullptr;
  int64_t n = 0;
};

struct GatherRowsParams {
  const float* x = nullptr;       // [T, dim]
  const int32_t* rows = nullptr;  // [R], each in [0, T)
  int64_t num_rows = 0;
  int64_t num_tokens = 0;
  int64_t dim = 0;
  float* out = nullptr;           // [R, dim]
};

struct LogSoftmaxParams {
  const float* x = nullptr;       // [R, n]
  float* out = nullptr;           // [R, n]; may equal x
  int64_t num_rows = 0;
  int64_t n = 0;
};

Status silu_mul_check(const SiluMulParams& p);
Status add_check(const AddParams& p);
Status gather_rows_check(const GatherRowsParams& p);
Status log_softmax_check(const LogSoftmaxParams& p);

}  // namespace punica::ops
