// GGUF as a model: llama.cpp metadata -> ModelConfig, and a WeightSource that presents GGUF tensors under
// Hugging Face names in HF layout (shape [out, in]; llama.cpp's q/k row permutation undone for the llama
// architecture, so RoPE is the NeoX-style rotate_half of transformers).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/weight_source.h"

namespace punica {

// Reads general.architecture (llama, mistral, qwen2) and the {arch}.* keys. Errors name the file and key.
Expected<ModelConfig> gguf_model_config(const GgufFile& file);

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight"; nullopt for names with no HF
// counterpart (e.g. rope_freqs.weight).
std::optional<std::string> gguf_tensor_name_to_hf(std::string_view gguf_name);

// The WeightSource over an opened GGUF; `config` decides the q/k un-permutation (heads, kv heads).
std::unique_ptr<WeightSource> gguf_weight_source(std::shared_ptr<const GgufFile> file, const ModelConfig& config);

}  // namespace punica
