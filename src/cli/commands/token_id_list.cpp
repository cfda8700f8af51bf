#include "cli/commands/token_id_list.h"

#include <stdexcept>

namespace punica::cli {

std::optional<long long> parse_token_id(const std::string& item) {
  const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
  if (b == std::string::npos) return std::nullopt;
  const std::string t = item.substr(b, e - b + 1);
  size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(t, &used);
  } catch (const std::logic_error&) {  // invalid_argument or out_of_range
    return std::nullopt;
  }
  if (used != t.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace punica::cli
