#include "backends/cpu/cpu_backend.h"

#include "backends/cpu/dense_cpu.h"
#include "backends/cpu/lora_cpu.h"
#include "backends/cpu/lora_cpu_f32.h"

namespace punica::cpu {

CpuBackend::CpuBackend(int num_threads) : pool_(std::make_unique<ThreadPool>(num_threads)) {}

// f32 through OpenBLAS (lora_cpu_f32.h); other dtypes fall back to the reference (lora_cpu.h).
Status CpuBackend::lora_shrink(const ops::LoraShrinkParams& p) { return cpu::lora_shrink_f32(p); }
Status CpuBackend::lora_expand(const ops::LoraExpandParams& p) { return cpu::lora_expand_f32(p); }

Status CpuBackend::embedding(const ops::EmbeddingParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::embedding_check(p));
  cpu::embedding(p);
  return Status::ok();
}

Status CpuBackend::rms_norm(const ops::RmsNormParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::rms_norm_check(p));
  cpu::rms_norm(p);
  return Status::ok();
}

Status CpuBackend::rope(const ops::RopeParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::rope_check(p));
  cpu::rope(p);
  return Status::ok();
}

Status CpuBackend::linear(const ops::LinearParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::linear_check(p));
  cpu::linear(p, *pool_);
  return Status::ok();
}

Status CpuBackend::kv_append(const ops::KvAppendParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::kv_append_check(p));
  if (!cpu::kv_append(p)) return invalid_argument("kv_append: a slot lies outside the KV pool");
  return Status::ok();
}

Status CpuBackend::attention_paged(const ops::AttentionParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::attention_paged_check(p));
  if (!cpu::attention_paged(p, *pool_))
    return invalid_argument("attention: inconsistent plan (row range, position beyond kv_len, or page outside pool)");
  return Status::ok();
}

Status CpuBackend::silu_mul(const ops::SiluMulParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::silu_mul_check(p));
  cpu::silu_mul(p);
  return Status::ok();
}

Status CpuBackend::add(const ops::AddParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::add_check(p));
  cpu::add(p);
  return Status::ok();
}

Status CpuBackend::gather_rows(const ops::GatherRowsParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::gather_rows_check(p));
  if (!cpu::gather_rows(p)) return invalid_argument("gather_rows: a row index lies outside [0, num_tokens)");
  return Status::ok();
}

Status CpuBackend::log_softmax(const ops::LogSoftmaxParams& p) {
  PUNICA_RETURN_IF_ERROR(ops::log_softmax_check(p));
  cpu::log_softmax(p);
  return Status::ok();
}

}  // namespace punica::cpu
