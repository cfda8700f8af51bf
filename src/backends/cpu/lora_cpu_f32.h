// The LoRA ops contract (ops/lora.h) for f32 on the host. Segments of 8+ rows: one OpenBLAS GEMM per
// segment and slice (shrink v_seg = x_seg @ A^T, expand y_seg += scale * v_seg @ B^T). Shorter segments
// (decode): f32 loops the compiler vectorises, because a BLAS call per tiny segment costs more in thread
// wake-ups than the math.
// Same semantics as the reference lora_cpu.cpp (which stays the plain double-accumulating reference);
// results differ from it only by f32 summation order (tests/lora/lora_cpu_f32_test.cpp bounds this).
// Other dtypes are delegated to the reference.
#pragma once

#include "ops/lora.h"

namespace punica::cpu {

Status lora_shrink_f32(const ops::LoraShrinkParams& p);
Status lora_expand_f32(const ops::LoraExpandParams& p);

}  // namespace punica::cpu
