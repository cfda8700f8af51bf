// LoraAdapterSet: the adapters loaded next to one base model. Each adapter gets a slot (0, 1, ...); for
// every (layer, module) the set keeps the slot tables the LoRA ops read (ops::LoraSliceTable: per-slot
// A/B pointers, rank, scale; null/0 where a slot does not adapt that module). Adapters are never copied
// into one contiguous pool: each keeps its own buffers and the tables point into them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "formats/lora_adapter.h"
#include "formats/model_config.h"
#include "ops/lora.h"
#include "punica/status.h"

namespace punica::model {

class LoraAdapterSet {
 public:
  explicit LoraAdapterSet(const ModelConfig& base);

  // Adds an adapter already validated against the base model (formats/peft_adapter.h). The name must be
  // new and non-empty; returns its slot.
  Expected<int> add(const std::string& name, LoraAdapter adapter);
  // NotFound naming the adapter and listing the loaded ones.
  Expected<int> slot_of(const std::string& name) const;

  int num_slots() const { return static_cast<int>(adapters_.size()); }
  int max_rank() const { return max_rank_; }
  const std::string& name(int slot) const { return names_[static_cast<size_t>(slot)]; }
  const LoraAdapter& adapter(int slot) const { return *adapters_[static_cast<size_t>(slot)]; }

  // Slot tables of one module (layer -1 for embed_tokens / lm_head). h_out and y_col_offset are left for
  // the caller. adapts() is false when no slot adapts the module (the caller skips the LoRA ops).
  ops::LoraSliceTable table(LoraModule m, int layer) const;
  bool adapts(LoraModule m, int layer) const;
  // embed_tokens A transposed to [vocab, rank] per slot (rows gathered by token id), or null.
  const float* embed_a_rows(int slot) const;

 private:
  struct Table {
    std::vector<const void*> a, b;
    std::vector<int32_t> rank;
    std::vector<float> scale;
    bool any = false;
  };
  size_t index(LoraModule m, int layer) const;

  ModelConfig base_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<LoraAdapter>> adapters_;
  std::vector<std::vector<float>> embed_a_rows_;   // per slot, empty if none
  std::vector<Table> tables_;                      // [(num_layers + 1) * kNumLoraModules]
  int max_rank_ = 0;
};

}  // namespace punica::model
