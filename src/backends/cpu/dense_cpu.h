// CPU kernels of the dense Llama-block ops (src/ops/{embedding,norm,rope,linear,attention,elementwise}.h):
// plain fp32 loops (the reference for other backends), OpenBLAS sgemm for f32 linear layers, and row-wise
// dot products on the stored blocks for quantised weights. Params are assumed checked by the caller.
#pragma once

#include "backends/cpu/thread_pool.h"
#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace punica::cpu {

void embedding(const ops::EmbeddingParams& p);
void rms_norm(const ops::RmsNormParams& p);
void rope(const ops::RopeParams& p);
// f32 weights -> cblas_sgemm. Quantised weights: few tokens -> dot products on the stored rows (each weight
// row read once for all tokens); many tokens -> dequantise row tiles and sgemm.
void linear(const ops::LinearParams& p, ThreadPool& pool);
// Reports out-of-range slots (from a caller bug or a corrupt plan) as false instead of writing.
bool kv_append(const ops::KvAppendParams& p);
bool attention_paged(const ops::AttentionParams& p, ThreadPool& pool);
void silu_mul(const ops::SiluMulParams& p);
void add(const ops::AddParams& p);
bool gather_rows(const ops::GatherRowsParams& p);
void log_softmax(const ops::LogSoftmaxParams& p);

// Tokens at or above this count take the dequantise + sgemm path for quantised weights.
constexpr int64_t kQuantGemmMinTokens = 16;

}  // namespace punica::cpu
