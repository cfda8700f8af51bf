// The f32 OpenBLAS LoRA path against the double-accumulating reference (backends/cpu/lora_cpu.cpp), on
// the shapes that break kernels: 1/3/7/19/133 tokens, empty segments, rows with no adapter, mixed ranks
// 1..128 in one call, slots that do not adapt a slice, q|k|v with GQA widths.
#include "backends/cpu/lora_cpu_f32.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/lora_cpu.h"

namespace punica {
namespace {

struct Case {
  int tokens;
  int h_in;
  std::vector<int> h_out;   // per slice
  uint32_t seed;
};

struct Batch {
  std::vector<int32_t> seg_start, seg_slot, token_slot;
  std::vector<std::vector<float>> a_store, b_store;   // [slice * slots + slot]
  std::vector<const void*> a_ptr[ops::kMaxLoraSlices], b_ptr[ops::kMaxLoraSlices];
  std::vector<int32_t> rank[ops::kMaxLoraSlices];
  std::vector<float> scale[ops::kMaxLoraSlices];
  int max_rank = 1;
};

constexpr int kSlots = 5;

Batch make_batch(const Case& c, std::mt19937& rng) {
  Batch b;
  std::uniform_real_distribution<float> u(-1, 1);
  std::uniform_int_distribution<int> rank_dist(1, ops::kMaxLoraRank);
  const int ns = static_cast<int>(c.h_out.size());
  for (int i = 0; i < ns; ++i) {
    for (int s = 0; s < kSlots; ++s) {
      // Slot 3 does not adapt slice 1 (null pointers); ranks differ per slot and slice; slot 0 has rank 128.
      const bool adapts = !(s == 3 && i == 1);
      const int r = s == 0 ? ops::kMaxLoraRank : (s == 1 ? 1 : rank_dist(rng));
      std::vector<float> a(static_cast<size_t>(r) * c.h_in), bb(static_cast<size_t>(c.h_out[i]) * r);
      for (float& v : a) v = u(rng);
      for (float& v : bb) v = u(rng);
      b.a_store.push_back(std::move(a));
      b.b_store.push_back(std::move(bb));
      b.a_ptr[i].push_back(adapts ? b.a_store.back().data() : nullptr);
      b.b_ptr[i].push_back(adapts ? b.b_store.back().data() : nullptr);
      b.rank[i].push_back(adapts ? r : 0);
      b.scale[i].push_back(0.25f + 0.5f * s);
      b.max_rank = std::max(b.max_rank, r);
    }
  }
  // Segments: split the tokens into runs with slots drawn from {-1, 0..4}, with empty segments between.
  std::uniform_int_distribution<int> len_dist(0, std::max(1, c.tokens / 3));
  std::uniform_int_distribution<int> slot_dist(-1, kSlots - 1);
  int t = 0;
  b.seg_start.push_back(0);
  while (t < c.tokens) {
    const int len = std::min(c.tokens - t, len_dist(rng));
    t += len;
    b.seg_slot.push_back(slot_dist(rng));
    b.seg_start.push_back(t);
  }
  b.token_slot.assign(static_cast<size_t>(c.tokens), -1);
  for (size_t g = 0; g < b.seg_slot.size(); ++g)
    for (int k = b.seg_start[g]; k < b.seg_start[g + 1]; ++k) b.token_slot[static_cast<size_t>(k)] = b.seg_slot[g];
  return b;
}

void fill_tables(const Case& c, const Batch& b, ops::LoraSliceTable* slices) {
  int off = 0;
  for (size_t i = 0; i < c.h_out.size(); ++i) {
    slices[i].a = b.a_ptr[i].data();
    slices[i].b = b.b_ptr[i].data();
    slices[i].rank = b.rank[i].data();
    slices[i].scale = b.scale[i].data();
    slices[i].h_out = c.h_out[i];
    slices[i].y_col_offset = off;
    off += c.h_out[i];
  }
}

class LoraF32VsReference : public ::testing::TestWithParam<Case> {};

TEST_P(LoraF32VsReference, ShrinkAndExpand) {
  const Case c = GetParam();
  std::mt19937 rng(c.seed);
  SCOPED_TRACE("seed " + std::to_string(c.seed));
  Batch b = make_batch(c, rng);
  const int ns = static_cast<int>(c.h_out.size());
  int y_width = 0;
  for (int h : c.h_out) y_width += h;
  const int64_t x_stride = c.h_in + 3, y_stride = y_width + 5;   // strides wider than the rows
  std::vector<float> x(static_cast<size_t>(c.tokens * x_stride));
  std::uniform_real_distribution<float> u(-1, 1);
  for (float& v : x) v = u(rng);

  ops::LoraSegments seg;
  seg.num_tokens = c.tokens;
  seg.num_segments = static_cast<int>(b.seg_slot.size());
  seg.seg_start = b.seg_start.data();
  seg.seg_slot = b.seg_slot.data();
  seg.token_slot = b.token_slot.data();
  for (size_t g = 0; g < b.seg_slot.size(); ++g) {
    seg.max_seg_len = std::max(seg.max_seg_len, b.seg_start[g + 1] - b.seg_start[g]);
    seg.num_adapted_segments += b.seg_slot[g] >= 0;
  }

  const float kSentinel = -777.0f;
  const size_t v_size = static_cast<size_t>(c.tokens) * ns * b.max_rank;
  std::vector<float> v_ref(v_size, kSentinel), v_f32(v_size, kSentinel);
  ops::LoraShrinkParams sp;
  sp.x = x.data();
  sp.x_stride = x_stride;
  sp.h_in = c.h_in;
  sp.num_slices = ns;
  sp.num_slots = kSlots;
  fill_tables(c, b, sp.slices);
  sp.v_rank_stride = b.max_rank;
  sp.seg = seg;
  sp.v = v_ref.data();
  ASSERT_TRUE(cpu::lora_shrink(sp).is_ok());
  sp.v = v_f32.data();
  ASSERT_TRUE(cpu::lora_shrink_f32(sp).is_ok());
  sp.seg.max_adapted_seg_len = seg.max_seg_len + 1;  // a host fact past the longest segment is refused by name
  const Status bad = cpu::lora_shrink(sp);
  EXPECT_FALSE(bad.is_ok());
  EXPECT_NE(bad.to_string().find("max_adapted_seg_len"), std::string::npos) << bad.to_string();
  sp.seg.max_adapted_seg_len = 0;

  double err = 0, ref = 0;
  for (size_t k = 0; k < v_size; ++k) {
    if (v_ref[k] == kSentinel) {   // not written by the reference: must not be written by f32 either
      ASSERT_EQ(v_f32[k], kSentinel) << "v element " << k;
      continue;
    }
    ASSERT_TRUE(std::isfinite(v_f32[k]));
    err += (v_f32[k] - v_ref[k]) * static_cast<double>(v_f32[k] - v_ref[k]);
    ref += v_ref[k] * static_cast<double>(v_ref[k]);
  }
  if (ref > 0) {
    EXPECT_LT(err / ref, 1e-10) << "shrink NMSE";
  }

  std::vector<float> y0(static_cast<size_t>(c.tokens * y_stride));
  for (float& v : y0) v = u(rng);
  std::vector<float> y_ref = y0, y_f32 = y0;
  ops::LoraExpandParams ep;
  ep.v = v_ref.data();   // both expands read the same v
  ep.v_rank_stride = b.max_rank;
  ep.y_stride = y_stride;
  ep.num_slices = ns;
  ep.num_slots = kSlots;
  fill_tables(c, b, ep.slices);
  ep.seg = seg;
  ep.y = y_ref.data();
  ASSERT_TRUE(cpu::lora_expand(ep).is_ok());
  ep.y = y_f32.data();
  ASSERT_TRUE(cpu::lora_expand_f32(ep).is_ok());
  err = ref = 0;
  for (int t = 0; t < c.tokens; ++t) {
    for (int64_t k = 0; k < y_stride; ++k) {
      const size_t at = static_cast<size_t>(t * y_stride + k);
      if (b.token_slot[static_cast<size_t>(t)] < 0 || k >= y_width) {   // untouched rows and padding
        ASSERT_EQ(y_f32[at], y0[at]) << "token " << t << " col " << k;
        ASSERT_EQ(y_ref[at], y0[at]);
        continue;
      }
      const double d = y_f32[at] - y_ref[at], dr = y_ref[at] - y0[at];
      err += d * d;
      ref += dr * dr;
    }
  }
  if (ref > 0) {
    EXPECT_LT(err / ref, 1e-10) << "expand NMSE";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, LoraF32VsReference,
                         ::testing::Values(Case{1, 64, {64}, 1}, Case{3, 96, {64, 32, 32}, 2},
                                           Case{7, 64, {96, 96}, 3}, Case{19, 200, {128, 32, 32}, 4},
                                           Case{133, 64, {40}, 5}, Case{19, 2048, {2048, 256, 256}, 6},
                                           Case{0, 64, {64}, 7}));

}  // namespace
}  // namespace punica
