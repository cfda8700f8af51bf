// Rows of GGUF block formats (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, F16) on the CPU: dequantisation to f32 with
// ggml's arithmetic (the reference values), and dot products of a stored row with f32 vectors that use
// exactly those values with fp32 accumulation (AVX2 where the build has it, plain loops otherwise).
#pragma once

#include <cstdint>

#include "ops/linear.h"

namespace punica::cpu {

// out[0..cols) = the dequantised values of one stored row (cols a multiple of the block size).
void quant_row_dequantize(ops::LinearWeightFormat f, const uint8_t* row, int64_t cols, float* out);

// y[t] = sum_k value(row)[k] * x[t * x_stride + k] for t < num_x: the row is decoded once per block and
// used for every x (decode batches share each weight read).
void quant_row_dot(ops::LinearWeightFormat f, const uint8_t* row, int64_t cols, const float* x, int64_t x_stride,
                   int64_t num_x, float* y, int64_t y_stride);

}  // namespace punica::cpu
