#include "tokenizer/chat_prompt.h"

#include "tokenizer/chat_template.h"

namespace punica {

Expected<ChatPrompt> chat_prompt_render(const Tokenizer& tokenizer, const nlohmann::ordered_json& messages,
                                        bool add_generation_prompt) {
  if (tokenizer.chat_template().empty())
    return not_found(tokenizer.spec().source + ": the model has no chat template (tokenizer_config.json "
                     "chat_template or GGUF tokenizer.chat_template)");
  PUNICA_ASSIGN_OR_RETURN(ChatTemplate tmpl, ChatTemplate::parse(tokenizer.chat_template(),
                                                                 tokenizer.spec().source + ": chat_template"));
  ChatTemplateOptions opts;
  opts.add_generation_prompt = add_generation_prompt;
  auto token = [&](int32_t id) -> std::optional<std::string> {
    if (id < 0) return std::nullopt;
    return tokenizer.id_to_token(id);
  };
  opts.bos_token = token(tokenizer.bos_id());
  opts.eos_token = token(tokenizer.eos_id());
  opts.unk_token = token(tokenizer.unk_id());
  opts.pad_token = token(tokenizer.pad_id());
  PUNICA_ASSIGN_OR_RETURN(std::string text, tmpl.render(messages, opts));
  ChatPrompt out;
  out.ids = tokenizer.encode(text, /*add_special_tokens=*/false);
  out.text = std::move(text);
  return out;
}

nlohmann::ordered_json chat_messages(const std::string& user, const std::string& system) {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  messages.push_back({{"role", "user"}, {"content", user}});
  return messages;
}

}  // namespace punica
