// End-to-end tests of `punica score` and `punica generate`: run the built binary on the tiny fixtures and
// check its stdout against the float64 references of tools/gen_model_fixtures.py, and its errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_run.h"

namespace {

const std::string kFixtures = std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/model/";

using punica::cli_test::CliRun;

CliRun run(const std::string& args) { return punica::cli_test::run_punica(args); }

std::string write_file(const std::string& name, const std::string& text) {
  return punica::cli_test::write_temp_file(name, text);
}

nlohmann::json expected(const std::string& model) {
  std::ifstream in(kFixtures + model + "/expected.json");
  return nlohmann::json::parse(in);
}

TEST(CliScore, MatchesReferenceAndKeepsOrder) {
  const nlohmann::json e = expected("llama_gqa");
  std::string input;
  const auto& seqs = e["sequences"];
  for (size_t i = seqs.size(); i-- > 0;)   // reversed order: output must follow the input order
    input += nlohmann::json{{"id", "seq" + std::to_string(i)}, {"tokens", seqs[i]["tokens"]}}.dump() + "\n";
  const std::string path = write_file("score_in.jsonl", input);
  CliRun r = run("score --model " + kFixtures + "llama_gqa --input " + path + " --top-logprobs 3");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  size_t count = 0;
  for (size_t i = seqs.size(); i-- > 0; ++count) {
    ASSERT_TRUE(std::getline(lines, line));
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j["id"], "seq" + std::to_string(i));
    const auto ref = seqs[i]["token_logprobs"].get<std::vector<double>>();
    const auto got = j["token_logprobs"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), ref.size());
    for (size_t p = 0; p < ref.size(); ++p) EXPECT_NEAR(got[p], ref[p], 2e-3) << "seq " << i << " pos " << p;
    const auto& top = j["top_logprobs"];
    ASSERT_EQ(top.size(), seqs[i]["tokens"].size());
    for (size_t p = 0; p < top.size(); ++p) {
      ASSERT_EQ(top[p].size(), 3u);
      EXPECT_EQ(top[p][0][0], seqs[i]["top_logprobs"][p][0][0]);
      EXPECT_NEAR(top[p][0][1].get<double>(), seqs[i]["top_logprobs"][p][0][1].get<double>(), 2e-3);
      EXPECT_GE(top[p][0][1].get<double>(), top[p][1][1].get<double>());
    }
  }
  EXPECT_EQ(count, seqs.size());
  EXPECT_FALSE(std::getline(lines, line));
}

TEST(CliScore, RejectsBadInputNamingLineAndField) {
  const std::string model = kFixtures + "qwen2_bias_tied";
  struct Case {
    std::string text, needle;
  } cases[] = {
      {"{\"id\": \"a\", \"tokens\": [1, 2]}\nnot json\n", ":2: not valid JSON"},
      {"{\"id\": \"a\"}\n", ":1: field 'tokens' is missing"},
      {"{\"tokens\": [1]}\n", ":1: field 'id' is missing"},
      {"{\"id\": \"a\", \"tokens\": []}\n", ":1: field 'tokens' must be a non-empty array"},
      {"{\"id\": \"a\", \"tokens\": [1, \"x\"]}\n", ":1: field 'tokens'[1]"},
      {"{\"id\": \"a\", \"tokens\": [1, -3]}\n", ":1: field 'tokens'[1]"},
      {"{\"id\": \"a\", \"tokens\": [1, 2]}\n{\"id\": \"b\", \"tokens\": [512]}\n", "tokens[0] = 512 is outside"},
      {"{\"id\": \"a\", \"tokens\": [1, 2.5]}\n", ":1: field 'tokens'[1] must be a non-negative integer"},
      {"{\"id\": \"a\", \"tokens\": [1, 18446744073709551615]}\n", ":1: field 'tokens'[1]"},
      {"{\"id\": \"a\", \"tokens\": \"12\"}\n", ":1: field 'tokens' must be a non-empty array"},
      {"{\"id\": [1], \"tokens\": [1, 2]}\n", ":1: field 'id' must be a string"},
      {"{\"id\": \"a\", \"tokens\": [1, 2], \"adapter\": 5}\n", ":1: field 'adapter' must be a string"},
      {"[1, 2]\n", ":1: expected a JSON object"},
      {"{\"id\": \"a\", \"tokens\": [1, 2]} trailing\n", ":1: not valid JSON"},
  };
  for (const Case& c : cases) {
    const std::string path = write_file("bad.jsonl", c.text);
    CliRun r = run("score --model " + model + " --input " + path);
    EXPECT_NE(r.code, 0) << c.text;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << "stderr: " << r.err << "\nexpected: " << c.needle;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
  // One thread per unit: an absurd count is refused before any thread starts (it used to abort the process).
  CliRun threads = run("score --model " + model + " --input " + write_file("ok.jsonl", "{\"id\":\"a\",\"tokens\":[1]}\n") +
                       " --threads 100000");
  EXPECT_EQ(threads.code, 1);
  EXPECT_NE(threads.err.find("--threads 100000: expected 1..256"), std::string::npos) << threads.err;
  CliRun missing = run("score --model " + kFixtures + "no_such_model --input " + write_file("ok.jsonl", "{\"id\":\"a\",\"tokens\":[1]}\n"));
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("no_such_model"), std::string::npos) << missing.err;
}

TEST(CliGenerate, GreedyMatchesReferenceInABatch) {
  const nlohmann::json e = expected("llama_linear_long");
  std::string args = "generate --model " + kFixtures + "llama_linear_long --ignore-eos --max-tokens 8";
  for (const auto& s : e["sequences"]) {
    std::string list;
    for (const auto& t : s["tokens"]) list += (list.empty() ? "" : ",") + std::to_string(t.get<int>());
    args += " --tokens " + list;
  }
  CliRun r = run(args);
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream lines(r.out);
  for (const auto& s : e["sequences"]) {
    std::string line, want;
    ASSERT_TRUE(std::getline(lines, line));
    for (const auto& t : s["greedy"]) want += (want.empty() ? "" : ",") + std::to_string(t.get<int>());
    EXPECT_EQ(line, want);
  }
}

TEST(CliGenerate, SeededSamplingIsReproducibleAndErrorsAreClear) {
  const std::string base = "generate --model " + kFixtures + "mistral_mha --tokens 5,6,7 --max-tokens 6 --ignore-eos";
  CliRun a = run(base + " --temperature 1.0 --top-k 50 --top-p 0.9 --seed 7");
  CliRun b = run(base + " --temperature 1.0 --top-k 50 --top-p 0.9 --seed 7");
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(std::count(a.out.begin(), a.out.end(), ','), 5);
  // The options take effect: another seed samples another continuation, and both differ from greedy
  // (which top-k 1 must reproduce whatever the temperature).
  CliRun other = run(base + " --temperature 1.0 --top-k 50 --top-p 0.9 --seed 8");
  CliRun greedy = run(base);
  CliRun top1 = run(base + " --temperature 1.0 --top-k 1 --seed 8");
  ASSERT_EQ(other.code, 0) << other.err;
  ASSERT_EQ(greedy.code, 0) << greedy.err;
  EXPECT_NE(other.out, a.out);
  EXPECT_NE(greedy.out, a.out);
  EXPECT_NE(greedy.out, other.out);
  EXPECT_EQ(top1.out, greedy.out);
  CliRun bad_tok = run("generate --model " + kFixtures + "mistral_mha --tokens 5,x");
  EXPECT_NE(bad_tok.code, 0);
  EXPECT_NE(bad_tok.err.find("'x' is not a non-negative token id"), std::string::npos) << bad_tok.err;
  CliRun oov = run("generate --model " + kFixtures + "mistral_mha --tokens 5,9999");
  EXPECT_NE(oov.code, 0);
  EXPECT_NE(oov.err.find("9999"), std::string::npos) << oov.err;
  CliRun bad_p = run(base + " --temperature 1 --top-p 1.5");
  EXPECT_NE(bad_p.code, 0);
  EXPECT_NE(bad_p.err.find("top_p"), std::string::npos) << bad_p.err;
}

}  // namespace
