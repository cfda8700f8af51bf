// LlamaModel: the Llama-family decoder (llama, mistral, qwen2 with q/k/v bias, tied or untied lm_head)
// built from ModelFiles, with forward() written once as op calls on an ops::Backend.
//
// forward(plan) runs one step over a ragged batch (see batch_plan.h): embed -> per layer: RMSNorm,
// q/k/v projections (+bias), RoPE, KV append, paged GQA attention, o projection, residual, RMSNorm,
// gate/up, SiLU*up, down, residual -> final RMSNorm and lm_head on the plan's logit rows only.
// Every linear projection goes through project(), the one place where LoRA will add its term.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/weight_source.h"
#include "kv/kv_cache.h"
#include "model/batch_plan.h"
#include "model/lora_adapter_set.h"
#include "model/lora_apply.h"
#include "ops/backend.h"

namespace punica::model {

enum class Module { kQ, kK, kV, kO, kGate, kUp, kDown };
const char* module_name(Module m);   // "q_proj", ...

struct LoadOptions {
  // Keep linear weights in the file's block format (GGUF Q4_1, Q8_0, ...) and compute on the blocks; the
  // values are exactly the dequantised ones. False: dequantise everything to f32 at load.
  bool keep_quantized = true;
};

// A weight matrix in the form the backend computes on, with the storage it points into.
struct StoredLinear {
  ops::LinearWeight w;
  std::vector<uint8_t> bytes;   // quantised rows, or f32 values as bytes
};

struct LayerWeights {
  std::vector<float> input_norm, post_attn_norm;
  StoredLinear q, k, v, o, gate, up, down;
  std::vector<float> q_bias, k_bias, v_bias;   // empty unless attention_bias
};

class LlamaModel {
 public:
  static Expected<std::unique_ptr<LlamaModel>> load(ModelFiles files, ops::Backend& backend,
                                                    const LoadOptions& options = {});

  const ModelConfig& config() const { return config_; }
  int64_t vocab_size() const { return config_.vocab_size; }
  // A KV cache shaped for this model with room for max_tokens tokens in all.
  Expected<kv::KvCache> make_kv_cache(int64_t max_tokens, int64_t page_size = 16) const;
  // Bytes of weights one decode token reads (every linear weight + embedding row + norms).
  int64_t weight_bytes_per_token() const;

  // Runs the step; returns logits [plan.logit_rows.size(), vocab] (f32, host), or log-probabilities when
  // log_probs is set. Token ids outside the vocabulary give InvalidArgument naming the row.
  // lora: the step's adapter segments (lora_batch_build), read with the set given to set_lora_adapters;
  // null or inactive = base model for every row.
  Expected<std::vector<float>> forward(const BatchPlan& plan, kv::KvCache& kv, bool log_probs = false,
                                       const LoraBatch* lora = nullptr);
  // The adapters forward() may use (owned by the caller, must outlive the calls); null = none.
  void set_lora_adapters(const LoraAdapterSet* adapters) { lora_adapters_ = adapters; }
  const LoraAdapterSet* lora_adapters() const { return lora_adapters_; }

 private:
  LlamaModel(ModelConfig config, ops::Backend& backend) : config_(std::move(config)), backend_(backend) {}
  // y[T, out] = x[T, in] @ W^T (+ bias) for one projection of one layer. LoRA adds its term here.
  Status project(const BatchPlan& plan, int64_t layer, Module module, const float* x, float* y);
  void resize_workspace(int64_t num_tokens);

  ModelConfig config_;
  ops::Backend& backend_;
  StoredLinear embed_;
  StoredLinear lm_head_;          // aliases embed_ (w.data) when embeddings are tied
  std::vector<float> final_norm_;
  std::vector<LayerWeights> layers_;

  // Per-step scratch, grown as needed.
  std::vector<float> x_, h_, q_, k_, v_, attn_, tmp_, gate_, up_;
  const LoraAdapterSet* lora_adapters_ = nullptr;
  LoraScratch lora_scratch_;
};

}  // namespace punica::model
