// Chat prompt ids: the model's own chat template rendered over a conversation and tokenized, as
// transformers' apply_chat_template(tokenize=True) does: the special tokens of the tokenizer are passed
// to the template (bos_token, eos_token, unk_token, pad_token), and the rendered text is encoded with
// add_special_tokens=False, since the template writes BOS itself where the model wants one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "punica/status.h"
#include "tokenizer/tokenizer.h"

namespace punica {

struct ChatPrompt {
  std::string text;            // the rendered template
  std::vector<int32_t> ids;    // its tokens
};

// messages: a JSON array of {"role", "content"} objects. NotFound when the model has no chat template.
Expected<ChatPrompt> chat_prompt_render(const Tokenizer& tokenizer, const nlohmann::ordered_json& messages,
                                        bool add_generation_prompt = true);

// Convenience: an optional system message and one user message.
nlohmann::ordered_json chat_messages(const std::string& user, const std::string& system = "");

}  // namespace punica
