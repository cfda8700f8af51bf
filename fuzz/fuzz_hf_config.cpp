// libFuzzer target: the body lives in src/formats so tests/formats/fuzz_corpus_test.cpp replays the same code.
#include <cstddef>
#include <cstdint>

#include "formats/gguf.h"
#include "formats/model_config.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return punica::fuzz_hf_config_one_input(data, size);
}
