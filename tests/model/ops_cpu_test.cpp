// CpuBackend dense ops against plain reference loops written here (double accumulation), on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/quant_rows_cpu.h"
#include "core/half.h"

namespace punica {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

void expect_close(const std::vector<float>& a, const std::vector<double>& b, double tol) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol * (1.0 + std::fabs(b[i]))) << "at " << i;
}

TEST(CpuOps, RmsNorm) {
  cpu::CpuBackend be(2);
  const int64_t T = 3, D = 37;
  auto x = randn(T * D, 1), w = randn(D, 2);
  std::vector<float> y(T * D);
  ASSERT_TRUE(be.rms_norm({x.data(), w.data(), y.data(), T, D, 1e-5f}).is_ok());
  std::vector<double> ref(T * D);
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += double(x[t * D + i]) * x[t * D + i];
    const double inv = 1.0 / std::sqrt(ss / D + 1e-5);
    for (int64_t i = 0; i < D; ++i) ref[t * D + i] = w[i] * x[t * D + i] * inv;
  }
  expect_close(y, ref, 1e-6);
}

TEST(CpuOps, RopeRotateHalf) {
  cpu::CpuBackend be(1);
  const int64_t T = 2, HQ = 3, HK = 1, Dh = 8, half = Dh / 2;
  auto q = randn(T * HQ * Dh, 3), k = randn(T * HK * Dh, 4);
  auto cos = randn(T * half, 5), sin = randn(T * half, 6);
  auto q0 = q, k0 = k;
  ops::RopeParams p;
  p.q = q.data(); p.q_stride = HQ * Dh; p.k = k.data(); p.k_stride = HK * Dh;
  p.cos = cos.data(); p.sin = sin.data(); p.num_tokens = T; p.num_q_heads = HQ; p.num_kv_heads = HK; p.head_dim = Dh;
  ASSERT_TRUE(be.rope(p).is_ok());
  // HF: out = x * cat(cos, cos) + rotate_half(x) * cat(sin, sin), rotate_half(x) = cat(-x2, x1).
  auto ref = [&](const std::vector<float>& x0, int64_t heads) {
    std::vector<double> r(x0.size());
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < Dh; ++i) {
          const float* xh = &x0[(t * heads + h) * Dh];
          const double c = cos[t * half + i % half], s = sin[t * half + i % half];
          const double rot = i < half ? -xh[i + half] : xh[i - half];
          r[(t * heads + h) * Dh + i] = xh[i] * c + rot * s;
        }
    return r;
  };
  expect_close(q, ref(q0, HQ), 1e-6);
  expect_close(k, ref(k0, HK), 1e-6);
}

TEST(CpuOps, LinearF32WithBias) {
  cpu::CpuBackend be(2);
  const int64_t T = 5, I = 19, O = 7;
  auto x = randn(T * I, 7), w = randn(O * I, 8), b = randn(O, 9);
  std::vector<float> y(T * O);
  ops::LinearParams p;
  p.x = x.data(); p.x_stride = I; p.w = {ops::LinearWeightFormat::kF32, w.data(), O, I, I * 4};
  p.bias = b.data(); p.y = y.data(); p.y_stride = O; p.num_tokens = T;
  ASSERT_TRUE(be.linear(p).is_ok());
  std::vector<double> ref(T * O);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < O; ++o) {
      double s = b[o];
      for (int64_t i = 0; i < I; ++i) s += double(x[t * I + i]) * w[o * I + i];
      ref[t * O + o] = s;
    }
  expect_close(y, ref, 1e-5);
}

// Random bytes make valid blocks for every format once the f16 scales are set to small finite values.
std::vector<uint8_t> random_blocks(ops::LinearWeightFormat f, int64_t rows, int64_t cols, uint32_t seed) {
  const int64_t be = ops::linear_weight_block_elems(f), bb = ops::linear_weight_block_bytes(f);
  const int64_t nb = rows * cols / be;
  std::mt19937 g(seed);
  std::vector<uint8_t> data(nb * bb);
  for (auto& c : data) c = static_cast<uint8_t>(g());
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  auto put = [&](uint8_t* p) {
    const uint16_t h = float_to_fp16(u(g));
    std::memcpy(p, &h, 2);
  };
  for (int64_t b = 0; b < nb; ++b) {
    uint8_t* blk = data.data() + b * bb;
    switch (f) {
      case ops::LinearWeightFormat::kF16: put(blk); break;
      case ops::LinearWeightFormat::kQ4_0: case ops::LinearWeightFormat::kQ8_0: put(blk); break;
      case ops::LinearWeightFormat::kQ4_1: case ops::LinearWeightFormat::kQ4_K: put(blk); put(blk + 2); break;
      case ops::LinearWeightFormat::kQ6_K: put(blk + 208); break;
      case ops::LinearWeightFormat::kF32: break;
    }
  }
  return data;
}

class QuantLinear : public ::testing::TestWithParam<std::tuple<ops::LinearWeightFormat, int64_t>> {};

TEST_P(QuantLinear, MatchesDequantisedReference) {
  const auto [f, T] = GetParam();
  cpu::CpuBackend be(2);
  const int64_t O = 37, I = 512;
  auto w = random_blocks(f, O, I, 11);
  const int64_t row_bytes = I / ops::linear_weight_block_elems(f) * ops::linear_weight_block_bytes(f);
  auto x = randn(T * I, 12);
  std::vector<float> y(T * O);
  ops::LinearParams p;
  p.x = x.data(); p.x_stride = I; p.w = {f, w.data(), O, I, row_bytes};
  p.y = y.data(); p.y_stride = O; p.num_tokens = T;
  ASSERT_TRUE(be.linear(p).is_ok());
  std::vector<float> wf(I);
  for (int64_t o = 0; o < O; ++o) {
    cpu::quant_row_dequantize(f, w.data() + o * row_bytes, I, wf.data());
    for (int64_t t = 0; t < T; ++t) {
      double s = 0, mag = 0;
      for (int64_t i = 0; i < I; ++i) {
        s += double(wf[i]) * x[t * I + i];
        mag += std::fabs(double(wf[i]) * x[t * I + i]);
      }
      // fp32 accumulation error is relative to the sum of |terms| (Q6_K weights reach +-200).
      ASSERT_NEAR(y[t * O + o], s, 1e-6 * mag + 1e-6) << "row " << o << " token " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Formats, QuantLinear,
    ::testing::Combine(::testing::Values(ops::LinearWeightFormat::kF16, ops::LinearWeightFormat::kQ4_0,
                                         ops::LinearWeightFormat::kQ4_1, ops::LinearWeightFormat::kQ8_0,
                                         ops::LinearWeightFormat::kQ4_K, ops::LinearWeightFormat::kQ6_K),
                       ::testing::Values<int64_t>(1, 3, 9, 19)));   // 19: the dequantise + sgemm path

TEST(CpuOps, Q4_1DequantMatchesFormula) {
  // One hand-built block: d = 0.5, m = -1, nibbles 0..15 then 15..0.
  uint8_t blk[20];
  const uint16_t d = float_to_fp16(0.5f), m = float_to_fp16(-1.f);
  std::memcpy(blk, &d, 2);
  std::memcpy(blk + 2, &m, 2);
  for (int j = 0; j < 16; ++j) blk[4 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  cpu::quant_row_dequantize(ops::LinearWeightFormat::kQ4_1, blk, 32, y);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], j * 0.5f - 1.f);
    EXPECT_EQ(y[j + 16], (15 - j) * 0.5f - 1.f);
  }
}

// Paged attention against dense causal attention on the same K/V, with pages scattered in the pool.
TEST(CpuOps, AttentionPagedMatchesDense) {
  cpu::CpuBackend be(2);
  const int64_t HQ = 4, HK = 2, Dh = 8, page = 4, pool_pages = 16, kv_dim = HK * Dh;
  // Two requests: A has 5 cached tokens + 3 new (prefill chunk), B has 9 cached + 1 new (decode).
  const std::vector<int32_t> kvlen = {8, 10};
  const std::vector<std::vector<int32_t>> pages = {{7, 2}, {0, 11, 5}};
  const std::vector<int32_t> row_start = {0, 3, 4};
  const std::vector<int32_t> positions = {5, 6, 7, 9};
  std::vector<int32_t> pt_start = {0, 2, 5}, pt = {7, 2, 0, 11, 5};
  auto kpool = randn(pool_pages * page * kv_dim, 21), vpool = randn(pool_pages * page * kv_dim, 22);
  auto q = randn(4 * HQ * Dh, 23);
  std::vector<float> out(4 * HQ * Dh);
  ops::AttentionParams p;
  p.q = q.data(); p.q_stride = HQ * Dh; p.out = out.data(); p.out_stride = HQ * Dh;
  p.k_pool = kpool.data(); p.v_pool = vpool.data(); p.pool_pages = pool_pages; p.page_size = page;
  p.num_q_heads = HQ; p.num_kv_heads = HK; p.head_dim = Dh; p.num_tokens = 4; p.num_requests = 2;
  p.row_start = row_start.data(); p.positions = positions.data(); p.kv_len = kvlen.data();
  p.page_table_start = pt_start.data(); p.page_indices = pt.data();
  ASSERT_TRUE(be.attention_paged(p).is_ok());
  std::vector<double> ref(out.size());
  for (int r = 0; r < 2; ++r)
    for (int32_t t = row_start[r]; t < row_start[r + 1]; ++t)
      for (int64_t h = 0; h < HQ; ++h) {
        const int64_t g = h / (HQ / HK), n = positions[t] + 1;
        std::vector<double> s(n);
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          const int64_t slot = pages[r][j / page] * page + j % page;
          double d = 0;
          for (int64_t i = 0; i < Dh; ++i) d += double(q[(t * HQ + h) * Dh + i]) * kpool[slot * kv_dim + g * Dh + i];
          s[j] = d / std::sqrt(double(Dh));
          mx = std::max(mx, s[j]);
        }
        for (auto& v : s) sum += (v = std::exp(v - mx));
        for (int64_t i = 0; i < Dh; ++i) {
          double acc = 0;
          for (int64_t j = 0; j < n; ++j)
            acc += s[j] / sum * vpool[(pages[r][j / page] * page + j % page) * kv_dim + g * Dh + i];
          ref[(t * HQ + h) * Dh + i] = acc;
        }
      }
  expect_close(out, ref, 1e-5);
  // A position beyond kv_len is a plan error, not a read past the cache.
  std::vector<int32_t> bad_pos = positions;
  bad_pos[3] = 10;
  p.positions = bad_pos.data();
  EXPECT_EQ(be.attention_paged(p).code(), StatusCode::kInvalidArgument);
}

TEST(CpuOps, SiluMulAddLogSoftmaxGather) {
  cpu::CpuBackend be(1);
  auto g = randn(10, 31), u = randn(10, 32);
  std::vector<float> out(10);
  ASSERT_TRUE(be.silu_mul({g.data(), u.data(), out.data(), 2, 5}).is_ok());
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(out[i], g[i] / (1 + std::exp(-double(g[i]))) * u[i], 1e-6);

  auto x = randn(2 * 50, 33, 3.f);
  std::vector<float> lp(x.size());
  ASSERT_TRUE(be.log_softmax({x.data(), lp.data(), 2, 50}).is_ok());
  for (int r = 0; r < 2; ++r) {
    double s = 0;
    for (int i = 0; i < 50; ++i) s += std::exp(double(x[r * 50 + i]));
    for (int i = 0; i < 50; ++i) EXPECT_NEAR(lp[r * 50 + i], x[r * 50 + i] - std::log(s), 1e-5);
  }
  std::vector<int32_t> rows = {3, 0};
  auto src = randn(4 * 6, 34);
  std::vector<float> dst(2 * 6);
  ASSERT_TRUE(be.gather_rows({src.data(), rows.data(), 2, 4, 6, dst.data()}).is_ok());
  EXPECT_EQ(std::memcmp(dst.data(), src.data() + 18, 24), 0);
  EXPECT_EQ(std::memcmp(dst.data() + 6, src.data(), 24), 0);
  rows[0] = 4;
  EXPECT_FALSE(be.gather_rows({src.data(), rows.data(), 2, 4, 6, dst.data()}).is_ok());
}

TEST(CpuOps, EmbeddingRejectsOutOfVocabulary) {
  cpu::CpuBackend be(1);
  auto table = randn(5 * 4, 41);
  std::vector<int32_t> ids = {4, 1};
  std::vector<float> out(8);
  ops::EmbeddingParams p{{ops::LinearWeightFormat::kF32, table.data(), 5, 4, 16}, ids.data(), 2, out.data()};
  ASSERT_TRUE(be.embedding(p).is_ok());
  EXPECT_EQ(std::memcmp(out.data(), table.data() + 16, 16), 0);
  ids[1] = 5;
  Status st = be.embedding(p);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("token id 5"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace punica
