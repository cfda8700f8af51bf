// The op oracle for the CUDA LoRA ops: runs a case on the GPU and on the CPU reference
// (src/backends/cpu/lora_cpu.cpp) and compares. Shared by the gtest binary (label gpu) and the plain CLI
// that scripts/gpu_check.sh runs (also under compute-sanitizer).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace punica::oracle {

enum class LoraPath { kSeparate, kFused, kFusedGraph };  // shrink+expand calls, lora_add, lora_add in a graph

struct LoraOracleCase {
  std::string name;
  DType dtype = DType::kF16;
  int h_in = 4096;
  std::vector<int> h_out;             // one per slice; slices are laid out side by side in y
  std::vector<int> seg_len;           // segment lengths (0 = empty segment)
  std::vector<int> seg_slot;          // slot per segment, -1 = no adapter
  int lead_tokens = 0;                // tokens before the first segment (outside every segment)
  int tail_tokens = 0;                // tokens after the last segment
  int num_slots = 1;
  std::vector<std::vector<int>> rank; // [slice][slot]; 0 = slot does not adapt the slice (null pointers)
  int v_rank_stride = 16;
  bool exact = false;                 // small integers, powers-of-two scales: compare bit for bit
  bool nonfinite = false;             // plant NaN/Inf in x (adapted and unadapted rows)
  bool b_unaligned = false;           // B pointers 2 bytes past a 16-byte boundary (the contract allows any 2-byte B)
  int check_stride = 1;               // check every check_stride-th token against the reference
  LoraPath path = LoraPath::kFused;
  uint64_t seed = 1;
};

struct LoraOracleResult {
  bool pass = false;
  std::string line;  // one human-readable summary line (and the first failure, if any)
};

// Needs a CUDA device. The workspace is allocated once and shared by all cases, as a model would do.
class LoraOracle {
 public:
  LoraOracle();
  ~LoraOracle();
  LoraOracleResult run(const LoraOracleCase& c);

 private:
  void* ws_ = nullptr;
  size_t ws_bytes_ = 0;
};

// All cases for one dtype. reduced: the small subset used under compute-sanitizer.
std::vector<LoraOracleCase> lora_oracle_cases(DType dtype, bool reduced, uint64_t seed);

}  // namespace punica::oracle
