// Unicode Normalization Form C (the `NFC` normalizer of Qwen2-family tokenizer.json files), with data
// probed from the reference's own normalizer (tools/gen_tokenizer_fixtures.py tables).
#pragma once

#include <string>
#include <string_view>

namespace punica::tok {

// NFC of valid UTF-8 text. Text below U+0300 is returned unchanged without any table work.
std::string unicode_nfc(std::string_view text);

}  // namespace punica::tok
