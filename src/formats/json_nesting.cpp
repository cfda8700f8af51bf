#include "formats/json_nesting.h"

namespace punica {

Status json_check_nesting(std::string_view text, const std::string& source, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return invalid_file(source + ": JSON nests deeper than " + std::to_string(max_depth) + " levels (at byte " +
                            std::to_string(i) + ")");
    } else if (c == ']' || c == '}') {
      if (depth > 0) --depth;
    }
  }
  return Status::ok();
}

}  // namespace punica
