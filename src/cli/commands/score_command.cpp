// `punica score --model PATH --input FILE.jsonl [--top-logprobs K]`: log-probabilities of token sequences.
// Input lines: {"id": "...", "tokens": [int, ...]}; all lines are scored as one batch. Output (stdout,
// same order): {"id": "...", "token_logprobs": [...], "top_logprobs": [[[token, logprob], ...], ...]}.
// LoRA: --lora NAME=PATH (repeatable); a line's "adapter": "NAME" scores it with that adapter (absent or
// null = base model); lines with different adapters run in the same batch.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/commands/lora_options.h"
#include "engine/runtime.h"
#include "engine/scorer.h"

namespace punica::cli {
namespace {

struct ScoreArgs {
  std::string model;
  std::string input;
  int64_t top_logprobs = 0;
  int threads = 2;
  LoraCliOptions lora;
};

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "punica score: %s\n", message.c_str());
  throw CLI::RuntimeError(1);
}

// adapters[i]: the "adapter" name of request i ("" = base model); where[i]: "FILE:LINE" for messages.
Expected<std::vector<engine::ScoreRequest>> read_score_input(const std::string& path, std::vector<std::string>* adapters,
                                                             std::vector<std::string>* where_of) {
  std::ifstream in(path);
  if (!in) return not_found(path + ": cannot open the input file");
  std::vector<engine::ScoreRequest> out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string where = path + ":" + std::to_string(line_no);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;   // blank line
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return invalid_argument(where + ": not valid JSON");
    if (!j.is_object()) return invalid_argument(where + ": expected a JSON object");
    engine::ScoreRequest req;
    auto id = j.find("id");
    if (id == j.end()) return invalid_argument(where + ": field 'id' is missing");
    if (id->is_string()) {
      req.id = id->get<std::string>();
    } else if (id->is_number_integer()) {
      req.id = id->dump();
    } else {
      return invalid_argument(where + ": field 'id' must be a string");
    }
    auto adapter = j.find("adapter");
    if (adapter != j.end() && !adapter->is_null() && !adapter->is_string())
      return invalid_argument(where + ": field 'adapter' must be a string (an adapter name given with --lora) or null");
    adapters->push_back(adapter != j.end() && adapter->is_string() ? adapter->get<std::string>() : "");
    where_of->push_back(where);
    auto toks = j.find("tokens");
    if (toks == j.end()) return invalid_argument(where + ": field 'tokens' is missing");
    if (!toks->is_array() || toks->empty())
      return invalid_argument(where + ": field 'tokens' must be a non-empty array of token ids");
    for (size_t i = 0; i < toks->size(); ++i) {
      const auto& t = (*toks)[i];
      if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
        return invalid_argument(where + ": field 'tokens'[" + std::to_string(i) + "] must be a non-negative integer");
      req.tokens.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
    out.push_back(std::move(req));
  }
  if (in.bad()) return io_error(path + ": read error");
  return out;
}

void run_score(const ScoreArgs& args) {
  if (args.top_logprobs < 0) fail("--top-logprobs must be >= 0");
  std::vector<std::string> adapter_names, where;
  auto input = read_score_input(args.input, &adapter_names, &where);
  if (!input) fail(input.status().message());
  engine::RuntimeOptions ro;
  ro.num_threads = args.threads;
  auto rt = engine::Runtime::open(args.model, ro);
  if (!rt) fail(rt.status().message());
  auto adapters = load_lora_cli_adapters(args.lora, (*rt)->model());
  if (!adapters) fail(adapters.status().message());
  for (size_t i = 0; i < input->size(); ++i) {
    if (adapter_names[i].empty()) continue;
    auto slot = (*adapters)->slot_of(adapter_names[i]);
    if (!slot) fail(where[i] + ": field 'adapter': " + slot.status().message());
    (*input)[i].adapter_slot = *slot;
  }
  const int64_t vocab = (*rt)->model().vocab_size();
  for (size_t i = 0; i < input->size(); ++i) {   // name the input line, not just the request index
    for (size_t k = 0; k < (*input)[i].tokens.size(); ++k) {
      if ((*input)[i].tokens[k] >= vocab)
        fail(args.input + ": request " + std::to_string(i) + " (id '" + (*input)[i].id + "'): tokens[" +
             std::to_string(k) + "] = " + std::to_string((*input)[i].tokens[k]) +
             " is outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  engine::ScoreOptions so;
  so.top_k = args.top_logprobs;
  auto results = engine::score_sequences((*rt)->model(), *input, so);
  if (!results) fail(results.status().message());
  for (const engine::ScoreResult& r : *results) {
    nlohmann::json j;
    j["id"] = r.id;
    j["token_logprobs"] = r.token_logprobs;
    nlohmann::json top = nlohmann::json::array();
    for (const auto& row : r.top_logprobs) {
      nlohmann::json jr = nlohmann::json::array();
      for (const auto& [tok, lp] : row) jr.push_back({tok, lp});
      top.push_back(std::move(jr));
    }
    j["top_logprobs"] = std::move(top);
    std::cout << j.dump() << '\n';
  }
  std::cout.flush();
}

}  // namespace

void add_score_command(CLI::App& app) {
  auto args = std::make_shared<ScoreArgs>();
  auto* cmd = app.add_subcommand("score", "Log-probabilities of token sequences (JSONL in, JSONL out)");
  cmd->add_option("--model", args->model, "Hugging Face model folder or .gguf file")->required();
  cmd->add_option("--input", args->input, "JSONL file: {\"id\": ..., \"tokens\": [...]} per line")->required();
  cmd->add_option("--top-logprobs", args->top_logprobs, "K most likely next tokens per position")->default_val(0);
  cmd->add_option("--threads", args->threads, "CPU threads")->default_val(2);
  add_lora_options(cmd, &args->lora);
  cmd->callback([args] { run_score(*args); });
}

}  // namespace punica::cli
