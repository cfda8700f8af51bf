// Backend: the set of ops the model calls, written once as op calls (DESIGN.md section 3). Each backend
// (src/backends/cpu, src/backends/cuda) implements it; the model holds a Backend& and never knows which.
// Each op family's Params struct and check() live in its own header in this folder.
#pragma once

#include "ops/lora.h"

namespace punica::ops {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // LoRA add-on (ops/lora.h).
  virtual Status lora_shrink(const LoraShrinkParams& p) = 0;
  virtual Status lora_expand(const LoraExpandParams& p) = 0;
};

}  // namespace punica::ops
