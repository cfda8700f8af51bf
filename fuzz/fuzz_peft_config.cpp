// libFuzzer target for adapter_config.json: the body lives in src/formats so tests/lora replays the same code.
#include <cstddef>
#include <cstdint>

#include "formats/peft_adapter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return punica::fuzz_peft_config_one_input(data, size);
}
