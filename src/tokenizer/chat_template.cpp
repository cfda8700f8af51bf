#include "tokenizer/chat_template.h"

#include "formats/gguf.h"
#include "tokenizer/jinja/lexer.h"
#include "tokenizer/jinja/parser.h"

namespace punica {

namespace {

std::string line_excerpt(const std::string& source, int line) {
  int current = 1;
  size_t start = 0;
  while (current < line) {
    size_t nl = source.find_first_of("\r\n", start);
    if (nl == std::string::npos) return "";
    start = nl + ((source[nl] == '\r' && nl + 1 < source.size() && source[nl + 1] == '\n') ? 2 : 1);
    ++current;
  }
  size_t end = source.find_first_of("\r\n", start);
  std::string text = source.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (text.size() > 120) text = text.substr(0, 117) + "...";
  return text;
}

Status to_status(const jinja::JinjaError& err, const std::string& origin, const std::string& source) {
  std::string where = origin;
  if (err.pos().line > 0) {
    where += ":" + std::to_string(err.pos().line) + ":" + std::to_string(err.pos().column);
  }
  std::string near;
  if (err.pos().line > 0) {
    std::string excerpt = line_excerpt(source, err.pos().line);
    if (!excerpt.empty()) near = " (in line: " + excerpt + ")";
  }
  switch (err.kind()) {
    case jinja::ErrorKind::kSyntax:
      return invalid_file("chat template " + where + ": syntax error: " + err.message() + near);
    case jinja::ErrorKind::kUnsupported:
      return unsupported("chat template " + where + ": " + err.message() + near);
    case jinja::ErrorKind::kRaised:
      return invalid_argument("chat template " + where + " raised an exception: " + err.message());
    case jinja::ErrorKind::kLimit:
      return resource_exhausted("chat template " + where + ": " + err.message());
    case jinja::ErrorKind::kRender:
      break;
  }
  return invalid_argument("chat template " + where + ": error while rendering: " + err.message() + near);
}

// What apply_chat_template does to each message before rendering: drop keys whose value is None, and copy
// reasoning under "thinking" and "reasoning_content" ({"thinking": r, **message, "reasoning_content": r}).
Expected<jinja::Value> prepare_messages(const nlohmann::ordered_json& messages, const std::string& origin) {
  if (!messages.is_array()) return invalid_argument("chat template " + origin + ": messages must be a JSON array");
  if (messages.empty()) {
    return invalid_argument("chat template " + origin + ": cannot apply a chat template to an empty conversation");
  }
  jinja::ValueList out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    if (!m.is_object()) {
      return invalid_argument("chat template " + origin + ": message " + std::to_string(i) +
                              " must be a JSON object, got " + m.type_name());
    }
    nlohmann::ordered_json cleaned = nlohmann::ordered_json::object();
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (!it.value().is_null()) cleaned[it.key()] = it.value();
    }
    const nlohmann::ordered_json* reasoning = nullptr;
    for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
      if (cleaned.contains(key)) {
        reasoning = &cleaned[key];
        break;
      }
    }
    if (reasoning) {
      nlohmann::ordered_json aliased = nlohmann::ordered_json::object();
      aliased["thinking"] = *reasoning;
      for (auto it = cleaned.begin(); it != cleaned.end(); ++it) aliased[it.key()] = it.value();
      aliased["reasoning_content"] = aliased["thinking"];
      cleaned = std::move(aliased);
    }
    out.push_back(jinja::Value::from_json(cleaned));
  }
  return jinja::Value::list(std::move(out));
}

}  // namespace

Expected<ChatTemplate> ChatTemplate::parse(const std::string& source, const std::string& origin) {
  ChatTemplate t;
  t.source_ = std::make_shared<const std::string>(source);
  t.origin_ = origin;
  try {
    std::vector<jinja::Token> tokens = jinja::jinja_tokenize(source);
    jinja::ParserOptions popts;
    popts.is_known_filter = jinja::jinja_is_known_filter;
    popts.is_known_test = jinja::jinja_is_known_test;
    t.tmpl_ = std::make_shared<const jinja::Template>(jinja::jinja_parse(tokens, popts));
  } catch (const jinja::JinjaError& err) {
    return to_status(err, origin, source);
  }
  return t;
}

Expected<std::string> ChatTemplate::render(const nlohmann::json& messages, const ChatTemplateOptions& opts) const {
  return render(nlohmann::ordered_json(messages), opts);
}

Expected<std::string> ChatTemplate::render(const nlohmann::ordered_json& messages,
                                           const ChatTemplateOptions& opts) const {
  try {
    auto prepared = prepare_messages(messages, origin_);
    if (!prepared.has_value()) return prepared.status();
    std::unordered_map<std::string, jinja::Value> globals;
    jinja::jinja_add_globals(globals);
    auto set_token = [&](const char* name, const std::optional<std::string>& v) {
      if (v) globals[name] = jinja::Value::string(*v);
    };
    set_token("bos_token", opts.bos_token);
    set_token("eos_token", opts.eos_token);
    set_token("unk_token", opts.unk_token);
    set_token("pad_token", opts.pad_token);
    if (!opts.extra_context.is_null() && !opts.extra_context.is_object()) {
      return invalid_argument("chat template " + origin_ + ": extra context must be a JSON object");
    }
    globals["messages"] = std::move(prepared.value());
    globals["tools"] = jinja::Value::from_json(opts.tools);
    globals["documents"] = jinja::Value::from_json(opts.documents);
    globals["add_generation_prompt"] = jinja::Value::boolean(opts.add_generation_prompt);
    for (auto it = opts.extra_context.begin(); it != opts.extra_context.end(); ++it) {
      globals[it.key()] = jinja::Value::from_json(it.value());
    }
    jinja::Interpreter interpreter(*tmpl_, opts.limits);
    return interpreter.render(std::move(globals));
  } catch (const jinja::JinjaError& err) {
    return to_status(err, origin_, *source_);
  }
}

Expected<std::string> chat_template_from_tokenizer_config(const nlohmann::json& config, const std::string& origin,
                                                          const std::string& name) {
  if (!config.is_object() || !config.contains("chat_template") || config["chat_template"].is_null()) {
    return not_found(origin + ": no 'chat_template' field");
  }
  const auto& field = config["chat_template"];
  if (field.is_string()) return field.get<std::string>();
  if (!field.is_array()) {
    return invalid_file(origin + ": 'chat_template' must be a string or a list of {name, template}, got " +
                        std::string(field.type_name()));
  }
  std::string names;
  for (const auto& entry : field) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() || !entry.contains("template") ||
        !entry["template"].is_string()) {
      return invalid_file(origin + ": each 'chat_template' list entry must be {\"name\": str, \"template\": str}");
    }
    if (entry["name"].get<std::string>() == name) return entry["template"].get<std::string>();
    names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
  }
  return not_found(origin + ": 'chat_template' has no template named '" + name + "' (it has: " + names + ")");
}

Expected<std::string> chat_template_from_gguf(const GgufFile& gguf, const std::string& name) {
  std::string key = name == "default" ? "tokenizer.chat_template" : "tokenizer.chat_template." + name;
  return gguf.get_string(key);
}

}  // namespace punica
