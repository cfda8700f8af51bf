#include "cli/commands/lora_options.h"

#include <CLI/CLI.hpp>

#include "formats/peft_adapter.h"
#include "ops/lora.h"

namespace punica::cli {

void add_lora_options(CLI::App* cmd, LoraCliOptions* options) {
  cmd->add_option("--lora", options->specs, "LoRA adapter NAME=PATH (PEFT folder or GGUF LoRA); repeatable");
  cmd->add_option("--max-lora-rank", options->max_rank, "Largest LoRA rank accepted")
      ->default_val(ops::kMaxLoraRank);
}

Expected<std::unique_ptr<model::LoraAdapterSet>> load_lora_cli_adapters(const LoraCliOptions& options,
                                                                        model::LlamaModel& model) {
  if (options.max_rank < 1 || options.max_rank > ops::kMaxLoraRank)
    return invalid_argument("--max-lora-rank: must be 1.." + std::to_string(ops::kMaxLoraRank) + ", got " +
                            std::to_string(options.max_rank));
  auto set = std::make_unique<model::LoraAdapterSet>(model.config());
  for (const std::string& spec : options.specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      return invalid_argument("--lora '" + spec + "': expected NAME=PATH");
    const std::string name = spec.substr(0, eq), path = spec.substr(eq + 1);
    LoraLoadOptions lo;
    lo.max_rank = options.max_rank;
    auto adapter = load_lora_adapter(path, model.config(), lo);
    if (!adapter) return Status(adapter.status().code(), "--lora " + name + ": " + adapter.status().message());
    auto slot = set->add(name, std::move(*adapter));
    if (!slot) return slot.status();
  }
  model.set_lora_adapters(set->num_slots() > 0 ? set.get() : nullptr);
  return set;
}

Expected<LoadedModel> load_model_with_adapters(const std::string& path, int threads, const LoraCliOptions& lora) {
  engine::RuntimeOptions ro;
  ro.num_threads = threads;
  auto rt = engine::Runtime::open(path, ro);
  if (!rt) return rt.status();
  auto adapters = load_lora_cli_adapters(lora, (*rt)->model());
  if (!adapters) return adapters.status();
  return LoadedModel{std::move(*rt), std::move(*adapters)};
}

}  // namespace punica::cli
