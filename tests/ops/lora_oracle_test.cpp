// GTest front end of the LoRA op oracle (ctest label gpu): every case for f16 and bf16 must pass.
#include <gtest/gtest.h>

#include <cstdio>

#include "lora_oracle.h"

namespace punica::oracle {
namespace {

constexpr uint64_t kSeed = 20261127;

void run_all(DType t) {
  std::printf("seed %llu\n", static_cast<unsigned long long>(kSeed));
  LoraOracle o;
  for (const auto& c : lora_oracle_cases(t, /*reduced=*/false, kSeed)) {
    const auto r = o.run(c);
    std::printf("%s\n", r.line.c_str());
    EXPECT_TRUE(r.pass) << r.line;
  }
}

TEST(LoraOracle, F16) { run_all(DType::kF16); }
TEST(LoraOracle, BF16) { run_all(DType::kBF16); }

}  // namespace
}  // namespace punica::oracle
