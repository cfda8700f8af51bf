// WeightSource: the tensors of a model (or adapter) under Hugging Face names, whatever file format holds
// them. The model never sees file formats: it asks for "model.layers.0.self_attn.q_proj.weight" and gets
// f32 values in the HF layout ([out, in] for linear weights). GGUF sources map llama.cpp names to HF names
// and undo llama.cpp's q/k row permutation for the llama architecture.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "punica/status.h"

namespace punica {

struct TensorInfo {
  std::string name;               // HF name
  std::vector<int64_t> shape;     // HF order, outermost first: [out, in] for a linear weight
  std::string storage_type;       // "F32", "F16", "BF16", "Q4_1", ... (what the file stores)
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// A 2-D tensor [rows, cols] stored row by row in a block format; each row is row_bytes long.
struct QuantizedRows {
  std::string storage_type;       // "Q4_1", "Q8_0", "F16", ...
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_bytes = 0;
  std::vector<uint8_t> data;      // rows * row_bytes
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const std::string& path() const = 0;
  virtual std::vector<std::string> tensor_names() const = 0;
  virtual const TensorInfo* find(const std::string& hf_name) const = 0;
  // Converts/dequantises the whole tensor to f32 into out[0..numel). Errors name the file and tensor.
  virtual Status read_f32(const std::string& hf_name, float* out, int64_t numel) const = 0;
  // The tensor's rows exactly as the file stores them (e.g. GGUF Q4_1 blocks), rows in HF order (any
  // q/k permutation undone), so a backend can compute on quantised weights without changing any value.
  // Sources that have no such form return Unsupported; callers then fall back to read_f32.
  virtual Expected<QuantizedRows> read_quantized_rows(const std::string& hf_name) const {
    return unsupported(path() + ": tensor '" + hf_name + "' has no quantised form");
  }
};

struct ModelFiles {
  ModelConfig config;
  std::unique_ptr<WeightSource> weights;
};

// Opens a model: a Hugging Face folder (config.json + model.safetensors or a sharded
// model.safetensors.index.json) or a .gguf file. Validates that every tensor the config implies exists
// with the right shape.
Expected<ModelFiles> open_model(const std::string& path);

}  // namespace punica
