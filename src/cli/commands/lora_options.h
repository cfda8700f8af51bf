// The LoRA options shared by `punica score` and `punica generate`:
//   --lora NAME=PATH     (repeatable) a PEFT folder or a llama.cpp GGUF LoRA file, served under NAME
//   --max-lora-rank N    adapters with a larger rank are rejected (default 128 = ops::kMaxLoraRank)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/runtime.h"
#include "model/llama_model.h"
#include "model/lora_adapter_set.h"
#include "punica/status.h"

namespace CLI {
class App;
}

namespace punica::cli {

struct LoraCliOptions {
  std::vector<std::string> specs;   // "NAME=PATH"
  int max_rank = 128;
};

void add_lora_options(CLI::App* cmd, LoraCliOptions* options);

// Loads every --lora adapter (checked against the model's config) and hands the set to the model. The
// returned set must outlive the model's use of it. Errors name the flag, the adapter and the file.
Expected<std::unique_ptr<model::LoraAdapterSet>> load_lora_cli_adapters(const LoraCliOptions& options,
                                                                        model::LlamaModel& model);

// The model at a path (Hugging Face folder or .gguf) with its --lora adapters handed to it: what `score` and
// `generate` open first.
struct LoadedModel {
  std::unique_ptr<engine::Runtime> runtime;
  std::unique_ptr<model::LoraAdapterSet> adapters;
  model::LlamaModel& model() { return runtime->model(); }
};
Expected<LoadedModel> load_model_with_adapters(const std::string& path, int threads, const LoraCliOptions& lora);

}  // namespace punica::cli
