// The default model through the built `punica` binary, as a user runs it: `make run`'s exact command
// (a streamed chat answer whose greedy ids equal HF transformers', fixture from
// tools/gen_tokenizer_fixtures.py) and `generate --input` with text prompts.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli_run.h"

namespace {

using punica::cli_test::CliRun;

CliRun run(const std::string& args) { return punica::cli_test::run_punica(args); }

nlohmann::json chat_fixture() {
  std::ifstream f(std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/tokenizer/chat_greedy_smollm2.json");
  return nlohmann::json::parse(f);
}

std::string default_model(const nlohmann::json& fx) {
  return std::string(PUNICA_SOURCE_DIR) + "/" + fx["source"].get<std::string>();
}

std::string join_ids(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s;
}

// The Makefile's `run` target runs exactly this command (see Makefile).
TEST(CliDefaultModel, MakeRunChatAnswersParisWithTransformersIds) {
  const nlohmann::json fx = chat_fixture();
  const std::string model = default_model(fx);
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup.sh";
  ASSERT_EQ(fx["messages"].size(), 1u);
  const std::string question = fx["messages"][0]["content"].get<std::string>();
  CliRun r = run("generate --model " + model + " --chat \"" + question + "\" --max-tokens " +
                 std::to_string(fx["max_new_tokens"].get<int>()) + " --print-ids");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Paris"), std::string::npos) << r.out;
  EXPECT_EQ(r.out, fx["text"].get<std::string>() + "\n");
  const std::string ids = join_ids(fx["generated_ids"].get<std::vector<int>>());
  EXPECT_NE(r.err.find("[punica] ids: " + ids + "\n"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tokens/s"), std::string::npos) << r.err;
}

// Text prompt lines are encoded like --prompt: the same prompt given as text and as its ids (from
// `punica tokenize`) in one batch generate the same tokens, and results come back as JSON lines in order.
TEST(CliDefaultModel, GenerateInputTextPromptsRunAsOneBatch) {
  const nlohmann::json fx = chat_fixture();
  const std::string model = default_model(fx);
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup.sh";
  const std::string text = "The capital of France is";
  CliRun tok = run("tokenize --model " + model + " --text \"" + text + "\" --add-special-tokens");
  ASSERT_EQ(tok.code, 0) << tok.err;
  std::string ids = tok.out;
  while (!ids.empty() && (ids.back() == '\n' || ids.back() == ' ')) ids.pop_back();
  ASSERT_FALSE(ids.empty());

  const std::string input = punica::cli_test::temp_path("default_generate_input.jsonl");
  {
    std::ofstream f(input);
    f << nlohmann::json{{"id", "as-text"}, {"prompt", text}}.dump() << "\n";
    f << "{\"id\": 7, \"adapter\": null, \"tokens\": [" << ids << "]}\n";
    f << nlohmann::json{{"prompt", "Hello"}}.dump() << "\n";
  }
  CliRun r = run("generate --model " + model + " --input " + input + " --max-tokens 6 --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string l0, l1, l2;
  ASSERT_TRUE(std::getline(lines, l0) && std::getline(lines, l1) && std::getline(lines, l2)) << r.out;
  const auto j0 = nlohmann::json::parse(l0), j1 = nlohmann::json::parse(l1), j2 = nlohmann::json::parse(l2);
  EXPECT_EQ(j0["id"], "as-text");
  EXPECT_EQ(j1["id"], 7);
  EXPECT_EQ(j2["id"], 2);
  EXPECT_TRUE(j0["adapter"].is_null());
  ASSERT_EQ(j0["tokens"].size(), 6u);
  EXPECT_EQ(j0["tokens"], j1["tokens"]);
  EXPECT_EQ(j0["text"], j1["text"]);
  EXPECT_FALSE(j0["text"].get<std::string>().empty());
  EXPECT_NE(j0["tokens"], j2["tokens"]);
}

TEST(CliDefaultModel, GenerateInputRejectsBadPromptLines) {
  const nlohmann::json fx = chat_fixture();
  const std::string model = default_model(fx);
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup.sh";
  const std::string input = punica::cli_test::temp_path("default_generate_bad.jsonl");
  std::ofstream(input) << "{\"prompt\": \"hi\"}\n{\"prompt\": \"x\", \"tokens\": [1]}\n";
  CliRun r = run("generate --model " + model + " --input " + input);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(input + ":2: give either 'prompt' (text) or 'tokens' (ids), not both"), std::string::npos)
      << r.err;
  std::ofstream(input) << "{\"prompt\": 5}\n";
  r = run("generate --model " + model + " --input " + input);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(input + ":1: field 'prompt' must be a non-empty string"), std::string::npos) << r.err;
}

}  // namespace
