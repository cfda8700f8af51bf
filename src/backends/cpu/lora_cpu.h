// CPU implementation of the LoRA ops contract (src/ops/lora.h). Plain loops in fp32 with the rounding of
// the contract: this is the reference that every other backend is tested against. All pointers are host
// pointers.
#pragma once

#include "ops/lora.h"

namespace punica::cpu {

Status lora_shrink(const ops::LoraShrinkParams& p);
Status lora_expand(const ops::LoraExpandParams& p);

}  // namespace punica::cpu
