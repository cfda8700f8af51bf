// llama.cpp GGUF LoRA adapters: the fixture GGUFs were converted from the PEFT fixtures the way
// convert_lora_to_gguf.py does it (q/k lora_b permuted, token_embd.lora_a transposed); loading them must
// give back exactly the PEFT weights, in Hugging Face order.
#include "formats/gguf_lora_adapter.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace punica
