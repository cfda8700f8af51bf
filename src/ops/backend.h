// Backend: the set of ops the model calls, written once as op calls (DESIGN.md section 3). Each backend
// (src/backends/cpu, src/backends/cuda) implements it; the model holds a Backend& and never knows which.
// Each op family's Params struct and check() live in its own header in this folder.
#pragma once

#include "ops/attention.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/lora.h"
#include "ops/norm.h"
#include "ops/rope.h"

namespace punica::ops {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // LoRA add-on (ops/lora.h).
  virtual Status lora_shrink(const LoraShrinkParams& p) = 0;
  virtual Status lora_expand(const LoraExpandParams& p) = 0;

  // Dense Llama-block ops (one header per family in this folder). Each validates with its *_check first.
  virtual Status embedding(const EmbeddingParams& p) = 0;
  virtual Status rms_norm(const RmsNormParams& p) = 0;
  virtual Status rope(const RopeParams& p) = 0;
  virtual Status linear(const LinearParams& p) = 0;        // y = x @ W^T (+ bias)
  virtual Status kv_append(const KvAppendParams& p) = 0;
  virtual Status attention_paged(const AttentionParams& p) = 0;
  virtual Status silu_mul(const SiluMulParams& p) = 0;
  virtual Status add(const AddParams& p) = 0;              // residual
  virtual Status gather_rows(const GatherRowsParams& p) = 0;
  virtual Status log_softmax(const LogSoftmaxParams& p) = 0;
};

}  // namespace punica::ops
