// llama.cpp GGUF LoRA adapters (convert_lora_to_gguf.py output): general.type = "adapter",
// adapter.type = "lora", adapter.lora.alpha; tensors "<base tensor>.lora_a" / ".lora_b" under llama.cpp
// names (blk.N.attn_q.weight.lora_a, token_embd.weight.lora_a, output.weight.lora_b, ...).
//
// Layout (numpy shapes; GGUF dims are the reverse): lora_a [rank, in], lora_b [out, rank], except
// token_embd.lora_a which the converter transposes to [vocab, rank]. For the llama architecture the
// converter applies llama.cpp's q/k row permutation to lora_b of attn_q / attn_k (the same one it applies
// to the base q/k weights); the loader undoes it so the adapter is in Hugging Face order, like the base
// weights a GGUF WeightSource returns. Scale = alpha / rank (llama.cpp has no rsLoRA flag), 1 if alpha = 0.
#pragma once

#include <string>

#include "formats/gguf.h"
#include "formats/lora_adapter.h"
#include "formats/model_config.h"
#include "punica/status.h"

namespace punica {

Expected<LoraAdapter> gguf_lora_adapter_from_file(const GgufFile& file, const ModelConfig& base,
                                                  const LoraLoadOptions& options = {});
Expected<LoraAdapter> load_gguf_lora_adapter(const std::string& path, const ModelConfig& base,
                                             const LoraLoadOptions& options = {});

}  // namespace punica
