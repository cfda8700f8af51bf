#include "formats/gguf_dequant.h"

#include <cstring>
#include <string>

#include "core/half.h"
#include "formats/gguf.h"

namespace punica {

namespace {

constexpr int kQK = 32;     // elements per block of the "legacy" quants
constexpr int kQK_K = 256;  // elements per super-block of the k-quants

inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_float(h);
}

// Each function dequantises n_blocks consecutive blocks. The float expressions keep ggml's operation
// order (scale first, then offset) so that the values match the reference bit for bit.

void dequant_q4_0(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 18, y += kQK) {
    const float d = f16_at(x);
    const uint8_t* qs = x + 2;
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((qs[j] & 0x0f) - 8) * d;
      y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 20, y += kQK) {
    const float d = f16_at(x);
    const float m = f16_at(x + 2);
    const uint8_t* qs = x + 4;
    for (int j = 0; j < 16; ++j) {
      const float p0 = static_cast<float>(qs[j] & 0x0f) * d;
      const float p1 = static_cast<float>(qs[j] >> 4) * d;
      y[j] = p0 + m;
      y[j + 16] = p1 + m;
    }
  }
}

void dequant_q5_0(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 22, y += kQK) {
    const float d = f16_at(x);
    uint32_t qh;
    std::memcpy(&qh, x + 2, 4);
    const uint8_t* qs = x + 6;
    for (int j = 0; j < 16; ++j) {
      const int x0 = (qs[j] & 0x0f) | (((qh >> j) & 1) << 4);
      const int x1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = static_cast<float>(x0 - 16) * d;
      y[j + 16] = static_cast<float>(x1 - 16) * d;
    }
  }
}

void dequant_q5_1(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 24, y += kQK) {
    const float d = f16_at(x);
    const float m = f16_at(x + 2);
    uint32_t qh;
    std::memcpy(&qh, x + 4, 4);
    const uint8_t* qs = x + 8;
    for (int j = 0; j < 16; ++j) {
      const int x0 = (qs[j] & 0x0f) | (((qh >> j) & 1) << 4);
      const int x1 = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      const float p0 = static_cast<float>(x0) * d;
      const float p1 = static_cast<float>(x1) * d;
      y[j] = p0 + m;
      y[j + 16] = p1 + m;
    }
  }
}

void dequant_q8_0(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 34, y += kQK) {
    const float d = f16_at(x);
    const int8_t* qs = reinterpret_cast<const int8_t*>(x + 2);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(qs[j]) * d;
  }
}

// block_q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
void dequant_q2_k(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 84, y += kQK_K) {
    const uint8_t* scales = x;
    const uint8_t* qs = x + 16;
    const float d = f16_at(x + 80);
    const float dmin = f16_at(x + 82);
    // element e = h*128 + s*32 + l (h: half, s: 2-bit shift index, l < 32) uses qs[h*32 + l] >> 2s and
    // sub-block e / 16.
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e >> 7, s = (e >> 5) & 3, l = e & 31;
      const int q = (qs[h * 32 + l] >> (2 * s)) & 3;
      const uint8_t sc = scales[e >> 4];
      const float dl = d * static_cast<float>(sc & 0x0f);
      const float ml = dmin * static_cast<float>(sc >> 4);
      y[e] = dl * static_cast<float>(q) - ml;
    }
  }
}

// block_q3_K: hmask[32], qs[64], scales[12] (16 packed 6-bit signed scales), d.
void dequant_q3_k(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 110, y += kQK_K) {
    const uint8_t* hmask = x;
    const uint8_t* qs = x + 32;
    const uint8_t* sc = x + 96;
    const float d = f16_at(x + 108);
    float dl[16];
    for (int k = 0; k < 16; ++k) {
      const int lo = k < 8 ? (sc[k] & 0x0f) : (sc[k - 8] >> 4);
      const int hi = (sc[8 + (k & 3)] >> (2 * (k >> 2))) & 3;
      dl[k] = d * static_cast<float>((lo | (hi << 4)) - 32);
    }
    for (int e = 0; e < kQK_K; ++e) {
      const int h = e >> 7, s = (e >> 5) & 3, l = e & 31;
      const int ql = (qs[h * 32 + l] >> (2 * s)) & 3;
      const int hbit = (hmask[l] >> (h * 4 + s)) & 1;   // the offset 4 applies when the bit is clear
      y[e] = dl[e >> 4] * static_cast<float>(ql - (hbit ? 0 : 4));
    }
  }
}

// The 8 (scale, min) pairs of 6 bits packed in 12 bytes (q4_K and q5_K).
inline void k_scale_min(const uint8_t* q, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// block_q4_K: d, dmin, scales[12], qs[128].
void dequant_q4_k(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 144) {
    const float d = f16_at(x);
    const float dmin = f16_at(x + 2);
    const uint8_t* scales = x + 4;
    const uint8_t* q = x + 16;
    for (int j = 0; j < kQK_K; j += 64, q += 32) {
      const int is = j / 32;
      int sc, m;
      k_scale_min(scales, is, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      k_scale_min(scales, is + 1, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0x0f) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// block_q5_K: d, dmin, scales[12], qh[32], qs[128].
void dequant_q5_k(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 176) {
    const float d = f16_at(x);
    const float dmin = f16_at(x + 2);
    const uint8_t* scales = x + 4;
    const uint8_t* qh = x + 16;
    const uint8_t* ql = x + 48;
    int u1 = 1, u2 = 2;
    for (int j = 0; j < kQK_K; j += 64, ql += 32, u1 <<= 2, u2 <<= 2) {
      const int is = j / 32;
      int sc, m;
      k_scale_min(scales, is, &sc, &m);
      const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
      k_scale_min(scales, is + 1, &sc, &m);
      const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * static_cast<float>((ql[l] & 0x0f) + ((qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l)
        *y++ = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    }
  }
}

// block_q6_K: ql[128], qh[64], scales[16] (int8), d.
void dequant_q6_k(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 210) {
    const float d = f16_at(x + 208);
    const uint8_t* ql = x;
    const uint8_t* qh = x + 128;
    const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
    for (int n = 0; n < kQK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = (d * static_cast<float>(sc[is + 0])) * static_cast<float>(q1);
        y[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
        y[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
        y[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
      }
    }
  }
}

// block_q8_K: float d, int8 qs[256], int16 bsums[16] (bsums only serve dot products).
void dequant_q8_k(const uint8_t* x, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += 292, y += kQK_K) {
    float d;
    std::memcpy(&d, x, 4);
    const int8_t* qs = reinterpret_cast<const int8_t*>(x + 4);
    for (int j = 0; j < kQK_K; ++j) y[j] = d * static_cast<float>(qs[j]);
  }
}

void dequant_f16(const uint8_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_at(x + 2 * i);
}

void dequant_bf16(const uint8_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, x + 2 * i, 2);
    y[i] = bf16_to_float(h);
  }
}

void dequant_f64(const uint8_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double v;
    std::memcpy(&v, x + 8 * i, 8);
    y[i] = static_cast<float>(v);
  }
}

}  // namespace

bool gguf_can_dequantize(uint32_t type_id) {
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::kF32: case GgmlType::kF16: case GgmlType::kBF16: case GgmlType::kF64:
    case GgmlType::kQ4_0: case GgmlType::kQ4_1: case GgmlType::kQ5_0: case GgmlType::kQ5_1:
    case GgmlType::kQ8_0: case GgmlType::kQ2_K: case GgmlType::kQ3_K: case GgmlType::kQ4_K:
    case GgmlType::kQ5_K: case GgmlType::kQ6_K: case GgmlType::kQ8_K:
      return true;
    default:
      return false;
  }
}

Status gguf_dequantize(uint32_t type_id, const uint8_t* src, size_t src_bytes, float* dst, int64_t n) {
  const GgmlTypeTraits* tr = ggml_type_traits(type_id);
  if (!tr || !gguf_can_dequantize(type_id))
    return unsupported("ggml type " + ggml_type_name(type_id) + " cannot be dequantised by this build");
  if (n < 0 || n % tr->block_size != 0)
    return invalid_argument(std::to_string(n) + " elements is not a multiple of the " + tr->name +
                            " block size " + std::to_string(tr->block_size));
  const int64_t nb = n / tr->block_size;
  if (static_cast<uint64_t>(nb) * static_cast<uint64_t>(tr->type_size) != src_bytes)
    return invalid_argument(std::string(tr->name) + ": " + std::to_string(n) + " elements take " +
                            std::to_string(nb * tr->type_size) + " bytes, got " + std::to_string(src_bytes));
  switch (static_cast<GgmlType>(type_id)) {
    case GgmlType::kF32: if (n) std::memcpy(dst, src, static_cast<size_t>(n) * 4); break;
    case GgmlType::kF16: dequant_f16(src, dst, n); break;
    case GgmlType::kBF16: dequant_bf16(src, dst, n); break;
    case GgmlType::kF64: dequant_f64(src, dst, n); break;
    case GgmlType::kQ4_0: dequant_q4_0(src, dst, nb); break;
    case GgmlType::kQ4_1: dequant_q4_1(src, dst, nb); break;
    case GgmlType::kQ5_0: dequant_q5_0(src, dst, nb); break;
    case GgmlType::kQ5_1: dequant_q5_1(src, dst, nb); break;
    case GgmlType::kQ8_0: dequant_q8_0(src, dst, nb); break;
    case GgmlType::kQ2_K: dequant_q2_k(src, dst, nb); break;
    case GgmlType::kQ3_K: dequant_q3_k(src, dst, nb); break;
    case GgmlType::kQ4_K: dequant_q4_k(src, dst, nb); break;
    case GgmlType::kQ5_K: dequant_q5_k(src, dst, nb); break;
    case GgmlType::kQ6_K: dequant_q6_k(src, dst, nb); break;
    case GgmlType::kQ8_K: dequant_q8_k(src, dst, nb); break;
    default: break;
  }
  return {};
}

}  // namespace punica
