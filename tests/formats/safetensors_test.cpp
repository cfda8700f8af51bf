#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "format_test_util.h"

namespace punica {
namespace {

using test::error_mentions;
using test::write_temp;

std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data) {
  test::Bytes b;
  b.put<uint64_t>(header.size());
  b.b.insert(b.b.end(), header.begin(), header.end());
  b.raw(data);
  return b.b;
}

Status open_status(const std::string& name, const std::vector<uint8_t>& bytes) {
  auto f = SafetensorsFile::open(write_temp(name, bytes));
  return f ? Status::ok() : f.status();
}

TEST(Safetensors, ReadsF32F16Bf16AndIgnoresMetadata) {
  // 1.0 and -2.0 in f16 (0x3c00, 0xc000) and bf16 (0x3f80, 0xc000); 0.5f in f32.
  std::vector<uint8_t> data = {0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f, 0x00, 0xc0, 0, 0, 0, 0x3f};
  const std::string header =
      R"({"__metadata__": {"format": "pt"}, "h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},)"
      R"("b": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [4, 8]},)"
      R"("f": {"dtype": "F32", "shape": [], "data_offsets": [8, 12]}})";
  auto f = SafetensorsFile::open(write_temp("ok.safetensors", make_file(header, data)));
  ASSERT_TRUE(f) << f.status().to_string();
  ASSERT_EQ((*f)->tensors().size(), 3u);
  float out[2];
  const SafetensorsTensor* h = (*f)->find("h");
  ASSERT_TRUE((*f)->read_f32(*h, out, 2).is_ok());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  const SafetensorsTensor* b = (*f)->find("b");
  EXPECT_EQ(b->shape, (std::vector<int64_t>{1, 2}));
  ASSERT_TRUE((*f)->read_f32(*b, out, 2).is_ok());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  ASSERT_TRUE((*f)->read_f32(*(*f)->find("f"), out, 1).is_ok());
  EXPECT_EQ(out[0], 0.5f);
  EXPECT_TRUE(error_mentions((*f)->read_f32(*h, out, 1), {"'h'", "asked for 1"}));
}

TEST(Safetensors, RejectsTruncatedAndAbsurdHeaders) {
  EXPECT_TRUE(error_mentions(open_status("tiny.safetensors", {1, 2, 3}), {"tiny.safetensors", "too short"}));
  test::Bytes b;
  b.put<uint64_t>(uint64_t{1} << 40);
  b.b.resize(64, '{');
  EXPECT_TRUE(error_mentions(open_status("big.safetensors", b.b), {"big.safetensors", "above the limit"}));
  test::Bytes c;
  c.put<uint64_t>(1000);
  c.b.resize(100, ' ');
  EXPECT_TRUE(error_mentions(open_status("cut.safetensors", c.b), {"header length 1000", "past the end"}));
}

TEST(Safetensors, RejectsBadJson) {
  EXPECT_TRUE(error_mentions(open_status("json.safetensors", make_file(R"({"a": {)", {})), {"not valid JSON"}));
  EXPECT_TRUE(error_mentions(open_status("arr.safetensors", make_file("[1, 2]", {})), {"not an object"}));
  EXPECT_TRUE(error_mentions(open_status("entry.safetensors", make_file(R"({"a": 3})", {})), {"'a'", "not an object"}));
  EXPECT_TRUE(error_mentions(
      open_status("noshape.safetensors", make_file(R"({"a": {"dtype": "F32", "data_offsets": [0, 0]}})", {})),
      {"'a'", "shape"}));
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_TRUE(error_mentions(open_status("deep.safetensors", make_file(R"({"__metadata__": )" + deep + "}", {})),
                             {"deep.safetensors: header", "nests deeper than 64 levels"}));
  EXPECT_TRUE(error_mentions(open_status("negshape.safetensors",
                                         make_file(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})",
                                                   std::vector<uint8_t>(4))),
                             {"'a'", "non-negative"}));
}

TEST(Safetensors, RejectsOffsetsPastTheEndOverlapsAndSizeMismatch) {
  std::vector<uint8_t> data(16);
  EXPECT_TRUE(error_mentions(
      open_status("past.safetensors", make_file(R"({"a": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}})", data)),
      {"past.safetensors", "'a'", "outside the data region of 16 bytes"}));
  EXPECT_TRUE(error_mentions(
      open_status("overlap.safetensors",
                  make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                            R"("b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", data)),
      {"'b'", "overlaps", "'a'"}));
  EXPECT_TRUE(error_mentions(
      open_status("size.safetensors", make_file(R"({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}})", data)),
      {"'a'", "needs 6 bytes", "span 8"}));
  EXPECT_TRUE(error_mentions(
      open_status("ovf.safetensors",
                  make_file(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", data)),
      {"'a'", "overflows"}));
}

TEST(Safetensors, UnknownDtypeIsUnsupportedAndIntegersCannotBeWeights) {
  std::vector<uint8_t> data(8);
  Status st = open_status("f8.safetensors", make_file(R"({"a": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})", data));
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_TRUE(error_mentions(st, {"'a'", "F8_E4M3"}));
  auto f = SafetensorsFile::open(
      write_temp("i32.safetensors", make_file(R"({"a": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}})", data)));
  ASSERT_TRUE(f);
  float out[2];
  EXPECT_TRUE(error_mentions((*f)->read_f32((*f)->tensors()[0], out, 2), {"'a'", "I32", "expected F32"}));
}

TEST(Safetensors, ShardedIndexResolvesEveryTensor) {
  const std::string dir = std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/formats/hf_qwen2_sharded";
  auto w = open_safetensors_weights(dir + "/model.safetensors.index.json");
  ASSERT_TRUE(w) << w.status().to_string();
  EXPECT_EQ((*w)->tensor_names().size(), 26u);
  const TensorInfo* t = (*w)->find("model.layers.1.self_attn.q_proj.bias");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->storage_type, "BF16");
  EXPECT_EQ(t->shape, (std::vector<int64_t>{32}));
  std::vector<float> v(32);
  EXPECT_TRUE((*w)->read_f32(t->name, v.data(), 32).is_ok());
}

TEST(Safetensors, ShardedIndexRejectsEscapesAndMissingTensors) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "shard_test";
  fs::create_directories(dir);
  const auto shard = make_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", std::vector<uint8_t>(4));
  test::write_temp("shard_test/s1.safetensors", shard);
  auto write_index = [&](const std::string& json) {
    std::ofstream(dir / "model.safetensors.index.json") << json;
    auto w = open_safetensors_weights((dir / "model.safetensors.index.json").string());
    return w ? Status::ok() : w.status();
  };
  EXPECT_TRUE(write_index(R"({"weight_map": {"a": "s1.safetensors"}})").is_ok());
  EXPECT_TRUE(error_mentions(write_index(R"({"weight_map": {"a": "../s1.safetensors"}})"),
                             {"index.json", "plain file name"}));
  EXPECT_TRUE(error_mentions(write_index(R"({"weight_map": {"b": "s1.safetensors"}})"),
                             {"'b'", "s1.safetensors", "no such tensor"}));
  EXPECT_TRUE(error_mentions(write_index(R"({"weights": {}})"), {"weight_map"}));
  EXPECT_TRUE(error_mentions(write_index(R"({"weight_map": {"a": "nope.safetensors"}})"), {"nope.safetensors"}));
}

}  // namespace
}  // namespace punica
