// Helpers for the LoRA tests: fixture paths, the fixture base configs, and a tiny safetensors writer used
// to build malformed adapters.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/model_config.h"

namespace punica::lora_test {

inline std::string fixture_dir(const std::string& model) {
  return std::string(PUNICA_SOURCE_DIR) + "/tests/fixtures/lora/" + model;
}

inline nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// The fixture base models (tools/gen_lora_fixtures.py), written out so adapter tests need no config parser.
inline ModelConfig fixture_base_config(const std::string& model) {
  ModelConfig c;
  c.architecture = model == "qwen2_tied" ? "qwen2" : "llama";
  c.vocab_size = 128;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = model == "qwen2_tied";
  c.attention_bias = model == "qwen2_tied";
  return c;
}

struct StTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

inline void write_safetensors(const std::string& path, const std::map<std::string, StTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const uint64_t bytes = t.values.size() * 4;
    header[name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string h = header.dump();
  while (h.size() % 8) h += ' ';
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const auto& [name, t] : tensors)
    out.write(reinterpret_cast<const char*>(t.values.data()), static_cast<std::streamsize>(t.values.size() * 4));
}

}  // namespace punica::lora_test
