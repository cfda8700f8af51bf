// PEFT adapter loading: the modules, ranks and scales PEFT itself chose (recorded by
// tools/gen_lora_fixtures.py), PEFT's key-matching rules, and one clear rejection per malformed case.
#include "formats/peft_adapter.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "formats/safetensors.h"
#include "lora_test_util.h"

namespace punica {
namespace {

namespace fs = std::filesystem;
using lora_test::fixture_base_config;
using lora_test::fixture_dir;
using lora_test::read_json;

class PeftFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(PeftFixture, ModulesRanksAndScalesMatchPeft) {
  const std::string model = GetParam();
  const ModelConfig base = fixture_base_config(model);
  const nlohmann::json expected = read_json(fixture_dir(model) + "/expected.json");
  for (const auto& [name, modules] : expected["peft_modules"].items()) {
    SCOPED_TRACE(name);
    auto ad = load_peft_adapter(fixture_dir(model) + "/adapters/" + name, base);
    ASSERT_TRUE(ad.has_value()) << ad.status().to_string();
    EXPECT_EQ(ad->modules.size(), modules.size());
    for (const LoraModuleWeights& w : ad->modules) {
      const std::string key = peft_module_key(w.module, w.layer);
      ASSERT_TRUE(modules.contains(key)) << key << " adapted by us, not by PEFT";
      EXPECT_EQ(w.rank, modules[key]["r"].get<int>()) << key;
      EXPECT_FLOAT_EQ(w.scale, modules[key]["scaling"].get<double>()) << key;
      EXPECT_EQ(w.a.size(), static_cast<size_t>(w.rank * w.in_features)) << key;
      EXPECT_EQ(w.b.size(), static_cast<size_t>(w.rank * w.out_features)) << key;
      double norm = 0;
      for (float v : w.b) norm += std::fabs(v);
      EXPECT_GT(norm, 0) << key << ": B must be non-zero in the fixtures";
    }
  }
}

TEST_P(PeftFixture, ValuesAreTheFileValues) {
  const std::string model = GetParam();
  auto ad = load_peft_adapter(fixture_dir(model) + "/adapters/embed_head", fixture_base_config(model));
  ASSERT_TRUE(ad.has_value()) << ad.status().to_string();
  auto st = SafetensorsFile::open(fixture_dir(model) + "/adapters/embed_head/adapter_model.safetensors");
  ASSERT_TRUE(st.has_value());
  const LoraModuleWeights* emb = ad->find(LoraModule::kEmbedTokens, -1);
  ASSERT_NE(emb, nullptr);
  const SafetensorsTensor* a = (*st)->find("base_model.model.model.embed_tokens.lora_embedding_A");
  ASSERT_NE(a, nullptr);
  std::vector<float> want(static_cast<size_t>(a->numel()));
  ASSERT_TRUE((*st)->read_f32(*a, want.data(), a->numel()).is_ok());
  EXPECT_EQ(emb->a, want);
  EXPECT_EQ(emb->in_features, 128);
  EXPECT_EQ(emb->out_features, 64);
}

INSTANTIATE_TEST_SUITE_P(Models, PeftFixture, ::testing::Values("llama_gqa", "qwen2_tied"));

PeftLoraConfig parse_ok(const std::string& text) {
  auto c = parse_peft_lora_config(text, "adapter_config.json");
  EXPECT_TRUE(c.has_value()) << c.status().to_string();
  return c.has_value() ? *c : PeftLoraConfig{};
}

TEST(PeftMatching, PatternKeyIsFirstMatchInFileOrderWithSuffixSemantics) {
  // Both keys match layers.1...k_proj; PEFT takes the first in file order, not alphabetical order.
  PeftLoraConfig c = parse_ok(R"({"r": 4, "lora_alpha": 8, "target_modules": ["k_proj"],
      "rank_pattern": {"self_attn.k_proj": 6, "k_proj": 2}})");
  EXPECT_EQ(peft_module_rank(c, "model.layers.1.self_attn.k_proj")->rank, 6);
  c = parse_ok(R"({"r": 4, "lora_alpha": 8, "target_modules": ["k_proj"],
      "rank_pattern": {"k_proj": 2, "self_attn.k_proj": 6}})");
  EXPECT_EQ(peft_module_rank(c, "model.layers.1.self_attn.k_proj")->rank, 2);
  // A pattern matches only at a "." boundary and up to the end of the key.
  c = parse_ok(R"({"r": 4, "lora_alpha": 8, "target_modules": ["k_proj"], "rank_pattern": {"_proj": 2, "k_pro": 3}})");
  EXPECT_EQ(peft_module_rank(c, "model.layers.1.self_attn.k_proj")->rank, 4);
  // Patterns are regexes.
  c = parse_ok(R"({"r": 4, "lora_alpha": 8, "target_modules": ["k_proj"], "alpha_pattern": {"layers\\.[01]\\.self_attn\\.k_proj": 2}})");
  auto mr = peft_module_rank(c, "model.layers.1.self_attn.k_proj");
  EXPECT_EQ(mr->rank, 4);
  EXPECT_FLOAT_EQ(mr->scale, 0.5f);
}

TEST(PeftMatching, TargetListRegexAndLayers) {
  PeftLoraConfig c = parse_ok(R"({"r": 4, "target_modules": "model\\.layers\\.1\\..*_proj"})");
  EXPECT_TRUE(*peft_target_module_matches(c, "model.layers.1.mlp.up_proj"));
  EXPECT_FALSE(*peft_target_module_matches(c, "model.layers.0.mlp.up_proj"));
  EXPECT_FALSE(*peft_target_module_matches(c, "xmodel.layers.1.mlp.up_proj"));   // full match
  c = parse_ok(R"({"r": 4, "target_modules": ["up_proj", "lm_head", "embed_tokens"], "layers_to_transform": 1})");
  EXPECT_TRUE(*peft_target_module_matches(c, "model.layers.1.mlp.up_proj"));
  EXPECT_FALSE(*peft_target_module_matches(c, "model.layers.0.mlp.up_proj"));
  EXPECT_TRUE(*peft_target_module_matches(c, "lm_head"));                 // exact key: no layer filter
  EXPECT_FALSE(*peft_target_module_matches(c, "model.embed_tokens"));     // suffix match: no layer index
  EXPECT_FALSE(*peft_target_module_matches(c, "model.layers.1.mlp.xup_proj"));
  c = parse_ok(R"({"r": 4, "target_modules": ["q_proj"], "exclude_modules": ["layers.0.self_attn.q_proj"]})");
  EXPECT_FALSE(*peft_target_module_matches(c, "model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(*peft_target_module_matches(c, "model.layers.1.self_attn.q_proj"));
  c = parse_ok(R"({"r": 4, "target_modules": "all-linear"})");
  EXPECT_TRUE(*peft_target_module_matches(c, "model.layers.1.mlp.down_proj"));
  EXPECT_FALSE(*peft_target_module_matches(c, "lm_head"));
}

TEST(PeftMatching, RsLoraScale) {
  PeftLoraConfig c = parse_ok(R"({"r": 16, "lora_alpha": 4, "use_rslora": true, "target_modules": ["q_proj"]})");
  EXPECT_FLOAT_EQ(peft_module_rank(c, "model.layers.0.self_attn.q_proj")->scale, 1.0f);
}

// Malformed adapters: each is a copy of a good fixture with one thing broken.
class PeftReject : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("punica_peft_reject_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy(fixture_dir("llama_gqa") + "/adapters/qv_r8", dir_, fs::copy_options::recursive);
    config_ = read_json((dir_ / "adapter_config.json").string());
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write_config() { std::ofstream((dir_ / "adapter_config.json").string()) << config_.dump(1); }
  // The qv_r8 tensors, as a map that a test edits and writes back.
  std::map<std::string, lora_test::StTensor> tensors() {
    auto st = SafetensorsFile::open((dir_ / "adapter_model.safetensors").string());
    std::map<std::string, lora_test::StTensor> out;
    for (const SafetensorsTensor& t : (*st)->tensors()) {
      lora_test::StTensor v{t.shape, std::vector<float>(static_cast<size_t>(t.numel()))};
      EXPECT_TRUE((*st)->read_f32(t, v.values.data(), t.numel()).is_ok());
      out[t.name] = v;
    }
    return out;
  }
  void write_tensors(const std::map<std::string, lora_test::StTensor>& t) {
    lora_test::write_safetensors((dir_ / "adapter_model.safetensors").string(), t);
  }
  // Loads and returns the error message (empty if it loaded).
  std::string load_error(int max_rank = 128) {
    auto ad = load_peft_adapter(dir_.string(), fixture_base_config("llama_gqa"), LoraLoadOptions{max_rank});
    return ad.has_value() ? "" : ad.status().message();
  }
  fs::path dir_;
  nlohmann::json config_;
};

const char* kQ1A = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight";
const char* kQ1B = "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight";

TEST_F(PeftReject, GoodCopyLoads) { EXPECT_EQ(load_error(), ""); }

TEST_F(PeftReject, PickleOnly) {
  fs::remove(dir_ / "adapter_model.safetensors");
  std::ofstream((dir_ / "adapter_model.bin").string()) << "not read";
  const std::string e = load_error();
  EXPECT_NE(e.find("adapter_model.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("pickle"), std::string::npos) << e;
}

TEST_F(PeftReject, Dora) {
  config_["use_dora"] = true;
  write_config();
  const std::string e = load_error();
  EXPECT_NE(e.find("adapter_config.json: field 'use_dora'"), std::string::npos) << e;
  EXPECT_NE(e.find("DoRA"), std::string::npos) << e;
}

TEST_F(PeftReject, Bias) {
  config_["bias"] = "lora_only";
  write_config();
  const std::string e = load_error();
  EXPECT_NE(e.find("field 'bias': \"lora_only\" is not supported"), std::string::npos) << e;
}

TEST_F(PeftReject, ModulesToSave) {
  config_["modules_to_save"] = {"lm_head"};
  write_config();
  const std::string e = load_error();
  EXPECT_NE(e.find("field 'modules_to_save'"), std::string::npos) << e;
}

TEST_F(PeftReject, UnknownTargetModule) {
  config_["target_modules"] = {"q_proj", "c_attn"};
  write_config();
  const std::string e = load_error();
  EXPECT_NE(e.find("unknown target module 'c_attn'"), std::string::npos) << e;
}

TEST_F(PeftReject, TargetThatCannotCarryLora) {
  config_["target_modules"] = {"q_proj", "input_layernorm"};
  write_config();
  const std::string e = load_error();
  // layers_to_transform = [1] in this adapter: only layer 1's norm is selected.
  EXPECT_NE(e.find("adapter_config.json: field 'target_modules' selects module 'model.layers.1.input_layernorm', "
                   "which cannot carry LoRA"), std::string::npos) << e;
}

TEST_F(PeftReject, RankAboveMaximum) {
  const std::string e = load_error(/*max_rank=*/4);
  EXPECT_NE(e.find("rank 8, above the maximum LoRA rank 4"), std::string::npos) << e;
}

TEST_F(PeftReject, ShapeMismatch) {
  auto t = tensors();
  t[kQ1B] = lora_test::StTensor{{60, 8}, std::vector<float>(480, 0.1f)};
  write_tensors(t);
  const std::string e = load_error();
  EXPECT_NE(e.find(std::string("tensor '") + kQ1B + "': shape [60, 8], expected [64, 8]"), std::string::npos) << e;
}

TEST_F(PeftReject, RankPatternDisagreesWithTensor) {
  config_["rank_pattern"] = {{"q_proj", 4}};
  write_config();
  const std::string e = load_error();
  EXPECT_NE(e.find("shape [8, 64], expected [4, 64]"), std::string::npos) << e;
}

TEST_F(PeftReject, NanWeight) {
  auto t = tensors();
  t[kQ1A].values[5] = std::numeric_limits<float>::quiet_NaN();
  write_tensors(t);
  const std::string e = load_error();
  EXPECT_NE(e.find(std::string("tensor '") + kQ1A + "': non-finite value"), std::string::npos) << e;
}

TEST_F(PeftReject, InfWeight) {
  auto t = tensors();
  t[kQ1B].values[0] = std::numeric_limits<float>::infinity();
  write_tensors(t);
  EXPECT_NE(load_error().find("non-finite value"), std::string::npos);
}

TEST_F(PeftReject, MissingB) {
  auto t = tensors();
  t.erase(kQ1B);
  write_tensors(t);
  const std::string e = load_error();
  EXPECT_NE(e.find("module 'model.layers.1.self_attn.q_proj': missing its lora_B tensor"), std::string::npos) << e;
}

TEST_F(PeftReject, TensorForUntargetedModule) {
  auto t = tensors();
  t["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"] = t[kQ1A];
  write_tensors(t);
  const std::string e = load_error();
  EXPECT_NE(e.find("'model.layers.0.self_attn.q_proj' is not selected by target_modules"), std::string::npos) << e;
}

TEST_F(PeftReject, DoraMagnitudeTensor) {
  auto t = tensors();
  t["base_model.model.model.layers.1.self_attn.q_proj.lora_magnitude_vector"] = lora_test::StTensor{{64}, std::vector<float>(64, 1)};
  write_tensors(t);
  EXPECT_NE(load_error().find("DoRA magnitude"), std::string::npos);
}

TEST_F(PeftReject, AdapterNameInTensorNamesIsAccepted) {
  auto t = tensors();
  std::map<std::string, lora_test::StTensor> renamed;
  for (auto& [name, v] : t) {
    std::string n = name;
    n.replace(n.find(".weight"), 7, ".default.weight");
    renamed[n] = v;
  }
  write_tensors(renamed);
  EXPECT_EQ(load_error(), "");
}

TEST_F(PeftReject, BadJsonAndBadFields) {
  std::ofstream((dir_ / "adapter_config.json").string()) << "{ not json";
  EXPECT_NE(load_error().find("adapter_config.json: not valid JSON"), std::string::npos);
  config_["r"] = -3;
  write_config();
  EXPECT_NE(load_error().find("field 'r': expected a positive integer"), std::string::npos);
  config_["r"] = 8;
  config_["rank_pattern"] = {{"q_proj", "big"}};
  write_config();
  EXPECT_NE(load_error().find("field 'rank_pattern.q_proj'"), std::string::npos);
  config_["rank_pattern"] = {{"q_proj(", 4}};
  write_config();
  EXPECT_NE(load_error().find("does not compile"), std::string::npos);
}

// Untrusted config text that used to crash or hang: ordered_json copies nested objects recursively
// (stack overflow on deep nesting), libstdc++'s regex compiler recurses per group, and its backtracking
// matcher is exponential on nested quantifiers.
TEST_F(PeftReject, DeeplyNestedJsonIsRejectedNotCrashed) {
  config_["revision"] = nullptr;
  std::string text = config_.dump();
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  text.replace(text.find("\"revision\":null"), 15, "\"revision\":" + deep);
  std::ofstream((dir_ / "adapter_config.json").string()) << text;
  const std::string e = load_error();
  EXPECT_NE(e.find("adapter_config.json: JSON nests deeper than 64 levels"), std::string::npos) << e;
}

TEST_F(PeftReject, HostileRegexesAreBoundedOrRejected) {
  config_.erase("layers_to_transform");
  config_.erase("layers_pattern");
  config_["target_modules"] = std::string(50000, '(') + "q_proj" + std::string(50000, ')');
  write_config();
  std::string e = load_error();
  EXPECT_NE(e.find("adapter_config.json: field 'target_modules': regex of 100006 characters"), std::string::npos) << e;
  config_["target_modules"] = std::string(40, '(') + "q_proj" + std::string(40, ')');
  write_config();
  e = load_error();
  EXPECT_NE(e.find("field 'target_modules': regex '((((("), std::string::npos) << e;
  EXPECT_NE(e.find("nests groups deeper than 32"), std::string::npos) << e;
  // Exponential for a backtracking matcher on every 30-character module key; polynomial here. The
  // pattern matches nothing, so the adapter selects no module.
  config_["target_modules"] = "(.*)*(.*)*(.*)*(.*)*(.*)*(.*)*x";
  write_config();
  e = load_error();
  EXPECT_NE(e.find("field 'target_modules' selects no module"), std::string::npos) << e;
  config_["target_modules"] = "(q)_proj\\1";   // a back-reference: not supported by the polynomial matcher
  write_config();
  e = load_error();
  EXPECT_NE(e.find("field 'target_modules': regex '(q)_proj\\1' does not compile"), std::string::npos) << e;
  config_ = read_json((fs::path(fixture_dir("llama_gqa")) / "adapters/qv_r8/adapter_config.json").string());
  config_["layers_pattern"] = "(l*)*ayers";
  write_config();
  e = load_error();
  EXPECT_NE(e.find("field 'layers_pattern': '(l*)*ayers' is not supported"), std::string::npos) << e;
}

// The fixture adapter configs and deterministic byte mutations of them through the fuzz entry point: every
// input must return (an error or a config), never crash, hang or trip a sanitizer.
TEST(PeftFuzz, AdapterConfigMutationsReturn) {
  std::vector<std::string> seeds;
  for (const char* m : {"llama_gqa", "qwen2_tied"})
    for (const auto& e : fs::directory_iterator(fixture_dir(m) + "/adapters")) {
      std::ifstream in(e.path() / "adapter_config.json");
      seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  ASSERT_GE(seeds.size(), 8u);
  // The libFuzzer corpus (fuzz/corpus/peft_config) holds what the fuzzer found, e.g. a number that
  // overflows a double (nlohmann throws out_of_range for it even when parse errors are not thrown).
  const fs::path corpus = fs::path(PUNICA_SOURCE_DIR) / "fuzz" / "corpus" / "peft_config";
  ASSERT_TRUE(fs::exists(corpus / "number_overflow")) << corpus;
  for (const auto& e : fs::directory_iterator(corpus)) {
    std::ifstream in(e.path(), std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::mt19937_64 rng(4242);
  const char kBytes[] = "[]{}\"\\:,0123456789.*+?()|^$-eE \n";
  for (const std::string& s : seeds) {
    fuzz_peft_config_one_input(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    for (int i = 0; i < 150; ++i) {
      std::string m = s;
      for (int e = 1 + static_cast<int>(rng() % 4); e > 0 && !m.empty(); --e) {
        const size_t at = rng() % m.size();
        switch (rng() % 4) {
          case 0: m[at] = kBytes[rng() % (sizeof kBytes - 1)]; break;           // a JSON/regex metacharacter
          case 1: m.erase(at, 1 + rng() % 16); break;
          case 2: m.insert(at, m.substr(rng() % m.size(), 1 + rng() % 32)); break;
          default: m.resize(at); break;                                           // truncation
        }
      }
      fuzz_peft_config_one_input(reinterpret_cast<const uint8_t*>(m.data()), m.size());
    }
  }
}

}  // namespace
}  // namespace punica
