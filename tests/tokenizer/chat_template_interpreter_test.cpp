// The Jinja interpreter construct by construct (expected strings rendered by transformers' jinja2
// environment: tests/fixtures/chat_templates/interpreter_cases.json), malformed templates (clear errors with
// line and column), unsupported constructs, and the runaway-template guards.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tokenizer/chat_template.h"

namespace punica {
namespace {

using ojson = nlohmann::ordered_json;

const ojson kHi = ojson::parse(R"([{"role": "user", "content": "hi"}])");

Expected<std::string> render(const std::string& source, const ojson& context = ojson::object(),
                             const jinja::RenderLimits& limits = {}) {
  auto t = ChatTemplate::parse(source, "test.jinja");
  if (!t.has_value()) return t.status();
  ChatTemplateOptions opts;
  opts.extra_context = context;
  opts.limits = limits;
  return t->render(kHi, opts);
}

TEST(ChatTemplateInterpreter, EveryConstructMatchesJinja2) {
  std::ifstream f(std::filesystem::path(PUNICA_SOURCE_DIR) / "tests/fixtures/chat_templates/interpreter_cases.json");
  ASSERT_TRUE(f.good());
  std::stringstream ss;
  ss << f.rdbuf();
  ojson fx = ojson::parse(ss.str());
  ASSERT_GE(fx["cases"].size(), 50u);
  for (const auto& c : fx["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>() + ": " + c["template"].get<std::string>());
    ASSERT_TRUE(c.contains("expected"));
    auto out = render(c["template"].get<std::string>(), c["context"]);
    ASSERT_TRUE(out.has_value()) << out.status().to_string();
    EXPECT_EQ(*out, c["expected"].get<std::string>());
  }
}

// The error must carry the template name, line:column, and say what is wrong.
void expect_error(const std::string& source, StatusCode code, const std::string& where, const std::string& what) {
  auto out = render(source);
  ASSERT_FALSE(out.has_value()) << "rendered: " << *out;
  EXPECT_EQ(out.status().code(), code) << out.status().to_string();
  EXPECT_NE(out.status().message().find("test.jinja" + where), std::string::npos) << out.status().to_string();
  EXPECT_NE(out.status().message().find(what), std::string::npos) << out.status().to_string();
}

TEST(ChatTemplateErrors, MalformedTemplatesNameLineAndColumn) {
  expect_error("line one\n{% for m in messages %}{{ m.content }}", StatusCode::kInvalidFile, ":2:",
               "'for' block opened at line 2 column 1 is never closed (expected 'endfor' or 'else')");
  expect_error("{% if true %}x", StatusCode::kInvalidFile, ":1:", "'if' block opened at line 1");
  expect_error("ok\n  {{ 'x' ", StatusCode::kInvalidFile, ":2:3", "unclosed '{{' tag");
  expect_error("{% if %}x{% endif %}", StatusCode::kInvalidFile, ":1:7", "expected an expression");
  expect_error("{{ 1 + }}", StatusCode::kInvalidFile, ":1:8", "expected an expression");
  expect_error("{{ (1 }}", StatusCode::kInvalidFile, ":1:", "unexpected '}'");
  expect_error("{# never closed", StatusCode::kInvalidFile, ":1:1", "missing end of comment tag");
  expect_error("{{ 'abc }}", StatusCode::kInvalidFile, ":1:4", "unterminated string literal");
  expect_error("a\nb {% endfor %}", StatusCode::kInvalidFile, ":2:3", "unexpected tag 'endfor'");
  expect_error("{% frobnicate %}", StatusCode::kInvalidFile, ":1:1", "unknown tag 'frobnicate'");
  expect_error("{% break %}", StatusCode::kInvalidFile, ":1:1", "'break' outside of a for loop");
  expect_error("{{ x $ y }}", StatusCode::kInvalidFile, ":1:6", "unexpected character '$'");
}

TEST(ChatTemplateErrors, UnsupportedConstructsAreNamed) {
  expect_error("\n{{ messages | frobnicate }}", StatusCode::kUnsupported, ":2:15", "unknown filter 'frobnicate'");
  expect_error("{% if x is frobnicated %}{% endif %}", StatusCode::kUnsupported, ":1:", "unknown test 'frobnicated'");
  expect_error("{% include 'other.jinja' %}", StatusCode::kUnsupported, ":1:1", "unsupported tag 'include'");
  expect_error("{% for x in xs recursive %}{% endfor %}", StatusCode::kUnsupported, ":1:", "recursive");
  expect_error("{{ f(*args) }}", StatusCode::kUnsupported, ":1:", "*args");
}

TEST(ChatTemplateErrors, RenderErrorsAndRaiseException) {
  auto raised = render("{% if messages[0].role == 'user' %}{{ raise_exception('Only system first!') }}{% endif %}");
  ASSERT_FALSE(raised.has_value());
  EXPECT_EQ(raised.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(raised.status().message().find("raised an exception: Only system first!"), std::string::npos);

  // jinja2: printing an undefined value is fine; using it in arithmetic or as an object is an error.
  EXPECT_EQ(*render("[{{ nothing }}]"), "[]");
  expect_error("{{ nothing + 1 }}", StatusCode::kInvalidArgument, ":1:", "'nothing' is undefined");
  expect_error("{{ nothing.attr }}", StatusCode::kInvalidArgument, ":1:", "'nothing' is undefined");
  expect_error("{{ 'a' + 1 }}", StatusCode::kInvalidArgument, ":1:", "can only concatenate str");
  expect_error("{% for x in none %}{% endfor %}", StatusCode::kInvalidArgument, ":1:", "'NoneType' object is not iterable");
  expect_error("{{ [1].append(2) }}", StatusCode::kInvalidArgument, ":1:", "unsafe");
  expect_error("{% set ns = namespace() %}{% set ns._x = 1 %}", StatusCode::kInvalidArgument, ":1:", "underscore");
  expect_error("{{ 1 // 0 }}", StatusCode::kInvalidArgument, ":1:", "division or modulo by zero");
}

TEST(ChatTemplateErrors, MessagesMustBeAListOfObjects) {
  auto t = ChatTemplate::parse("{{ messages }}", "t");
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(t->render(ojson::array(), {}).has_value());
  EXPECT_FALSE(t->render(ojson::parse(R"(["not an object"])"), {}).has_value());
  EXPECT_FALSE(t->render(ojson::parse(R"({"role": "user"})"), {}).has_value());
}

TEST(ChatTemplateGuards, RunawayTemplatesStop) {
  jinja::RenderLimits limits;
  limits.max_loop_iterations = 10000;
  limits.max_output_bytes = 1 << 20;
  limits.max_call_depth = 32;
  auto loops = render("{% for i in range(100) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", {}, limits);
  EXPECT_EQ(loops.status().code(), StatusCode::kResourceExhausted) << loops.status().to_string();
  EXPECT_NE(loops.status().message().find("loop iterations"), std::string::npos);
  auto big_range = render("{{ range(100000000) | length }}", {}, limits);
  EXPECT_EQ(big_range.status().code(), StatusCode::kResourceExhausted);
  auto output = render("{% for i in range(5000) %}{{ 'x' * 1000 }}{% endfor %}", {}, limits);
  EXPECT_EQ(output.status().code(), StatusCode::kResourceExhausted) << output.status().to_string();
  auto doubling = render("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                         {}, limits);
  EXPECT_EQ(doubling.status().code(), StatusCode::kResourceExhausted) << doubling.status().to_string();
  auto recursion = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {}, limits);
  EXPECT_EQ(recursion.status().code(), StatusCode::kResourceExhausted) << recursion.status().to_string();
  EXPECT_NE(recursion.status().message().find("macro calls nest deeper"), std::string::npos);
  auto deep_value = render("{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}");
  EXPECT_EQ(deep_value.status().code(), StatusCode::kResourceExhausted) << deep_value.status().to_string();
  auto cycle = render("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns }}");
  EXPECT_EQ(cycle.status().code(), StatusCode::kUnsupported) << cycle.status().to_string();
  auto overflow = render("{{ (-9223372036854775807 - 1) // -1 }}");
  EXPECT_EQ(overflow.status().code(), StatusCode::kInvalidArgument) << overflow.status().to_string();
  EXPECT_NE(overflow.status().message().find("64-bit range"), std::string::npos);
  // jinja2 gives the same list (its step overflows past the stop); ours must not overflow int64 on the way.
  auto big_step = render("{{ range(0, 9223372036854775807, 4611686018427387904) | list }}");
  ASSERT_TRUE(big_step.has_value()) << big_step.status().to_string();
  EXPECT_EQ(*big_step, "[0, 4611686018427387904]");
  // Python makes a big int here; we have 64 bits and fall back to int's default instead of overflowing.
  EXPECT_EQ(*render("{{ 1e300 | int }}"), "0");
  // Deep nesting in the source is refused by the parser before it can exhaust the C++ stack.
  std::string deep = "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}";
  auto nested = render(deep);
  EXPECT_EQ(nested.status().code(), StatusCode::kResourceExhausted) << nested.status().to_string();
  std::string deep_ifs;
  for (int i = 0; i < 5000; ++i) deep_ifs += "{% if true %}";
  auto ifs = render(deep_ifs);
  EXPECT_FALSE(ifs.has_value());
}

TEST(ChatTemplateConfig, TemplateFromTokenizerConfig) {
  auto plain = chat_template_from_tokenizer_config(nlohmann::json::parse(R"({"chat_template": "{{ x }}"})"), "cfg");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(*plain, "{{ x }}");
  auto listed = nlohmann::json::parse(
      R"({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})");
  EXPECT_EQ(*chat_template_from_tokenizer_config(listed, "cfg"), "D");
  EXPECT_EQ(*chat_template_from_tokenizer_config(listed, "cfg", "tool_use"), "T");
  auto missing_name = chat_template_from_tokenizer_config(listed, "cfg", "rag");
  EXPECT_EQ(missing_name.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing_name.status().message().find("default, tool_use"), std::string::npos);
  EXPECT_EQ(chat_template_from_tokenizer_config(nlohmann::json::object(), "cfg").status().code(), StatusCode::kNotFound);
  auto bad = chat_template_from_tokenizer_config(nlohmann::json::parse(R"({"chat_template": 3})"), "cfg");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidFile);
  auto bad_entry = chat_template_from_tokenizer_config(nlohmann::json::parse(R"({"chat_template": [{"name": 1}]})"), "cfg");
  EXPECT_EQ(bad_entry.status().code(), StatusCode::kInvalidFile);
}

TEST(ChatTemplateRender, NullKeysDroppedAndSpecialTokensOptional) {
  auto t = ChatTemplate::parse("{{ bos_token is defined }}{% for m in messages %}|{{ m.content is defined }}{% endfor %}", "t");
  ASSERT_TRUE(t.has_value());
  ChatTemplateOptions opts;
  auto out = t->render(ojson::parse(R"([{"role": "assistant", "content": null}, {"role": "user", "content": "x"}])"), opts);
  ASSERT_TRUE(out.has_value()) << out.status().to_string();
  EXPECT_EQ(*out, "False|False|True");
  opts.bos_token = "<s>";
  EXPECT_EQ(*t->render(kHi, opts), "True|True");
}

}  // namespace
}  // namespace punica
