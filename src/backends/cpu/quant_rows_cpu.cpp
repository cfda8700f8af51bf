#include "backends/cpu/quant_rows_cpu.h"

#include <cstring>

#include "core/half.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>
#define PUNICA_QUANT_AVX2 1
#endif

namespace punica::cpu {
namespace {

using ops::LinearWeightFormat;

inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#ifdef PUNICA_QUANT_AVX2
  return _cvtsh_ss(h);   // F16C: exact, like fp16_to_float, without its subnormal loop
#else
  return fp16_to_float(h);
#endif
}

// --- one block -> f32 (ggml's dequantize_row_* arithmetic) -----------------------------------------

void dequant_q4_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void dequant_q4_1(const uint8_t* b, float* y) {
  const float d = f16_at(b), m = f16_at(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

void dequant_q8_0(const uint8_t* b, float* y) {
  const float d = f16_at(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

void q4_k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dequant_q4_k(const uint8_t* b, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  int is = 0;
  for (int j = 0; j < 256; j += 64) {
    uint8_t sc, m;
    q4_k_scale_min(is + 0, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    q4_k_scale_min(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
    is += 2;
  }
}

void dequant_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = f16_at(b + 208);
  for (int n = 0; n < 256; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = static_cast<int8_t>((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = static_cast<int8_t>((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = static_cast<int8_t>((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = static_cast<int8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l + 0] = d * sc[is + 0] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

void dequant_block(LinearWeightFormat f, const uint8_t* b, float* y) {
  switch (f) {
    case LinearWeightFormat::kF32: std::memcpy(y, b, 4); break;
    case LinearWeightFormat::kF16: y[0] = f16_at(b); break;
    case LinearWeightFormat::kQ4_0: dequant_q4_0(b, y); break;
    case LinearWeightFormat::kQ4_1: dequant_q4_1(b, y); break;
    case LinearWeightFormat::kQ8_0: dequant_q8_0(b, y); break;
    case LinearWeightFormat::kQ4_K: dequant_q4_k(b, y); break;
    case LinearWeightFormat::kQ6_K: dequant_q6_k(b, y); break;
  }
}

#ifdef PUNICA_QUANT_AVX2
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// 32 dequantised values of a Q4_0/Q4_1/Q8_0 block as 4 x 8 floats (same values as dequant_*).
inline void decode32(LinearWeightFormat f, const uint8_t* b, __m256 w[4]) {
  if (f == LinearWeightFormat::kQ8_0) {
    const __m256 d = _mm256_set1_ps(f16_at(b));
    for (int i = 0; i < 4; ++i) {
      const __m128i q8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + 2 + 8 * i));
      w[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8)), d);
    }
    return;
  }
  const bool has_min = f == LinearWeightFormat::kQ4_1;
  const __m256 d = _mm256_set1_ps(f16_at(b));
  const uint8_t* qs = b + (has_min ? 4 : 2);
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(bytes, mask);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), mask);
  const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  if (has_min) {
    const __m256 m = _mm256_set1_ps(f16_at(b + 2));
    // mul then add (no fma), so each value rounds exactly as q * d + m does in the plain path.
    for (int i = 0; i < 4; ++i)
      w[i] = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[i])), d), m);
  } else {
    const __m256i eight = _mm256_set1_epi32(8);
    for (int i = 0; i < 4; ++i)
      w[i] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(parts[i]), eight)), d);
  }
}
#endif

}  // namespace

void quant_row_dequantize(LinearWeightFormat f, const uint8_t* row, int64_t cols, float* out) {
  const int64_t be = ops::linear_weight_block_elems(f), bb = ops::linear_weight_block_bytes(f);
  for (int64_t b = 0; b < cols / be; ++b) dequant_block(f, row + b * bb, out + b * be);
}

void quant_row_dot(LinearWeightFormat f, const uint8_t* row, int64_t cols, const float* x, int64_t x_stride,
                   int64_t num_x, float* y, int64_t y_stride) {
  const int64_t be = ops::linear_weight_block_elems(f), bb = ops::linear_weight_block_bytes(f);
  const int64_t nb = cols / be;
#ifdef PUNICA_QUANT_AVX2
  constexpr int kMaxX = 8;   // x rows accumulated in registers per pass
  if ((f == LinearWeightFormat::kQ4_0 || f == LinearWeightFormat::kQ4_1 || f == LinearWeightFormat::kQ8_0) &&
      num_x == 1) {
    // One x (decode): four independent accumulators, so the FMA latency is not the bound.
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t b = 0; b < nb; ++b) {
      __m256 w[4];
      decode32(f, row + b * bb, w);
      const float* xb = x + b * 32;
      for (int i = 0; i < 4; ++i) acc[i] = _mm256_fmadd_ps(w[i], _mm256_loadu_ps(xb + 8 * i), acc[i]);
    }
    y[0] = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    return;
  }
  if (f == LinearWeightFormat::kQ4_0 || f == LinearWeightFormat::kQ4_1 || f == LinearWeightFormat::kQ8_0) {
    for (int64_t t0 = 0; t0 < num_x; t0 += kMaxX) {
      const int nt = static_cast<int>(num_x - t0 < kMaxX ? num_x - t0 : kMaxX);
      __m256 acc[kMaxX];
      for (int t = 0; t < nt; ++t) acc[t] = _mm256_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        __m256 w[4];
        decode32(f, row + b * bb, w);
        for (int t = 0; t < nt; ++t) {
          const float* xb = x + (t0 + t) * x_stride + b * 32;
          for (int i = 0; i < 4; ++i) acc[t] = _mm256_fmadd_ps(w[i], _mm256_loadu_ps(xb + 8 * i), acc[t]);
        }
      }
      for (int t = 0; t < nt; ++t) y[(t0 + t) * y_stride] = hsum(acc[t]);
    }
    return;
  }
  if (f == LinearWeightFormat::kF32 || f == LinearWeightFormat::kF16 || be >= 8) {
    // Decode 256 values (or the whole short row) at a time, then FMA against every x.
    constexpr int64_t kChunk = 256;
    alignas(32) float tmp[kChunk];
    const int64_t chunk = be >= 8 ? be : kChunk;
    for (int64_t t0 = 0; t0 < num_x; t0 += kMaxX) {
      const int nt = static_cast<int>(num_x - t0 < kMaxX ? num_x - t0 : kMaxX);
      __m256 acc[kMaxX];
      for (int t = 0; t < nt; ++t) acc[t] = _mm256_setzero_ps();
      float tail[kMaxX] = {};
      for (int64_t c0 = 0; c0 < cols; c0 += chunk) {
        const int64_t n = cols - c0 < chunk ? cols - c0 : chunk;
        if (f == LinearWeightFormat::kF32) {
          std::memcpy(tmp, row + c0 * 4, n * 4);
        } else if (f == LinearWeightFormat::kF16) {
          int64_t k = 0;
          for (; k + 8 <= n; k += 8)
            _mm256_store_ps(tmp + k, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + (c0 + k) * 2))));
          for (; k < n; ++k) tmp[k] = f16_at(row + (c0 + k) * 2);
        } else {
          dequant_block(f, row + (c0 / be) * bb, tmp);
        }
        const int64_t n8 = n & ~int64_t{7};
        for (int t = 0; t < nt; ++t) {
          const float* xc = x + (t0 + t) * x_stride + c0;
          for (int64_t k = 0; k < n8; k += 8) acc[t] = _mm256_fmadd_ps(_mm256_load_ps(tmp + k), _mm256_loadu_ps(xc + k), acc[t]);
          for (int64_t k = n8; k < n; ++k) tail[t] += tmp[k] * xc[k];
        }
      }
      for (int t = 0; t < nt; ++t) y[(t0 + t) * y_stride] = hsum(acc[t]) + tail[t];
    }
    return;
  }
#endif
  // Plain path: decode one block, accumulate into every x.
  float tmp[256];
  for (int64_t t = 0; t < num_x; ++t) y[t * y_stride] = 0.f;
  for (int64_t b = 0; b < nb; ++b) {
    dequant_block(f, row + b * bb, tmp);
    for (int64_t t = 0; t < num_x; ++t) {
      const float* xb = x + t * x_stride + b * be;
      float s = 0.f;
      for (int64_t k = 0; k < be; ++k) s += tmp[k] * xb[k];
      y[t * y_stride] += s;
    }
  }
}

}  // namespace punica::cpu
