// Dequantisation against gguf-py's quants.dequantize (fixtures by tools/gen_format_fixtures.py).
#include "formats/gguf_dequant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "format_test_util.h"
#include "formats/gguf.h"

namespace punica {
namespace {

std::string fixture(const std::string& name) {
  return std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/formats/dequant/" + name;
}

// Distance in units in the last place between two finite floats of the same sign class.
int64_t ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  if (ia < 0) ia = INT32_MIN - ia;
  if (ib < 0) ib = INT32_MIN - ib;
  return std::llabs(static_cast<int64_t>(ia) - ib);
}

class DequantTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(DequantTest, MatchesGgufPyExactly) {
  const uint32_t id = static_cast<uint32_t>(GetParam());
  const std::string name = ggml_type_name(id);
  const auto raw = test::read_all(fixture(name + ".bin"));
  const auto exp_bytes = test::read_all(fixture(name + ".f32"));
  ASSERT_FALSE(raw.empty()) << "missing fixture " << name << ".bin";
  const int64_t n = static_cast<int64_t>(exp_bytes.size() / 4);
  std::vector<float> expected(static_cast<size_t>(n)), got(static_cast<size_t>(n), -12345.f);
  std::memcpy(expected.data(), exp_bytes.data(), exp_bytes.size());
  ASSERT_TRUE(gguf_can_dequantize(id));
  Status st = gguf_dequantize(id, raw.data(), raw.size(), got.data(), n);
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  int64_t exact = 0;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_TRUE(std::isfinite(expected[i]));
    // Bit-identical except where the compiler may fuse d*q - m into one FMA: then 1 ulp of the larger term.
    if (got[i] == expected[i]) {
      ++exact;
      continue;
    }
    ASSERT_LE(ulp_distance(got[i], expected[i]), 1) << name << " element " << i << ": got " << got[i]
                                                    << ", gguf-py " << expected[i];
  }
  EXPECT_EQ(exact, n) << name << ": " << (n - exact) << " of " << n << " values differ by 1 ulp";
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DequantTest,
                         ::testing::Values(GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ4_0, GgmlType::kQ4_1,
                                           GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ2_K,
                                           GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K,
                                           GgmlType::kQ8_K),
                         [](const auto& info) { return ggml_type_name(static_cast<uint32_t>(info.param)); });

TEST(Dequant, RejectsSizeMismatchAndUnsupportedTypes) {
  std::vector<uint8_t> buf(64);
  float out[64];
  Status st = gguf_dequantize(static_cast<uint32_t>(GgmlType::kQ4_0), buf.data(), 17, out, 32);
  EXPECT_TRUE(test::error_mentions(st, {"Q4_0", "18 bytes", "got 17"}));
  st = gguf_dequantize(static_cast<uint32_t>(GgmlType::kQ4_0), buf.data(), 18, out, 31);
  EXPECT_TRUE(test::error_mentions(st, {"block size 32"}));
  st = gguf_dequantize(static_cast<uint32_t>(GgmlType::kIQ2_XXS), buf.data(), 66, out, 256);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_TRUE(test::error_mentions(st, {"IQ2_XXS"}));
}

}  // namespace
}  // namespace punica
