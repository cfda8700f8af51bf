#include "engine/runtime.h"

namespace punica::engine {

Expected<std::unique_ptr<Runtime>> Runtime::open(const std::string& path, const RuntimeOptions& options) {
  if (options.num_threads < 1 || options.num_threads > kMaxThreads)
    return invalid_argument("--threads " + std::to_string(options.num_threads) + ": expected 1.." +
                            std::to_string(kMaxThreads));
  PUNICA_ASSIGN_OR_RETURN(ModelFiles files, open_model(path));
  std::unique_ptr<Runtime> rt(new Runtime());
  rt->backend_ = std::make_unique<cpu::CpuBackend>(options.num_threads);
  model::LoadOptions lo;
  lo.keep_quantized = options.keep_quantized;
  PUNICA_ASSIGN_OR_RETURN(rt->model_, model::LlamaModel::load(std::move(files), *rt->backend_, lo));
  return rt;
}

}  // namespace punica::engine
