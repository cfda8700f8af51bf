#include "cli/commands/jsonl_input.h"

#include <climits>
#include <fstream>

namespace punica::cli {

Status jsonl_for_each_object(const std::string& path,
                             const std::function<Status(const nlohmann::json&, const std::string&)>& fn) {
  std::ifstream in(path);
  if (!in) return not_found(path + ": cannot open the input file");
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string where = path + ":" + std::to_string(line_no);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;   // blank line
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return invalid_argument(where + ": not valid JSON");
    if (!j.is_object()) return invalid_argument(where + ": expected a JSON object");
    PUNICA_RETURN_IF_ERROR(fn(j, where));
  }
  if (in.bad()) return io_error(path + ": read error");
  return Status::ok();
}

Expected<std::string> jsonl_adapter_field(const nlohmann::json& line, const std::string& where) {
  auto adapter = line.find("adapter");
  if (adapter == line.end() || adapter->is_null()) return std::string();
  if (!adapter->is_string())
    return invalid_argument(where + ": field 'adapter' must be a string (an adapter name given with --lora) or null");
  return adapter->get<std::string>();
}

Expected<std::vector<int32_t>> jsonl_tokens_field(const nlohmann::json& line, const std::string& where) {
  auto toks = line.find("tokens");
  if (toks == line.end()) return invalid_argument(where + ": field 'tokens' is missing");
  if (!toks->is_array() || toks->empty())
    return invalid_argument(where + ": field 'tokens' must be a non-empty array of token ids");
  std::vector<int32_t> ids;
  ids.reserve(toks->size());
  for (size_t i = 0; i < toks->size(); ++i) {
    const auto& t = (*toks)[i];
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
      return invalid_argument(where + ": field 'tokens'[" + std::to_string(i) + "] must be a non-negative integer");
    ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
  }
  return ids;
}

}  // namespace punica::cli
