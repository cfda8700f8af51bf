// ModelConfig: the Llama-family hyper-parameters the runtime needs, read from a Hugging Face config.json
// (llama, mistral, qwen2) or mapped from GGUF metadata (formats/gguf_model.cpp). One struct for both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "punica/status.h"

namespace punica {

enum class RopeScalingType { kNone, kLinear, kDynamic, kLlama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
};

struct ModelConfig {
  std::string architecture;       // "llama", "mistral", "qwen2" (HF model_type)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;           // hidden_size / num_attention_heads unless given
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;    // q/k/v biases (qwen2)
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  // GGUF llama3-style models store their rope scaling as per-frequency divisors (tensor rope_freqs.weight,
  // head_dim/2 values): inv_freq[i] = rope_theta^(-2i/head_dim) / rope_freq_factors[i]. Empty: none.
  // When set, rope_scaling.type is kNone and these factors replace it.
  std::vector<float> rope_freq_factors;

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
};

// Parses config.json text. `source` names the file in error messages. Rejects missing or absurd values
// (e.g. heads not dividing, sizes <= 0 or above sane limits) with a message naming the key.
Expected<ModelConfig> parse_hf_config(const std::string& json_text, const std::string& source);

// Fuzz entry point (also replayed by tests/formats/fuzz_corpus_test.cpp).
int fuzz_hf_config_one_input(const uint8_t* data, size_t size);

}  // namespace punica
