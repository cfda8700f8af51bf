#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "format_test_util.h"
#include "formats/model_config.h"

namespace punica {
namespace {

using nlohmann::json;
using test::error_mentions;

json base_config() {
  return {{"model_type", "llama"}, {"hidden_size", 64}, {"intermediate_size", 128}, {"num_hidden_layers", 2},
          {"num_attention_heads", 4}, {"vocab_size", 256}};
}

Expected<ModelConfig> parse(const json& j) { return parse_hf_config(j.dump(), "cfg/config.json"); }

std::string fixture(const std::string& rel) {
  return std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/formats/" + rel;
}

TEST(HfConfig, TransformersLlamaWithLlama3RopeParameters) {
  auto text = read_text_file(fixture("hf_llama/config.json"));
  ASSERT_TRUE(text);
  auto c = parse_hf_config(*text, "config.json");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->architecture, "llama");
  EXPECT_EQ(c->hidden_size, 32);
  EXPECT_EQ(c->head_dim, 16);   // explicit, differs from hidden / heads = 8
  EXPECT_EQ(c->num_key_value_heads, 2);
  EXPECT_EQ(c->rope_theta, 500000.0);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_EQ(c->rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c->rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 32);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->rms_norm_eps, 1e-6);
}

TEST(HfConfig, TransformersQwen2HasBiasAndTiedEmbeddings) {
  auto text = read_text_file(fixture("hf_qwen2_sharded/config.json"));
  ASSERT_TRUE(text);
  auto c = parse_hf_config(*text, "config.json");
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->architecture, "qwen2");
  EXPECT_TRUE(c->attention_bias);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);
  EXPECT_EQ(c->rope_theta, 10000.0);
  EXPECT_EQ(c->bos_token_id, 5);
  EXPECT_EQ(c->eos_token_ids, (std::vector<int64_t>{6}));
  EXPECT_EQ(c->head_dim, 8);
}

TEST(HfConfig, DefaultsAndClassicRopeKeys) {
  auto j = base_config();
  auto c = parse(j);
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->rope_theta, 10000.0);
  EXPECT_FALSE(c->bos_token_id.has_value());
  j["rope_theta"] = 1e6;
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  c = parse(j);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->rope_theta, 1e6);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_EQ(c->rope_scaling.factor, 2.0);
  j["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 4.0}};
  c = parse(j);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kDynamic);
  j["rope_scaling"] = nullptr;
  c = parse(j);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 32.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  c = parse(j);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
}

TEST(HfConfig, RopeParametersPerLayerTypeAndBiasOverrides) {
  auto j = base_config();
  j["model_type"] = "qwen2";
  j["attention_bias"] = false;
  j["rope_parameters"] = {{"full_attention", {{"rope_type", "linear"}, {"factor", 3.0}, {"rope_theta", 2e5}}},
                          {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}};
  auto c = parse(j);
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_EQ(c->rope_theta, 2e5);
  j = base_config();
  j["model_type"] = "mistral";
  j["attention_bias"] = true;
  c = parse(j);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->attention_bias);
  EXPECT_EQ(c->max_position_embeddings, 32768);
}

// The fidelity fixtures (tests/fixtures/model, written by transformers 5) carry rope_parameters; the same
// model written by transformers 4 has rope_theta + rope_scaling. Both must give the same config, so the
// fixtures' float64 references cover the classic form too.
TEST(HfConfig, ClassicRopeScalingEqualsRopeParametersOfTheFixtures) {
  for (const char* name : {"llama3_rope", "llama_linear_long", "llama_dynamic_long"}) {
    SCOPED_TRACE(name);
    auto text = read_text_file(std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/model/" + name + "/config.json");
    ASSERT_TRUE(text);
    json modern = json::parse(*text);
    ASSERT_TRUE(modern.contains("rope_parameters"));
    json classic = modern;
    json scaling = classic["rope_parameters"];
    classic.erase("rope_parameters");
    classic["rope_theta"] = scaling["rope_theta"];
    scaling.erase("rope_theta");
    scaling["type"] = scaling["rope_type"];   // transformers 4.3x wrote both keys
    classic["rope_scaling"] = scaling;
    auto a = parse(modern), b = parse(classic);
    ASSERT_TRUE(a) << a.status().to_string();
    ASSERT_TRUE(b) << b.status().to_string();
    EXPECT_NE(a->rope_scaling.type, RopeScalingType::kNone);
    EXPECT_EQ(a->rope_scaling.type, b->rope_scaling.type);
    EXPECT_EQ(a->rope_scaling.factor, b->rope_scaling.factor);
    EXPECT_EQ(a->rope_scaling.low_freq_factor, b->rope_scaling.low_freq_factor);
    EXPECT_EQ(a->rope_scaling.high_freq_factor, b->rope_scaling.high_freq_factor);
    EXPECT_EQ(a->rope_scaling.original_max_position_embeddings, b->rope_scaling.original_max_position_embeddings);
    EXPECT_EQ(a->rope_theta, b->rope_theta);
    EXPECT_EQ(a->max_position_embeddings, b->max_position_embeddings);
  }
}

TEST(HfConfig, RejectsBadValuesNamingTheKey) {
  struct Case {
    const char* key;
    json value;
    std::vector<std::string> mentions;
  };
  const std::vector<Case> cases = {
      {"hidden_size", nullptr, {"'hidden_size'", "missing"}},
      {"hidden_size", -4, {"'hidden_size'", "out of range"}},
      {"hidden_size", "64", {"'hidden_size'", "expected an integer", "string"}},
      {"vocab_size", int64_t{1} << 40, {"'vocab_size'", "out of range"}},
      {"num_key_value_heads", 3, {"'num_key_value_heads'", "does not divide"}},
      {"num_attention_heads", 5, {"'num_attention_heads'", "does not divide hidden_size"}},
      {"head_dim", 7, {"'head_dim'", "even"}},
      {"rms_norm_eps", 0, {"'rms_norm_eps'", "out of range"}},
      {"tie_word_embeddings", "yes", {"'tie_word_embeddings'", "true or false"}},
      {"eos_token_id", 999, {"'eos_token_id'", "out of range"}},
      {"eos_token_id", json::array({1, "x"}), {"'eos_token_id'", "expected an integer"}},
      {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}, {"rope_scaling.low_freq_factor", "missing"}},
      {"rope_scaling", {{"rope_type", "linear"}, {"factor", -1.0}}, {"rope_scaling.factor", "out of range"}},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", "big"}}, {"rope_parameters.rope_theta"}},
      {"max_position_embeddings", 1.5, {"'max_position_embeddings'", "expected an integer"}},
  };
  for (const auto& k : cases) {
    auto j = base_config();
    if (k.value.is_null()) j.erase(k.key); else j[k.key] = k.value;
    auto c = parse(j);
    ASSERT_FALSE(c) << k.key << " = " << k.value.dump() << " was accepted";
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidFile) << c.status().message();
    auto mentions = k.mentions;
    mentions.push_back("cfg/config.json");
    for (const auto& m : mentions) EXPECT_NE(c.status().message().find(m), std::string::npos)
        << c.status().message() << " (missing \"" << m << "\")";
  }
}

TEST(HfConfig, RejectsUnsupportedModelsRopeTypesAndBrokenJson) {
  auto j = base_config();
  j["model_type"] = "gemma";
  auto c = parse(j);
  EXPECT_EQ(c.status().code(), StatusCode::kUnsupported);
  EXPECT_TRUE(error_mentions(c.status(), {"model_type", "gemma"}));
  j = base_config();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  c = parse(j);
  EXPECT_EQ(c.status().code(), StatusCode::kUnsupported);
  EXPECT_TRUE(error_mentions(c.status(), {"rope_scaling.rope_type", "yarn"}));
  EXPECT_TRUE(error_mentions(parse_hf_config("{\"model_type\": ", "x/config.json").status(),
                             {"x/config.json", "not valid JSON"}));
  EXPECT_TRUE(error_mentions(parse_hf_config("[]", "x/config.json").status(), {"not a JSON object"}));
  // Two deep, equal per-layer-type rope entries: comparing them (operator==) would recurse 100000 levels.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  std::string text = base_config().dump();
  text.insert(text.size() - 1, ", \"rope_parameters\": {\"a\": {\"x\": " + deep + "}, \"b\": {\"x\": " + deep + "}}");
  EXPECT_TRUE(error_mentions(parse_hf_config(text, "x/config.json").status(),
                             {"x/config.json", "JSON nests deeper than 64 levels"}));
}

}  // namespace
}  // namespace punica
