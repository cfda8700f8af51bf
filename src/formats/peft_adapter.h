// Hugging Face PEFT LoRA adapters: a folder with adapter_config.json + adapter_model.safetensors (what
// PeftModel.save_pretrained writes). The config is parsed and checked, then every tensor is matched to a
// module of the base model with PEFT 0.21's own rules (tuners_utils.check_target_module_exists,
// utils.other.get_pattern_key), so the modules adapted, their ranks and scales are exactly PEFT's.
//
// Module keys are the base model's module names as PEFT sees them: "model.layers.3.self_attn.q_proj",
// "model.layers.3.mlp.down_proj", "model.embed_tokens", "lm_head".
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "formats/lora_adapter.h"
#include "formats/model_config.h"
#include "punica/status.h"

namespace punica {

class WeightSource;

struct PeftLoraConfig {
  std::string source;             // the adapter_config.json it came from (for messages)
  int r = 8;
  double lora_alpha = 8;
  bool use_rslora = false;
  bool fan_in_fan_out = false;    // no effect on nn.Linear targets (PEFT resets it); accepted
  // target_modules: a list of names (exact key or ".name" suffix), or one regex string (full match).
  bool target_is_regex = false;
  std::vector<std::string> target_modules;   // the list, or one element: the regex
  bool exclude_is_regex = false;
  std::vector<std::string> exclude_modules;
  // rank_pattern / alpha_pattern in file order (PEFT takes the first key that matches).
  std::vector<std::pair<std::string, int>> rank_pattern;
  std::vector<std::pair<std::string, double>> alpha_pattern;
  std::optional<std::vector<int64_t>> layers_to_transform;   // an int in the file becomes one element
  bool layers_to_transform_is_int = false;
  std::vector<std::string> layers_pattern;
};

// Parses adapter_config.json text. `source` names the file in messages. Rejects (one message naming the
// file and field): peft_type other than LORA, use_dora, bias other than "none", lora_bias, non-empty
// modules_to_save, target_parameters, layer_replication, trainable_token_indices, aLoRA, QALoRA and other
// variants that change the forward pass; r <= 0; malformed patterns; regex target with layers_to_transform.
Expected<PeftLoraConfig> parse_peft_lora_config(const std::string& json_text, const std::string& source);

// PEFT's check_target_module_exists for one module key (exclude_modules, list/regex, layers_to_transform).
// Errors only for a regex that does not compile.
Expected<bool> peft_target_module_matches(const PeftLoraConfig& c, const std::string& key);

// PEFT's get_pattern_key: the first pattern key k (in order) with re.match(r"(.*\.)?(k)$", key), or none.
Expected<std::optional<std::string>> peft_pattern_key(const std::vector<std::string>& patterns,
                                                      const std::string& key);

// Rank and alpha of one module after rank_pattern / alpha_pattern; scale = alpha / r or alpha / sqrt(r).
struct PeftModuleRank {
  int rank = 0;
  double alpha = 0;
  float scale = 0;
};
Expected<PeftModuleRank> peft_module_rank(const PeftLoraConfig& c, const std::string& key);

// The module key of (module, layer), e.g. "model.layers.0.self_attn.q_proj".
std::string peft_module_key(LoraModule m, int layer);

// Builds the adapter from a parsed config and its tensors, checked against the base model. `source`
// names the tensor file in messages.
Expected<LoraAdapter> peft_adapter_from_tensors(const PeftLoraConfig& config, const WeightSource& tensors,
                                                const ModelConfig& base, const LoraLoadOptions& options,
                                                const std::string& source);

// Loads a PEFT folder (adapter_config.json + adapter_model.safetensors). A folder with only
// adapter_model.bin is rejected (pickle is never loaded).
Expected<LoraAdapter> load_peft_adapter(const std::string& dir, const ModelConfig& base,
                                        const LoraLoadOptions& options = {});

// Loads an adapter from a PEFT folder or a llama.cpp GGUF LoRA file (by what the path is).
Expected<LoraAdapter> load_lora_adapter(const std::string& path, const ModelConfig& base,
                                        const LoraLoadOptions& options = {});

// Fuzz entry point for adapter_config.json (replayed by tests/lora/peft_adapter_test.cpp): parses the
// bytes and, when they parse, runs PEFT's matching and rank/alpha rules over every module of a 2-layer base.
int fuzz_peft_config_one_input(const uint8_t* data, size_t size);

}  // namespace punica
