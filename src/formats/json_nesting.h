// A guard run on every JSON text read from an untrusted file before nlohmann::json sees it. nlohmann's
// parser is iterative, but copying an ordered_json object (its ordered_map grows by copying), dump() and
// operator== recurse once per nesting level: a 1 MiB file of '[' overflows the stack. Real model, adapter
// and safetensors JSON nests at most ~5 levels.
#pragma once

#include <string>
#include <string_view>

#include "punica/status.h"

namespace punica {

inline constexpr int kMaxJsonNesting = 64;

// InvalidFile "<source>: JSON nests deeper than N levels (at byte B)" when any point of `text` is inside
// more than `max_depth` arrays/objects; brackets inside strings do not count. Never fails on depth alone
// for valid shallow JSON, and says nothing about other syntax (the parser reports that).
Status json_check_nesting(std::string_view text, const std::string& source, int max_depth = kMaxJsonNesting);

}  // namespace punica
