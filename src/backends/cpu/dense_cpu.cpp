#include "backends/cpu/dense_cpu.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cpu/quant_rows_cpu.h"

namespace punica::cpu {

using ops::LinearWeightFormat;

void embedding(const ops::EmbeddingParams& p) {
  const int64_t dim = p.table.cols;
  const auto* base = static_cast<const uint8_t*>(p.table.data);
  for (int64_t t = 0; t < p.num_tokens; ++t)
    quant_row_dequantize(p.table.format, base + p.ids[t] * p.table.row_bytes, dim, p.out + t * dim);
}

void rms_norm(const ops::RmsNormParams& p) {
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float* x = p.x + t * p.dim;
    float* y = p.y + t * p.dim;
    double ss = 0.0;   // sum of squares in double: the row is short, and it keeps the norm exact to fp32
    for (int64_t i = 0; i < p.dim; ++i) ss += static_cast<double>(x[i]) * x[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(p.dim) + p.eps));
    for (int64_t i = 0; i < p.dim; ++i) y[i] = p.weight[i] * (x[i] * inv);
  }
}

void rope(const ops::RopeParams& p) {
  const int64_t half = p.head_dim / 2;
  auto rotate = [&](float* head, const float* c, const float* s) {
    for (int64_t i = 0; i < half; ++i) {
      const float a = head[i], b = head[i + half];
      head[i] = a * c[i] - b * s[i];
      head[i + half] = b * c[i] + a * s[i];
    }
  };
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const float* c = p.cos + t * half;
    const float* s = p.sin + t * half;
    for (int64_t h = 0; h < p.num_q_heads; ++h) rotate(p.q + t * p.q_stride + h * p.head_dim, c, s);
    for (int64_t h = 0; h < p.num_kv_heads; ++h) rotate(p.k + t * p.k_stride + h * p.head_dim, c, s);
  }
}

namespace {

void add_bias(const ops::LinearParams& p) {
  if (!p.bias) return;
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    float* y = p.y + t * p.y_stride;
    for (int64_t o = 0; o < p.w.rows; ++o) y[o] += p.bias[o];
  }
}

void linear_quant_rows(const ops::LinearParams& p, ThreadPool& pool) {
  const auto* base = static_cast<const uint8_t*>(p.w.data);
  pool.parallel_for(p.w.rows, [&](int64_t r0, int64_t r1) {
    for (int64_t o = r0; o < r1; ++o)
      quant_row_dot(p.w.format, base + o * p.w.row_bytes, p.w.cols, p.x, p.x_stride, p.num_tokens, p.y + o, p.y_stride);
  }, 16);
}

void linear_quant_gemm(const ops::LinearParams& p, ThreadPool& pool) {
  constexpr int64_t kTileRows = 256;
  const auto* base = static_cast<const uint8_t*>(p.w.data);
  std::vector<float> tile(static_cast<size_t>(std::min(kTileRows, p.w.rows) * p.w.cols));
  for (int64_t r0 = 0; r0 < p.w.rows; r0 += kTileRows) {
    const int64_t nr = std::min(kTileRows, p.w.rows - r0);
    pool.parallel_for(nr, [&](int64_t a, int64_t b) {
      for (int64_t r = a; r < b; ++r)
        quant_row_dequantize(p.w.format, base + (r0 + r) * p.w.row_bytes, p.w.cols, tile.data() + r * p.w.cols);
    }, 16);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(p.num_tokens), static_cast<int>(nr),
                static_cast<int>(p.w.cols), 1.f, p.x, static_cast<int>(p.x_stride), tile.data(),
                static_cast<int>(p.w.cols), 0.f, p.y + r0, static_cast<int>(p.y_stride));
  }
}

}  // namespace

void linear(const ops::LinearParams& p, ThreadPool& pool) {
  if (p.num_tokens == 0) return;
  if (p.w.format == LinearWeightFormat::kF32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(p.num_tokens), static_cast<int>(p.w.rows),
                static_cast<int>(p.w.cols), 1.f, p.x, static_cast<int>(p.x_stride),
                static_cast<const float*>(p.w.data), static_cast<int>(p.w.cols), 0.f, p.y,
                static_cast<int>(p.y_stride));
  } else if (p.num_tokens < kQuantGemmMinTokens) {
    linear_quant_rows(p, pool);
  } else {
    linear_quant_gemm(p, pool);
  }
  add_bias(p);
}

bool kv_append(const ops::KvAppendParams& p) {
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    const int64_t s = p.slots[t];
    if (s < 0 || s >= p.pool_slots) return false;
    std::memcpy(p.k_pool + s * p.kv_dim, p.k + t * p.k_stride, p.kv_dim * sizeof(float));
    std::memcpy(p.v_pool + s * p.kv_dim, p.v + t * p.v_stride, p.kv_dim * sizeof(float));
  }
  return true;
}

bool attention_paged(const ops::AttentionParams& p, ThreadPool& pool) {
  const int64_t kv_dim = p.num_kv_heads * p.head_dim;
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  const float scale = p.scale > 0.f ? p.scale : 1.f / std::sqrt(static_cast<float>(p.head_dim));
  // Validate the plan first (positions inside kv_len, pages inside the pool) so workers never fail.
  std::vector<int32_t> row_request(static_cast<size_t>(p.num_tokens), -1);
  for (int64_t r = 0; r < p.num_requests; ++r) {
    const int32_t b = p.row_start[r], e = p.row_start[r + 1];
    if (b < 0 || e < b || e > p.num_tokens) return false;
    const int64_t pages = p.page_table_start[r + 1] - p.page_table_start[r];
    if (pages < 0 || p.kv_len[r] < 0 || p.kv_len[r] > pages * p.page_size) return false;
    for (int64_t i = 0; i < pages; ++i) {
      const int32_t pg = p.page_indices[p.page_table_start[r] + i];
      if (pg < 0 || pg >= p.pool_pages) return false;
    }
    for (int32_t t = b; t < e; ++t) {
      if (p.positions[t] < 0 || p.positions[t] >= p.kv_len[r]) return false;
      row_request[t] = static_cast<int32_t>(r);
    }
  }
  pool.parallel_for(p.num_tokens * p.num_q_heads, [&](int64_t w0, int64_t w1) {
    std::vector<float> scores;
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t t = w / p.num_q_heads, h = w % p.num_q_heads;
      float* out = p.out + t * p.out_stride + h * p.head_dim;
      const int32_t r = row_request[t];
      if (r < 0) {   // a row outside every request: defined output
        std::memset(out, 0, p.head_dim * sizeof(float));
        continue;
      }
      const float* q = p.q + t * p.q_stride + h * p.head_dim;
      const int32_t* pages = p.page_indices + p.page_table_start[r];
      const int64_t kvh = h / group;
      const int64_t n = static_cast<int64_t>(p.positions[t]) + 1;
      scores.resize(static_cast<size_t>(n));
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t slot = static_cast<int64_t>(pages[j / p.page_size]) * p.page_size + j % p.page_size;
        const float* k = p.k_pool + slot * kv_dim + kvh * p.head_dim;
        float s = 0.f;
        for (int64_t d = 0; d < p.head_dim; ++d) s += q[d] * k[d];
        scores[j] = s * scale;
        mx = std::max(mx, scores[j]);
      }
      float sum = 0.f;
      for (int64_t j = 0; j < n; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      const float inv = 1.f / sum;
      std::memset(out, 0, p.head_dim * sizeof(float));
      for (int64_t j = 0; j < n; ++j) {
        const int64_t slot = static_cast<int64_t>(pages[j / p.page_size]) * p.page_size + j % p.page_size;
        const float* v = p.v_pool + slot * kv_dim + kvh * p.head_dim;
        const float a = scores[j] * inv;
        for (int64_t d = 0; d < p.head_dim; ++d) out[d] += a * v[d];
      }
    }
  }, 4);
  return true;
}

void silu_mul(const ops::SiluMulParams& p) {
  const int64_t n = p.num_tokens * p.n;
  for (int64_t i = 0; i < n; ++i) {
    const float g = p.gate[i];
    p.out[i] = g / (1.f + std::exp(-g)) * p.up[i];
  }
}

void add(const ops::AddParams& p) {
  for (int64_t i = 0; i < p.n; ++i) p.y[i] += p.x[i];
}

bool gather_rows(const ops::GatherRowsParams& p) {
  for (int64_t r = 0; r < p.num_rows; ++r) {
    if (p.rows[r] < 0 || p.rows[r] >= p.num_tokens) return false;
    std::memmove(p.out + r * p.dim, p.x + static_cast<int64_t>(p.rows[r]) * p.dim, p.dim * sizeof(float));
  }
  return true;
}

void log_softmax(const ops::LogSoftmaxParams& p) {
  for (int64_t r = 0; r < p.num_rows; ++r) {
    const float* x = p.x + r * p.n;
    float* y = p.out + r * p.n;
    float mx = -INFINITY;
    for (int64_t i = 0; i < p.n; ++i) mx = std::max(mx, x[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < p.n; ++i) sum += std::exp(static_cast<double>(x[i] - mx));
    const float lse = mx + static_cast<float>(std::log(sum));
    for (int64_t i = 0; i < p.n; ++i) y[i] = x[i] - lse;
  }
}

}  // namespace punica::cpu
