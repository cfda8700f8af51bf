// Linear projection y[t, :] = x[t, :] @ W^T (+ bias), W in the nn.Linear layout [out, in].
// W is stored either as f32 rows or as rows of a GGUF block format (LinearWeightFormat): a backend computes
// on the stored blocks directly, so the values used are exactly the dequantised ones (accumulation fp32).
#pragma once

#include <cstdint>

#include "punica/status.h"

namespace punica::ops {

enum class LinearWeightFormat : uint8_t { kF32, kF16, kQ4_0, kQ4_1, kQ8_0, kQ4_K, kQ6_K };

// Elements per block and bytes per block of each format (kF32/kF16: one element per "block").
int64_t linear_weight_block_elems(LinearWeightFormat f);
int64_t linear_weight_block_bytes(LinearWeightFormat f);
const char* linear_weight_format_name(LinearWeightFormat f);
// Parses "F32", "F16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K"; false for anything else.
bool linear_weight_format_from_name(const char* name, LinearWeightFormat* out);

struct LinearWeight {
  LinearWeightFormat format = LinearWeightFormat::kF32;
  const void* data = nullptr;   // [rows, row_bytes]
  int64_t rows = 0;             // out features
  int64_t cols = 0;             // in features
  int64_t row_bytes = 0;        // cols * 4 for f32; cols / block_elems * block_bytes otherwise
};

struct LinearParams {
  const float* x = nullptr;     // [T, x_stride], reads the first w.cols columns
  int64_t x_stride = 0;
  LinearWeight w;
  const float* bias = nullptr;  // [w.rows] or null
  float* y = nullptr;           // [T, y_stride], writes the first w.rows columns
  int64_t y_stride = 0;
  int64_t num_tokens = 0;       // T
};

Status linear_check(const LinearParams& p);

}  // namespace punica::ops
