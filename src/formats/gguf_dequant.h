// Dequantisation of ggml block formats to f32, for the types Llama-family GGUFs use. Block layouts and the
// order of float operations follow ggml's dequantize_row_* (ggml-quants.c) and gguf-py's quants.py, so the
// results are bit-identical to the reference (tests/formats/gguf_dequant_test.cpp checks every type).
#pragma once

#include <cstddef>
#include <cstdint>

#include "punica/status.h"

namespace punica {

// True for the ggml type ids gguf_dequantize handles: F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
bool gguf_can_dequantize(uint32_t type_id);

// Dequantises n elements (a multiple of the type's block size) from src (src_bytes long, exactly the
// bytes n elements take) into dst[0..n). Unsupported for other types, InvalidArgument for size mismatch;
// messages name the type, callers add the file and tensor.
Status gguf_dequantize(uint32_t type_id, const uint8_t* src, size_t src_bytes, float* dst, int64_t n);

}  // namespace punica
