// Request lines of a JSONL input file (`score --input`, `generate --input`): one reader and one set of
// field rules, so both commands accept and reject the same things with the same "FILE:LINE: field ..."
// messages.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "punica/status.h"

namespace punica::cli {

// Calls fn(object, "FILE:LINE") for every non-blank line; a line that is not a JSON object, a read error
// or fn's first error stops the reading and is returned.
Status jsonl_for_each_object(const std::string& path,
                             const std::function<Status(const nlohmann::json&, const std::string&)>& fn);

// The "adapter" field: an adapter name given with --lora, or "" when absent or null.
Expected<std::string> jsonl_adapter_field(const nlohmann::json& line, const std::string& where);

// The "tokens" field: a non-empty array of token ids in [0, INT32_MAX].
Expected<std::vector<int32_t>> jsonl_tokens_field(const nlohmann::json& line, const std::string& where);

}  // namespace punica::cli
