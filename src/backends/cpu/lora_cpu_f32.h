// The LoRA ops contract (ops/lora.h) for f32 on the host, through OpenBLAS: per segment and slice, shrink
// is one GEMM v_seg[len, r] = x_seg[len, h_in] @ A^T and expand one GEMM y_seg += scale * v_seg @ B^T.
// Same semantics as the reference lora_cpu.cpp (which stays the plain double-accumulating reference);
// results differ from it only by f32 summation order (tests/lora/lora_cpu_f32_test.cpp bounds this).
// Other dtypes are delegated to the reference.
#pragma once

#include "ops/lora.h"

namespace punica::cpu {

Status lora_shrink_f32(const ops::LoraShrinkParams& p);
Status lora_expand_f32(const ops::LoraExpandParams& p);

}  // namespace punica::cpu
