// CpuBackend: ops::Backend on the host. fp32 compute; all pointers in Params are host pointers. Quantised
// linear layers and attention run on `num_threads` threads (the caller's included); f32 GEMMs use OpenBLAS.
#pragma once

#include <memory>

#include "backends/cpu/thread_pool.h"
#include "ops/backend.h"

namespace punica::cpu {

class CpuBackend final : public ops::Backend {
 public:
  explicit CpuBackend(int num_threads = 2);
  const char* name() const override { return "cpu"; }
  int num_threads() const { return pool_->num_threads(); }

  Status lora_shrink(const ops::LoraShrinkParams& p) override;
  Status lora_expand(const ops::LoraExpandParams& p) override;

  Status embedding(const ops::EmbeddingParams& p) override;
  Status rms_norm(const ops::RmsNormParams& p) override;
  Status rope(const ops::RopeParams& p) override;
  Status linear(const ops::LinearParams& p) override;
  Status kv_append(const ops::KvAppendParams& p) override;
  Status attention_paged(const ops::AttentionParams& p) override;
  Status silu_mul(const ops::SiluMulParams& p) override;
  Status add(const ops::AddParams& p) override;
  Status gather_rows(const ops::GatherRowsParams& p) override;
  Status log_softmax(const ops::LogSoftmaxParams& p) override;

 private:
  std::unique_ptr<ThreadPool> pool_;
};

}  // namespace punica::cpu
