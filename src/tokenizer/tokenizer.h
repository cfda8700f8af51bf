// Tokenizer: text <-> token ids for the Llama-family models, exact to HF `tokenizers` for the pipelines
// those models use (byte-level BPE: GPT-2 / Llama-3 / Qwen2 / SmolLM2; SentencePiece-style BPE with
// byte fallback: Llama-2 / Mistral). Loaded from a HF model folder (tokenizer.json + optional
// tokenizer_config.json / generation_config.json / special_tokens_map.json) or from GGUF metadata
// (tokenizer.ggml.*). Every loaded byte is untrusted: errors name the file and field.
//
// Thread safety: const methods may be called from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "punica/status.h"
#include "tokenizer/tokenizer_spec.h"

namespace punica {

class GgufFile;

class Tokenizer {
 public:
  // PATH: a folder holding tokenizer.json, a tokenizer.json file, or a .gguf file.
  static Expected<std::unique_ptr<Tokenizer>> load(const std::string& path);
  static Expected<std::unique_ptr<Tokenizer>> load_tokenizer_json(const std::string& json_path);
  static Expected<std::unique_ptr<Tokenizer>> load_gguf(const std::string& gguf_path);
  static Expected<std::unique_ptr<Tokenizer>> from_gguf(const GgufFile& gguf);
  // From tokenizer.json text already in memory (`name` names it in messages); `config_dir` may be empty.
  static Expected<std::unique_ptr<Tokenizer>> from_json_text(std::string_view json_text, const std::string& name,
                                                              const std::string& config_dir = "");

  // Text (any bytes: invalid UTF-8 is first replaced, U+FFFD per maximal invalid subpart) -> ids.
  // add_special_tokens adds what the model's post-processor adds (BOS for Llama-2/3, nothing for Qwen2).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  // Ids -> text, as HF `decode` (ids out of range are skipped).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  int32_t vocab_size() const { return static_cast<int32_t>(spec_.tokens.size()); }
  int32_t token_to_id(std::string_view token) const;  // -1 when absent
  std::string id_to_token(int32_t id) const;          // "" when out of range
  bool is_special(int32_t id) const;                  // an added token marked special (BOS, <|im_end|>, ...)

  int32_t bos_id() const { return spec_.bos_id; }    // -1 when the model has none
  int32_t eos_id() const { return spec_.eos_id; }
  int32_t eot_id() const { return spec_.eot_id; }
  int32_t unk_id() const { return spec_.unk_id; }
  int32_t pad_id() const { return spec_.pad_id; }
  std::string bos_token() const { return id_to_token(spec_.bos_id); }
  std::string eos_token() const { return id_to_token(spec_.eos_id); }
  bool add_bos() const { return spec_.add_bos; }
  // The ids generation stops at: EOS, end-of-turn tokens, generation_config.json's eos_token_id(s).
  const std::vector<int32_t>& stop_ids() const { return spec_.stop_ids; }
  bool is_stop(int32_t id) const;
  // The Jinja chat template the model ships (tokenizer_config.json or GGUF), "" when none.
  const std::string& chat_template() const { return spec_.chat_template; }

  // For the incremental detokenizer: how one token decodes.
  const tok::TokenizerSpec& spec() const { return spec_; }

 private:
  explicit Tokenizer(tok::TokenizerSpec spec);
  static Expected<std::unique_ptr<Tokenizer>> finish(tok::TokenizerSpec spec);
  void encode_text_piece(std::string_view text, bool at_start, std::vector<int32_t>& out) const;

  tok::TokenizerSpec spec_;
  tok::AddedTokenMatcher raw_added_;         // added tokens with normalized = false: matched first
  tok::AddedTokenMatcher normalized_added_;  // normalized = true: matched in normalized text
};

}  // namespace punica
