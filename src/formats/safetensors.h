// Safetensors files (single or sharded), memory-mapped and validated as untrusted input.
// Layout: u64 header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]},
// "__metadata__": {...}}, then the data region; offsets are relative to the data region.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/mapped_file.h"
#include "formats/weight_source.h"
#include "punica/status.h"

namespace punica {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;             // "F32", "F16", "BF16", ... as in the file
  std::vector<int64_t> shape;    // outermost first
  uint64_t begin = 0;            // relative to the data region
  uint64_t end = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100u << 20;
  static constexpr size_t kMaxDims = 8;

  static Expected<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  // Parses caller-owned bytes (tests, fuzzing); they must outlive the object.
  static Expected<std::unique_ptr<SafetensorsFile>> parse(const uint8_t* data, size_t size,
                                                          const std::string& name);

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  const uint8_t* tensor_data(const SafetensorsTensor& t) const { return data_ + t.begin; }
  // Converts F32/F16/BF16/F64 to f32; numel must equal t.numel(). Errors name the file and tensor.
  Status read_f32(const SafetensorsTensor& t, float* out, int64_t numel) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  const uint8_t* data_ = nullptr;   // start of the data region
  size_t data_size_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

// Bytes per element of a safetensors dtype string, 0 if unknown.
size_t safetensors_dtype_size(std::string_view dtype);

// A WeightSource over one model.safetensors or the shards named by a model.safetensors.index.json
// (the path given is then the index file). Tensor names are already HF names.
Expected<std::unique_ptr<WeightSource>> open_safetensors_weights(const std::string& path);

// Fuzz entry points (also replayed by tests/formats/fuzz_corpus_test.cpp).
int fuzz_safetensors_one_input(const uint8_t* data, size_t size);

}  // namespace punica
