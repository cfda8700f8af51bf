// `make run`'s job end to end on the default model (SmolLM2-135M-Instruct, GGUF Q4_1): the chat prompt
// (the model's own template + tokenizer) and the greedy reply must equal HF transformers' (fixture from
// tools/gen_tokenizer_fixtures.py chat: apply_chat_template + greedy generate on the same GGUF).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/generator.h"
#include "engine/runtime.h"
#include "tokenizer/chat_prompt.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace punica {
namespace {

TEST(DefaultModelChat, GreedyReplyEqualsTransformers) {
  std::ifstream f(std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/tokenizer/chat_greedy_smollm2.json");
  std::stringstream ss;
  ss << f.rdbuf();
  const nlohmann::json fx = nlohmann::json::parse(ss.str());
  const std::string model = std::string(PUNICA_SOURCE_DIR) + "/" + fx["source"].get<std::string>();
  if (!std::filesystem::exists(model)) GTEST_SKIP() << model << " is missing: run scripts/setup.sh";

  auto tok = Tokenizer::load(model);
  ASSERT_TRUE(tok.has_value()) << tok.status().to_string();
  auto prompt = chat_prompt_render(**tok, nlohmann::ordered_json(fx["messages"]));
  ASSERT_TRUE(prompt.has_value()) << prompt.status().to_string();
  EXPECT_EQ(prompt->text, fx["rendered"].get<std::string>());
  ASSERT_EQ(prompt->ids, fx["prompt_ids"].get<std::vector<int32_t>>());

  auto rt = engine::Runtime::open(model);
  ASSERT_TRUE(rt.has_value()) << rt.status().to_string();
  model::LlamaModel& m = (*rt)->model();
  const int64_t max_tokens = fx["max_new_tokens"].get<int64_t>();
  auto kv = m.make_kv_cache(static_cast<int64_t>(prompt->ids.size()) + max_tokens + 16);
  ASSERT_TRUE(kv.has_value()) << kv.status().to_string();
  engine::Generator gen(m, *kv);
  engine::GenerationRequest req;
  req.prompt = prompt->ids;
  req.max_tokens = max_tokens;
  req.stop_token_ids = (*tok)->stop_ids();
  ASSERT_TRUE(gen.add(std::move(req)).has_value());
  ASSERT_TRUE(gen.run_to_completion().is_ok());
  const auto& ids = gen.generated(0);
  EXPECT_EQ(ids, fx["generated_ids"].get<std::vector<int32_t>>());

  Detokenizer detok(**tok, /*skip_special_tokens=*/true);
  std::string text;
  for (int32_t id : ids) text += detok.push(id);
  text += detok.finish();
  EXPECT_EQ(text, fx["text"].get<std::string>());
  EXPECT_NE(text.find("Paris"), std::string::npos) << text;
}

}  // namespace
}  // namespace punica
