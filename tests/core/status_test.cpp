#include <gtest/gtest.h>

#include "punica/status.h"

namespace punica {
namespace {

Expected<int> parse_positive(int x) {
  if (x <= 0) return invalid_argument("x: expected a positive number, got " + std::to_string(x));
  return x;
}

Expected<int> doubled(int x) {
  PUNICA_ASSIGN_OR_RETURN(int v, parse_positive(x));
  return 2 * v;
}

TEST(Status, ExpectedCarriesValueOrError) {
  auto ok = doubled(4);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(*ok, 8);
  auto bad = doubled(-1);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().to_string(), "InvalidArgument: x: expected a positive number, got -1");
}

}  // namespace
}  // namespace punica
