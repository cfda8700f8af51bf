#include "model/lora_adapter_set.h"

#include <algorithm>

namespace punica::model {

LoraAdapterSet::LoraAdapterSet(const ModelConfig& base)
    : base_(base), tables_(static_cast<size_t>(base.num_hidden_layers + 1) * kNumLoraModules) {}

size_t LoraAdapterSet::index(LoraModule m, int layer) const {
  return static_cast<size_t>(layer + 1) * kNumLoraModules + static_cast<size_t>(m);
}

Expected<int> LoraAdapterSet::add(const std::string& name, LoraAdapter adapter) {
  if (name.empty()) return invalid_argument("--lora: adapter name is empty");
  if (std::find(names_.begin(), names_.end(), name) != names_.end())
    return invalid_argument("--lora: adapter name '" + name + "' is given twice");
  for (const LoraModuleWeights& w : adapter.modules) {
    if (w.layer < -1 || w.layer >= base_.num_hidden_layers || lora_module_is_per_layer(w.module) != (w.layer >= 0))
      return invalid_argument("adapter '" + name + "': module " + lora_module_name(w.module) + " at layer " +
                              std::to_string(w.layer) + " does not exist in the base model");
  }
  const int slot = num_slots();
  auto owned = std::make_unique<LoraAdapter>(std::move(adapter));
  for (Table& t : tables_) {
    t.a.push_back(nullptr);
    t.b.push_back(nullptr);
    t.rank.push_back(0);
    t.scale.push_back(0);
  }
  embed_a_rows_.emplace_back();
  for (const LoraModuleWeights& w : owned->modules) {
    Table& t = tables_[index(w.module, w.layer)];
    t.a.back() = w.a.data();
    t.b.back() = w.b.data();
    t.rank.back() = w.rank;
    t.scale.back() = w.scale;
    t.any = true;
    if (w.module == LoraModule::kEmbedTokens) {
      std::vector<float>& rows = embed_a_rows_.back();
      rows.resize(w.a.size());
      for (int64_t j = 0; j < w.rank; ++j)
        for (int64_t v = 0; v < w.in_features; ++v) rows[static_cast<size_t>(v * w.rank + j)] = w.a[static_cast<size_t>(j * w.in_features + v)];
    }
  }
  max_rank_ = std::max(max_rank_, owned->max_rank);
  names_.push_back(name);
  adapters_.push_back(std::move(owned));
  return slot;
}

Expected<int> LoraAdapterSet::slot_of(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<int>(i);
  std::string loaded;
  for (const std::string& n : names_) loaded += (loaded.empty() ? "" : ", ") + n;
  return not_found("unknown adapter '" + name + "' (loaded with --lora: " + (loaded.empty() ? "none" : loaded) + ")");
}

ops::LoraSliceTable LoraAdapterSet::table(LoraModule m, int layer) const {
  const Table& t = tables_[index(m, layer)];
  ops::LoraSliceTable s;
  s.a = t.a.data();
  s.b = t.b.data();
  s.rank = t.rank.data();
  s.scale = t.scale.data();
  return s;
}

bool LoraAdapterSet::adapts(LoraModule m, int layer) const { return tables_[index(m, layer)].any; }

const float* LoraAdapterSet::embed_a_rows(int slot) const {
  const std::vector<float>& r = embed_a_rows_[static_cast<size_t>(slot)];
  return r.empty() ? nullptr : r.data();
}

}  // namespace punica::model
