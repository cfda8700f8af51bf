// Token ids given on the command line as comma-separated lists (`detokenize --ids`, `generate --tokens`).
#pragma once

#include <optional>
#include <string>

namespace punica::cli {

// One item of such a list (" 17 "): its value when it is a non-negative integer with only blanks or tabs
// around it, nothing otherwise. Range checks against a vocabulary are the caller's.
std::optional<long long> parse_token_id(const std::string& item);

}  // namespace punica::cli
