#include <gtest/gtest.h>

#include <set>

#include "kv/kv_cache.h"

namespace punica::kv {
namespace {

TEST(KvCache, ReserveGrowsPageTablesAndReleaseReturnsPages) {
  auto c = KvCache::create({2, 8, 4, 5});
  ASSERT_TRUE(c.has_value());
  ASSERT_TRUE(c->reserve(1, 5).is_ok());    // 2 pages
  ASSERT_TRUE(c->reserve(2, 4).is_ok());    // 1 page
  ASSERT_TRUE(c->reserve(1, 8).is_ok());    // still 2 pages
  EXPECT_EQ(c->page_table(1).size(), 2u);
  EXPECT_EQ(c->num_free_pages(), 2);
  std::set<int64_t> slots;
  for (int64_t p = 0; p < 8; ++p) slots.insert(c->slot(1, p));
  for (int64_t p = 0; p < 4; ++p) slots.insert(c->slot(2, p));
  EXPECT_EQ(slots.size(), 12u) << "slots of different sequences/positions never collide";
  for (int64_t s : slots) EXPECT_LT(s, c->pool_slots());
  // Too big: refused whole, nothing changes.
  Status st = c->reserve(3, 13);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(c->contains(3));
  EXPECT_EQ(c->num_free_pages(), 2);
  c->release(1);
  EXPECT_EQ(c->num_free_pages(), 4);
  EXPECT_TRUE(c->reserve(3, 13).is_ok());
}

TEST(KvCache, RejectsBadConfigsAndHugePools) {
  EXPECT_FALSE(KvCache::create({0, 8, 4, 5}).has_value());
  EXPECT_FALSE(KvCache::create({2, 8, 0, 5}).has_value());
  auto huge = KvCache::create({100, 4096, 16, 1 << 20});
  ASSERT_FALSE(huge.has_value());
  EXPECT_EQ(huge.status().code(), StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace punica::kv
