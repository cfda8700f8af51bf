// llama.cpp GGUF LoRA adapters: the fixture GGUFs were converted from the PEFT fixtures the way
// convert_lora_to_gguf.py does it (q/k lora_b permuted, token_embd.lora_a transposed); loading them must
// give back exactly the PEFT weights, in Hugging Face order.
#include "formats/gguf_lora_adapter.h"

#include <gtest/gtest.h>

#include "../formats/format_test_util.h"
#include "formats/peft_adapter.h"
#include "lora_test_util.h"

namespace punica {
namespace {

using lora_test::fixture_base_config;
using lora_test::fixture_dir;

TEST(GgufLoraAdapter, SameWeightsAsThePeftAdapter) {
  const ModelConfig base = fixture_base_config("llama_gqa");
  for (const char* name : {"all7_patterns", "embed_head"}) {
    SCOPED_TRACE(name);
    auto peft = load_peft_adapter(fixture_dir("llama_gqa") + "/adapters/" + name, base);
    ASSERT_TRUE(peft.has_value()) << peft.status().to_string();
    auto gguf = load_lora_adapter(fixture_dir("llama_gqa") + "/gguf/" + name + ".gguf", base);
    ASSERT_TRUE(gguf.has_value()) << gguf.status().to_string();
    EXPECT_EQ(gguf->format, "gguf");
    ASSERT_EQ(gguf->modules.size(), peft->modules.size());
    const double lora_alpha = std::string(name) == "embed_head" ? 12 : 8;
    for (size_t i = 0; i < peft->modules.size(); ++i) {
      const LoraModuleWeights& p = peft->modules[i];
      const LoraModuleWeights& g = gguf->modules[i];
      SCOPED_TRACE(peft_module_key(p.module, p.layer));
      EXPECT_EQ(g.module, p.module);
      EXPECT_EQ(g.layer, p.layer);
      EXPECT_EQ(g.rank, p.rank);
      EXPECT_EQ(g.a, p.a);
      EXPECT_EQ(g.b, p.b);
      // llama.cpp keeps one alpha per adapter (alpha_pattern is lost in conversion): scale = alpha / rank.
      EXPECT_FLOAT_EQ(g.scale, static_cast<float>(lora_alpha / p.rank));
    }
  }
}

TEST(GgufLoraAdapter, RejectsBaseModelsAndWrongArchitecture) {
  auto qwen = load_lora_adapter(fixture_dir("llama_gqa") + "/gguf/embed_head.gguf", fixture_base_config("qwen2_tied"));
  ASSERT_FALSE(qwen.has_value());
  EXPECT_NE(qwen.status().message().find("general.architecture"), std::string::npos) << qwen.status().message();
  auto small = load_lora_adapter(fixture_dir("llama_gqa") + "/gguf/all7_patterns.gguf", fixture_base_config("llama_gqa"),
                                 LoraLoadOptions{4});
  ASSERT_FALSE(small.has_value());
  EXPECT_NE(small.status().message().find("rank 6 outside 1..4"), std::string::npos) << small.status().message();
  auto missing = load_lora_adapter(fixture_dir("llama_gqa") + "/gguf/nope.gguf", fixture_base_config("llama_gqa"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

// Malformed llama.cpp LoRA files, one broken thing each, on the llama_gqa base (hidden 64, kv_dim 32).
class GgufLoraReject : public ::testing::Test {
 protected:
  static constexpr uint32_t kF32 = 0;
  // A valid rank-4 adapter on blk.0.attn_v: lora_a GGUF dims {in 64, rank 4}, lora_b {rank 4, out 32}.
  test::GgufBuilder good() const {
    test::GgufBuilder b;
    b.kv_str("general.architecture", "llama").kv_str("general.type", "adapter").kv_str("adapter.type", "lora");
    b.kv_f32("adapter.lora.alpha", 8.f);
    b.tensor("blk.0.attn_v.weight.lora_a", {64, 4}, kF32, 64 * 4 * 4);
    b.tensor("blk.0.attn_v.weight.lora_b", {4, 32}, kF32, 4 * 32 * 4);
    return b;
  }
  std::string load_error(const test::GgufBuilder& b, int max_rank = 128) const {
    const std::string path = test::write_temp("gguf_lora_reject.gguf", b.build());
    auto ad = load_lora_adapter(path, fixture_base_config("llama_gqa"), LoraLoadOptions{max_rank});
    return ad.has_value() ? "" : ad.status().message();
  }
};

TEST_F(GgufLoraReject, GoodFileLoadsWithAlphaOverRank) {
  const std::string path = test::write_temp("gguf_lora_good.gguf", good().build());
  auto ad = load_lora_adapter(path, fixture_base_config("llama_gqa"));
  ASSERT_TRUE(ad.has_value()) << ad.status().to_string();
  ASSERT_EQ(ad->modules.size(), 1u);
  EXPECT_EQ(ad->modules[0].module, LoraModule::kV);
  EXPECT_EQ(ad->modules[0].rank, 4);
  EXPECT_FLOAT_EQ(ad->modules[0].scale, 2.f);
}

TEST_F(GgufLoraReject, EachBrokenThingIsNamed) {
  struct Case {
    const char* what;
    test::GgufBuilder file;
    std::vector<std::string> mentions;
  };
  std::vector<Case> cases;
  {
    test::GgufBuilder b = good();
    b.kvs.erase(b.kvs.begin() + 1);   // general.type: a base model file, not an adapter
    cases.push_back({"base model", b, {"gguf_lora_reject.gguf", "'general.type'", "not a LoRA adapter"}});
  }
  {
    test::GgufBuilder b = good();
    b.kvs[2] = {"adapter.type", 8, test::Bytes().str("control_vector").b};
    cases.push_back({"adapter type", b, {"'adapter.type'", "control_vector"}});
  }
  {
    test::GgufBuilder b = good();
    b.tensors.pop_back();
    cases.push_back({"missing lora_b", b, {"'blk.0.attn_v.weight.lora_b' missing"}});
  }
  {
    test::GgufBuilder b = good();
    b.tensors[0].dims = {60, 4};
    b.tensors[0].data.resize(60 * 4 * 4);
    b.tensors[1].offset = 1024;
    cases.push_back({"shape of A", b, {"'blk.0.attn_v.weight.lora_a'", "dims [60, 4], expected [64, 4]"}});
  }
  {
    test::GgufBuilder b = good();
    b.tensors[1].dims = {4, 64};
    b.tensors[1].data.resize(4 * 64 * 4);
    cases.push_back({"shape of B", b, {"'blk.0.attn_v.weight.lora_b'", "expected [rank, 32]"}});
  }
  {
    test::GgufBuilder b = good();
    std::fill(b.tensors[1].data.begin(), b.tensors[1].data.end(), 0xff);   // every float a NaN
    cases.push_back({"NaN", b, {"'blk.0.attn_v.weight.lora_b'", "non-finite"}});
  }
  {
    test::GgufBuilder b = good();
    b.tensors[0].name = "blk.7.attn_v.weight.lora_a";   // the base has 2 layers
    b.tensors[1].name = "blk.7.attn_v.weight.lora_b";
    cases.push_back({"layer", b, {"'blk.7.attn_v.weight.lora_a'", "not a supported LoRA target"}});
  }
  {
    test::GgufBuilder b = good();
    b.tensor("blk.0.attn_norm.weight", {64}, kF32, 64 * 4);
    cases.push_back({"non-LoRA tensor", b, {"'blk.0.attn_norm.weight'", "not a .lora_a/.lora_b tensor"}});
  }
  {
    test::GgufBuilder b = good();
    b.kvs[3] = {"adapter.lora.alpha", 8, test::Bytes().str("eight").b};
    cases.push_back({"alpha type", b, {"'adapter.lora.alpha'", "expected a number"}});
  }
  for (const Case& c : cases) {
    const std::string e = load_error(c.file);
    ASSERT_NE(e, "") << c.what << " was accepted";
    for (const std::string& m : c.mentions) EXPECT_NE(e.find(m), std::string::npos) << c.what << ": " << e;
  }
  EXPECT_NE(load_error(good(), /*max_rank=*/2).find("rank 4 outside 1..2"), std::string::npos);
}

}  // namespace
}  // namespace punica
