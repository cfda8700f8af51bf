// The pieces of open_model (weight_source.h), for callers that need one of them: the tensor list a config
// implies, the check of a WeightSource against it, and the two ways in (GGUF file, HF folder).
#pragma once

#include <string>
#include <vector>

#include "formats/model_config.h"
#include "formats/weight_source.h"

namespace punica {

struct ExpectedTensor {
  std::string name;              // HF name
  std::vector<int64_t> shape;    // HF order
};

// Every tensor a Llama-family model with this config needs, in load order.
std::vector<ExpectedTensor> model_expected_tensors(const ModelConfig& config);

// Checks presence, exact shape and readable storage type of each expected tensor. The message names the
// file, the tensor and the expected shape.
Status model_validate_weights(const ModelConfig& config, const WeightSource& weights);

Expected<ModelFiles> open_gguf_model(const std::string& path);
Expected<ModelFiles> open_hf_model(const std::string& dir);

}  // namespace punica
