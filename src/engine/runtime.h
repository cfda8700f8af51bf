// Runtime: a loaded model with the backend it runs on: what the commands (score, generate, bench) open.
#pragma once

#include <memory>
#include <string>

#include "backends/cpu/cpu_backend.h"
#include "model/llama_model.h"

namespace punica::engine {

struct RuntimeOptions {
  int num_threads = 2;   // 1..kMaxThreads: a thread per unit, so a typo like 100000 must not reach the OS
  bool keep_quantized = true;   // compute on GGUF blocks (see model::LoadOptions)
};

class Runtime {
 public:
  static constexpr int kMaxThreads = 256;
  // PATH: a Hugging Face folder or a .gguf file. Errors name the file and what is wrong.
  static Expected<std::unique_ptr<Runtime>> open(const std::string& path, const RuntimeOptions& options = {});
  model::LlamaModel& model() { return *model_; }
  ops::Backend& backend() { return *backend_; }

 private:
  std::unique_ptr<cpu::CpuBackend> backend_;
  std::unique_ptr<model::LlamaModel> model_;
};

}  // namespace punica::engine
