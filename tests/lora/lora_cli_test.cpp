// `punica score` / `punica generate` with --lora on the fixture mixed batch (the built binary is run as a
// user runs it), and the clear error for an unknown adapter name.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include "lora_test_util.h"

namespace punica {
namespace {

using lora_test::fixture_dir;
using lora_test::read_json;

const char* kAdapters[] = {"qv_r8", "all7_patterns", "rslora_regex", "embed_head", "down_l1_fifo"};

std::string punica_bin() { return std::string(PUNICA_BINARY_DIR) + "/bin/punica"; }

std::string run(const std::string& cmd, int* rc) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  *rc = pclose(p);
  return out;
}

std::string lora_flags(const std::string& model) {
  std::string s;
  for (const char* a : kAdapters) s += " --lora " + std::string(a) + "=" + fixture_dir(model) + "/adapters/" + a;
  return s;
}

class LoraCli : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (FILE* f = std::fopen(punica_bin().c_str(), "r")) {
      std::fclose(f);
    } else {
      GTEST_SKIP() << punica_bin() << " is not built";
    }
  }
};

TEST_P(LoraCli, ScoreMixedBatchMatchesPeft) {
  const std::string m = GetParam();
  int rc = -1;
  const std::string out = run(punica_bin() + " score --model " + fixture_dir(m) + "/base --input " + fixture_dir(m) +
                              "/score_input.jsonl" + lora_flags(m), &rc);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json expected = read_json(fixture_dir(m) + "/expected.json");
  std::istringstream lines(out);
  std::string line;
  size_t r = 0;
  for (; std::getline(lines, line); ++r) {
    ASSERT_LT(r, expected["requests"].size());
    const auto got = nlohmann::json::parse(line)["token_logprobs"].get<std::vector<double>>();
    const auto want = expected["requests"][r]["logprobs"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), want.size()) << "request " << r;
    for (size_t p = 0; p < want.size(); ++p) EXPECT_NEAR(got[p], want[p], 2e-3) << "request " << r << " token " << p + 1;
  }
  EXPECT_EQ(r, expected["requests"].size());
}

TEST_P(LoraCli, GenerateInputBatchMatchesPeftGreedy) {
  const std::string m = GetParam();
  const nlohmann::json expected = read_json(fixture_dir(m) + "/expected.json");
  const std::string input = ::testing::TempDir() + "/lora_generate_" + m + "_" + std::to_string(::getpid()) + ".jsonl";
  {
    std::ofstream f(input);
    for (const auto& r : expected["requests"]) f << nlohmann::json{{"adapter", r["adapter"]}, {"tokens", r["tokens"]}}.dump() << "\n";
  }
  int rc = -1;
  const std::string out = run(punica_bin() + " generate --model " + fixture_dir(m) + "/base --input " + input +
                              " --ignore-eos --max-tokens " + std::to_string(expected["greedy_new_tokens"].get<int>()) +
                              lora_flags(m), &rc);
  ASSERT_EQ(rc, 0) << out;
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  for (const auto& r : expected["requests"]) {
    ASSERT_TRUE(std::getline(lines, line));
    const nlohmann::json got = nlohmann::json::parse(line);
    EXPECT_EQ(got["id"], i) << line;  // no "id" in the input: the line's index
    EXPECT_EQ(got["adapter"], r["adapter"]) << line;
    EXPECT_EQ(got["tokens"].get<std::vector<int>>(), r["greedy"].get<std::vector<int>>()) << "request " << i;
    EXPECT_FALSE(got.contains("text")) << "the fixture model has no tokenizer";
    ++i;
  }
}

TEST_P(LoraCli, UnknownAdapterIsAClearError) {
  const std::string m = GetParam();
  int rc = -1;
  std::string out = run(punica_bin() + " generate --model " + fixture_dir(m) + "/base --tokens 5,6 --adapter nope" +
                        lora_flags(m), &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("unknown adapter 'nope' (loaded with --lora: qv_r8,"), std::string::npos) << out;
  // ctest runs the two instances of this test in parallel processes: one file each.
  const std::string input = ::testing::TempDir() + "/lora_unknown_" + std::to_string(::getpid()) + ".jsonl";
  std::ofstream(input) << "{\"id\": \"a\", \"adapter\": \"missing_one\", \"tokens\": [1, 2]}\n";
  out = run(punica_bin() + " score --model " + fixture_dir(m) + "/base --input " + input + lora_flags(m), &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find(input + ":1: field 'adapter': unknown adapter 'missing_one'"), std::string::npos) << out;
  out = run(punica_bin() + " score --model " + fixture_dir(m) + "/base --input " + input + " --lora broken", &rc);
  EXPECT_NE(out.find("--lora 'broken': expected NAME=PATH"), std::string::npos) << out;
}

// llama.cpp's path: a GGUF base (q/k rows permuted) with GGUF LoRA adapters (q/k lora_b permuted,
// token_embd.lora_a transposed) gives PEFT's float64 numbers. all7_patterns is left out of the comparison:
// its alpha_pattern cannot be expressed in a GGUF adapter (one alpha per file).
TEST(LoraCliGguf, GgufAdaptersOnAGgufBaseMatchPeft) {
  if (FILE* f = std::fopen(punica_bin().c_str(), "r")) {
    std::fclose(f);
  } else {
    GTEST_SKIP() << punica_bin() << " is not built";
  }
  const std::string d = fixture_dir("llama_gqa");
  std::string flags;
  for (const char* a : kAdapters) {
    const std::string name(a);
    const bool gguf = name == "embed_head" || name == "all7_patterns";
    flags += " --lora " + name + "=" + d + (gguf ? "/gguf/" + name + ".gguf" : "/adapters/" + name);
  }
  int rc = -1;
  const std::string out = run(punica_bin() + " score --model " + d + "/gguf/base.gguf --input " + d +
                              "/score_input.jsonl" + flags, &rc);
  ASSERT_EQ(rc, 0) << out;
  const nlohmann::json expected = read_json(d + "/expected.json");
  std::istringstream lines(out);
  std::string line;
  size_t r = 0, compared = 0;
  for (; std::getline(lines, line); ++r) {
    ASSERT_LT(r, expected["requests"].size());
    const nlohmann::json& want_row = expected["requests"][r];
    if (want_row["adapter"] == "all7_patterns") continue;
    const auto got = nlohmann::json::parse(line)["token_logprobs"].get<std::vector<double>>();
    const auto want = want_row["logprobs"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), want.size()) << "request " << r;
    for (size_t p = 0; p < want.size(); ++p, ++compared)
      EXPECT_NEAR(got[p], want[p], 2e-3) << "request " << r << " token " << p + 1;
  }
  EXPECT_EQ(r, expected["requests"].size());
  EXPECT_GT(compared, 40u);
}

INSTANTIATE_TEST_SUITE_P(Models, LoraCli, ::testing::Values("llama_gqa", "qwen2_tied"));

}  // namespace
}  // namespace punica
