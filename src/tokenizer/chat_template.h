// Chat templates: render a model's own Jinja chat template (tokenizer_config.json "chat_template" or GGUF
// "tokenizer.chat_template") over a conversation, byte-identical to transformers' apply_chat_template
// (jinja2 ImmutableSandboxedEnvironment, trim_blocks + lstrip_blocks, loopcontrols, transformers' tojson,
// raise_exception, strftime_now, namespace). The interpreter is in tokenizer/jinja/; this is the API.
//
//   auto tmpl = ChatTemplate::parse(text, "model.gguf:tokenizer.chat_template");
//   ChatTemplateOptions opts; opts.add_generation_prompt = true; opts.bos_token = "<s>";
//   auto prompt = tmpl->render(messages_json, opts);
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "punica/status.h"
#include "tokenizer/jinja/interpreter.h"

namespace punica {

class GgufFile;

struct ChatTemplateOptions {
  bool add_generation_prompt = false;
  // Special tokens as transformers passes them (tokenizer.special_tokens_map); unset = undefined in the
  // template, as for a tokenizer without that token.
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> unk_token;
  std::optional<std::string> pad_token;
  nlohmann::ordered_json tools;      // null = None (no tools), else a list of JSON schemas
  nlohmann::ordered_json documents;  // null = None
  // More template variables (date_string, enable_thinking, ...); they override everything above.
  nlohmann::ordered_json extra_context = nlohmann::ordered_json::object();
  jinja::RenderLimits limits;
};

class ChatTemplate {
 public:
  // Parses the template. Errors (InvalidFile for syntax, Unsupported for constructs this interpreter
  // lacks) name `origin`, the line and column, and the construct.
  static Expected<ChatTemplate> parse(const std::string& source, const std::string& origin);

  // Renders `messages` (a JSON array of message objects). Like apply_chat_template, keys whose value is
  // null are dropped from each message and reasoning fields are aliased. Errors: InvalidArgument for
  // raise_exception (the message is the template's own) and for render errors, ResourceExhausted for the
  // runaway guards. Key order matters (tojson, items()): pass ordered_json to keep the caller's order.
  Expected<std::string> render(const nlohmann::ordered_json& messages, const ChatTemplateOptions& opts) const;
  Expected<std::string> render(const nlohmann::json& messages, const ChatTemplateOptions& opts) const;

  const std::string& source() const { return *source_; }
  const std::string& origin() const { return origin_; }

 private:
  ChatTemplate() = default;
  std::shared_ptr<const std::string> source_;
  std::string origin_;
  std::shared_ptr<const jinja::Template> tmpl_;
};

// The template text from a parsed tokenizer_config.json: "chat_template" is a string, or a list of
// {"name", "template"} (then `name` picks one; "default" is transformers' default). NotFound if absent.
Expected<std::string> chat_template_from_tokenizer_config(const nlohmann::json& config, const std::string& origin,
                                                          const std::string& name = "default");
// The template text from GGUF metadata: "tokenizer.chat_template", or "tokenizer.chat_template.<name>"
// for a named one. NotFound if absent.
Expected<std::string> chat_template_from_gguf(const GgufFile& gguf, const std::string& name = "default");

}  // namespace punica
