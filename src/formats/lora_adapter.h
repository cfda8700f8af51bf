// LoraAdapter: one LoRA fine-tune of a Llama-family base model, whatever file held it (a PEFT folder or a
// llama.cpp GGUF adapter), as f32 weights in the layout of the LoRA ops contract (ops/lora.h):
//   projection modules: A [rank, in_features], B [out_features, rank]   (nn.Linear "out x in")
//   embed_tokens:       A [rank, vocab],       B [hidden, rank]          x_emb += scale * B @ A[:, token]
// Every value has been checked (shape against the base model, rank limit, finite) by the loader.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "formats/model_config.h"

namespace punica {

// The modules of a Llama block (+ embedding and head) that may carry a LoRA add-on.
enum class LoraModule : uint8_t { kQ, kK, kV, kO, kGate, kUp, kDown, kEmbedTokens, kLmHead };
constexpr int kNumLoraModules = 9;
constexpr int kNumLoraLayerModules = 7;   // q, k, v, o, gate, up, down (per layer)

// "q_proj", ..., "embed_tokens", "lm_head" (the HF module names).
const char* lora_module_name(LoraModule m);
bool lora_module_is_per_layer(LoraModule m);
// (in_features, out_features) of the module in the base model; embed_tokens: (vocab, hidden).
std::pair<int64_t, int64_t> lora_module_dims(LoraModule m, const ModelConfig& c);

struct LoraModuleWeights {
  LoraModule module = LoraModule::kQ;
  int layer = -1;                 // -1 for embed_tokens / lm_head
  int rank = 0;
  float scale = 0;                // alpha / rank, or alpha / sqrt(rank) for rsLoRA (after the patterns)
  int64_t in_features = 0;        // embed_tokens: vocab size
  int64_t out_features = 0;       // embed_tokens: hidden size
  std::vector<float> a;           // [rank, in_features]
  std::vector<float> b;           // [out_features, rank]
};

struct LoraAdapter {
  std::string path;               // the folder or file it was loaded from
  std::string format;             // "peft" or "gguf"
  int max_rank = 0;               // largest rank over modules
  std::vector<LoraModuleWeights> modules;   // sorted by (layer, module); embed_tokens/lm_head first (layer -1)

  const LoraModuleWeights* find(LoraModule m, int layer) const;
};

// Largest rank an adapter may have unless the caller configures another limit (--max-lora-rank).
constexpr int kDefaultMaxLoraRank = 128;

struct LoraLoadOptions {
  int max_rank = kDefaultMaxLoraRank;
};

}  // namespace punica
