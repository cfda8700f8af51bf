// Malformed tokenizer files: each is rejected with one message naming the file and the field.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <cstring>
#include <nlohmann/json.hpp>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace punica {
namespace {

using nlohmann::json;

// A minimal valid byte-level tokenizer.json: vocab a b c ab abc, merges "a b", "ab c".
json good_json() {
  return json::parse(R"({
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}, "merges": ["a b", "ab c"]},
    "added_tokens": [{"id": 5, "content": "<s>", "special": true}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
    "decoder": {"type": "ByteLevel"}
  })");
}

std::string load_error(const json& j) {
  auto t = Tokenizer::from_json_text(j.dump(), "bad/tokenizer.json");
  return t.has_value() ? "" : t.status().to_string();
}

TEST(TokenizerJsonErrors, GoodFileLoads) {
  auto t = Tokenizer::from_json_text(good_json().dump(), "good/tokenizer.json");
  ASSERT_TRUE(t.has_value()) << t.status().to_string();
  EXPECT_EQ((*t)->encode("abcab<s>"), (std::vector<int32_t>{4, 3, 5}));
  EXPECT_TRUE((*t)->is_special(5));
  // Without a decoder, HF joins the tokens with spaces.
  json j = good_json();
  j.erase("decoder");
  auto plain = Tokenizer::from_json_text(j.dump(), "good/tokenizer.json");
  ASSERT_TRUE(plain.has_value()) << plain.status().to_string();
  EXPECT_EQ((*plain)->decode(std::vector<int32_t>{4, 3, 5}), "abc ab <s>");
}

TEST(TokenizerJsonErrors, EachDefectNamesFileAndField) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"no model", [](json& j) { j.erase("model"); }, "model: missing"},
      {"no vocab", [](json& j) { j["model"].erase("vocab"); }, "model.vocab: missing"},
      {"no merges", [](json& j) { j["model"].erase("merges"); }, "model.merges: missing"},
      {"unknown merge token", [](json& j) { j["model"]["merges"][1] = "ab zz"; }, "model.merges: entry 1"},
      {"merge result not in vocab", [](json& j) { j["model"]["merges"].push_back("c a"); }, "not in model.vocab"},
      {"malformed merge", [](json& j) { j["model"]["merges"][0] = "a b c"; }, "not two tokens"},
      {"id out of range", [](json& j) { j["model"]["vocab"]["c"] = 99; }, "outside [0, 5)"},
      {"duplicate id", [](json& j) { j["model"]["vocab"]["c"] = 1; }, "is used twice"},
      {"non-integer id", [](json& j) { j["model"]["vocab"]["c"] = "2"; }, "non-integer id"},
      {"unsupported model", [](json& j) { j["model"]["type"] = "WordPiece"; }, "model.type"},
      {"added token gap", [](json& j) { j["added_tokens"][0]["id"] = 9; }, "added_tokens[0].id"},
      {"added token clash", [](json& j) { j["added_tokens"][0]["id"] = 1; }, "added_tokens[0]: id 1"},
      {"added token no content", [](json& j) { j["added_tokens"][0].erase("content"); }, "added_tokens[0]"},
      {"unknown split regex",
       [](json& j) {
         j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "\\w+"}}}, {"behavior", "Isolated"}};
       },
       "pre_tokenizer.pattern"},
      {"unknown normalizer", [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "normalizer"},
      {"unknown decoder", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "decoder"},
      {"unk token missing", [](json& j) { j["model"]["unk_token"] = "<unk>"; }, "model.unk_token"},
      {"post-processor id out of range",
       [](json& j) {
         j["post_processor"] = json::parse(R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}},
           {"Sequence": {"id": "A"}}], "special_tokens": {"<s>": {"ids": [77]}}})");
       },
       "post_processor"},
  };
  for (const Case& c : cases) {
    json j = good_json();
    c.edit(j);
    std::string err = load_error(j);
    EXPECT_NE(err.find("bad/tokenizer.json"), std::string::npos) << c.what << ": " << err;
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.what << ": " << err;
  }
  EXPECT_NE(Tokenizer::from_json_text("{\"model\": ", "bad/tokenizer.json").status().message().find("not valid JSON"),
            std::string::npos);
  EXPECT_NE(Tokenizer::from_json_text("[1, 2]", "bad/tokenizer.json").status().message().find("JSON object"),
            std::string::npos);
  EXPECT_EQ(Tokenizer::load("/nonexistent/dir/tokenizer.json").status().code(), StatusCode::kIoError);
}

// Writes GGUF v3 metadata (no tensors) for the error tests.
class GgufWriter {
 public:
  void str(const std::string& key, const std::string& v) {
    header(key, 8);
    put_str(v);
  }
  void u32(const std::string& key, uint32_t v) {
    header(key, 4);
    put(v);
  }
  void strings(const std::string& key, const std::vector<std::string>& v) {
    header(key, 9);
    put(uint32_t{8});
    put(uint64_t(v.size()));
    for (const auto& s : v) put_str(s);
  }
  void i32s(const std::string& key, const std::vector<int32_t>& v) {
    header(key, 9);
    put(uint32_t{5});
    put(uint64_t(v.size()));
    for (int32_t x : v) put(x);
  }
  void f32s(const std::string& key, const std::vector<float>& v) {
    header(key, 9);
    put(uint32_t{6});
    put(uint64_t(v.size()));
    for (float x : v) put(x);
  }
  // Raw array header with a claimed count and no payload (absurd sizes).
  void claimed_array(const std::string& key, uint32_t type, uint64_t count) {
    header(key, 9);
    put(type);
    put(count);
  }
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out;
    auto put_raw = [&](const void* p, size_t n) {
      out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    };
    uint32_t magic = 0x46554747u, version = 3;
    uint64_t n_tensors = 0;
    put_raw(&magic, 4);
    put_raw(&version, 4);
    put_raw(&n_tensors, 8);
    put_raw(&n_kv_, 8);
    out.insert(out.end(), body_.begin(), body_.end());
    return out;
  }

 private:
  template <typename T>
  void put(T v) {
    body_.insert(body_.end(), reinterpret_cast<uint8_t*>(&v), reinterpret_cast<uint8_t*>(&v) + sizeof(T));
  }
  void put_str(const std::string& s) {
    put(uint64_t(s.size()));
    body_.insert(body_.end(), s.begin(), s.end());
  }
  void header(const std::string& key, uint32_t type) {
    ++n_kv_;
    put_str(key);
    put(type);
  }
  std::vector<uint8_t> body_;
  uint64_t n_kv_ = 0;
};

std::string gguf_error(const GgufWriter& w) {
  auto bytes = w.bytes();
  auto g = GgufFile::parse(bytes.data(), bytes.size(), "bad.gguf");
  if (!g) return g.status().to_string();
  auto t = Tokenizer::from_gguf(**g);
  return t.has_value() ? "" : t.status().to_string();
}

// Byte-level vocabulary "a b ab" + control token.
GgufWriter good_gguf(const std::string& skip = "") {
  GgufWriter w;
  if (skip != "model") w.str("tokenizer.ggml.model", "gpt2");
  if (skip != "tokens") w.strings("tokenizer.ggml.tokens", {"a", "b", "ab", "<|end|>"});
  if (skip != "token_type") w.i32s("tokenizer.ggml.token_type", {1, 1, 1, 3});
  if (skip != "merges") w.strings("tokenizer.ggml.merges", {"a b"});
  if (skip != "eos") w.u32("tokenizer.ggml.eos_token_id", 3);
  return w;
}

TEST(TokenizerGgufErrors, GoodFileLoads) {
  auto bytes = good_gguf().bytes();
  auto g = GgufFile::parse(bytes.data(), bytes.size(), "good.gguf");
  ASSERT_TRUE(g.has_value()) << g.status().to_string();
  auto t = Tokenizer::from_gguf(**g);
  ASSERT_TRUE(t.has_value()) << t.status().to_string();
  EXPECT_EQ((*t)->encode("abab<|end|>"), (std::vector<int32_t>{2, 2, 3}));
  EXPECT_EQ((*t)->eos_id(), 3);
  EXPECT_TRUE((*t)->is_stop(3));
}

TEST(TokenizerGgufErrors, EachDefectNamesTheKey) {
  EXPECT_NE(gguf_error(good_gguf("model")).find("tokenizer.ggml.model"), std::string::npos);
  EXPECT_NE(gguf_error(good_gguf("tokens")).find("tokenizer.ggml.tokens: missing"), std::string::npos);
  EXPECT_NE(gguf_error(good_gguf("merges")).find("tokenizer.ggml.merges: missing"), std::string::npos);
  {
    GgufWriter w = good_gguf("model");
    w.str("tokenizer.ggml.model", "bert");
    EXPECT_NE(gguf_error(w).find("'bert' is not supported"), std::string::npos);
  }
  {
    GgufWriter w = good_gguf("tokens");
    w.i32s("tokenizer.ggml.tokens", {1, 2, 3});
    EXPECT_NE(gguf_error(w).find("tokenizer.ggml.tokens: expected an array of strings"), std::string::npos);
  }
  {
    GgufWriter w = good_gguf("token_type");
    w.i32s("tokenizer.ggml.token_type", {1, 1});
    EXPECT_NE(gguf_error(w).find("tokenizer.ggml.token_type: has 2 entries"), std::string::npos);
  }
  {
    GgufWriter w = good_gguf("merges");
    w.strings("tokenizer.ggml.merges", {"a zz"});
    EXPECT_NE(gguf_error(w).find("tokenizer.ggml.merges: entry 0 'a zz'"), std::string::npos);
  }
  {
    GgufWriter w = good_gguf("eos");
    w.u32("tokenizer.ggml.eos_token_id", 4000);
    EXPECT_NE(gguf_error(w).find("tokenizer.ggml.eos_token_id: 4000 is out of range"), std::string::npos);
  }
  {
    GgufWriter w = good_gguf("model");
    w.str("tokenizer.ggml.model", "llama");  // SentencePiece needs scores
    EXPECT_NE(gguf_error(w).find("tokenizer.ggml.scores: missing"), std::string::npos);
    w.f32s("tokenizer.ggml.scores", {0.f});
    EXPECT_NE(gguf_error(w).find("tokenizer.ggml.scores: has 1 entries"), std::string::npos);
  }
  {
    GgufWriter w = good_gguf("model");
    w.str("tokenizer.ggml.model", "llama");
    w.f32s("tokenizer.ggml.scores", {0.f, NAN, 1.f, 0.f});  // NaN would break the merge sort
    EXPECT_NE(gguf_error(w).find("tokenizer.ggml.scores: entry 1 is not a finite number"), std::string::npos);
  }
  {
    // An absurd count that the bytes cannot back is rejected by the GGUF parser before any allocation.
    GgufWriter w = good_gguf("tokens");
    w.claimed_array("tokenizer.ggml.tokens", 8, uint64_t{1} << 60);
    std::string err = gguf_error(w);
    EXPECT_NE(err, "");
    EXPECT_NE(err.find("bad.gguf"), std::string::npos) << err;
  }
}

// Linear-ish merges: a 1 MB input with no pre-tokenizer splits (the worst case: one huge word) must not
// blow up quadratically. Timing bounds are loose (CI machines, sanitizers); a quadratic merge loop would
// take minutes here.
TEST(TokenizerComplexity, OneMegabyteWordAndText) {
  json j = good_json();
  j["pre_tokenizer"] = nullptr;  // the whole input is one word
  auto t = Tokenizer::from_json_text(j.dump(), "perf/tokenizer.json");
  ASSERT_TRUE(t.has_value()) << t.status().to_string();
  std::string big;
  while (big.size() < (1u << 20)) big += "abcab";
  auto start = std::chrono::steady_clock::now();
  auto ids = (*t)->encode(big);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ((*t)->decode(ids), big);
  EXPECT_LT(seconds, 10.0);
  std::printf("[ time ] 1 MiB single word: %.3f s, %zu tokens\n", seconds, ids.size());
}

}  // namespace
}  // namespace punica
