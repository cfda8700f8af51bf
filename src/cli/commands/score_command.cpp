// `punica score --model PATH --input FILE.jsonl [--top-logprobs K]`: log-probabilities of token sequences.
// Input lines: {"id": "...", "tokens": [int, ...]}; all lines are scored as one batch. Output (stdout,
// same order): {"id": "...", "token_logprobs": [...], "top_logprobs": [[[token, logprob], ...], ...]}.
// LoRA: --lora NAME=PATH (repeatable); a line's "adapter": "NAME" scores it with that adapter (absent or
// null = base model); lines with different adapters run in the same batch.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/commands/jsonl_input.h"
#include "cli/commands/lora_options.h"
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
  std::vector<engine::ScoreRequest> out;
  Status st = jsonl_for_each_object(path, [&](const nlohmann::json& j, const std::string& where) -> Status {
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
    auto adapter = jsonl_adapter_field(j, where);
    if (!adapter) return adapter.status();
    auto tokens = jsonl_tokens_field(j, where);
    if (!tokens) return tokens.status();
    req.tokens = std::move(*tokens);
    adapters->push_back(std::move(*adapter));
    where_of->push_back(where);
    out.push_back(std::move(req));
    return Status::ok();
  });
  if (!st) return st;
  return out;
}

void run_score(const ScoreArgs& args) {
  if (args.top_logprobs < 0) fail("--top-logprobs must be >= 0");
  std::vector<std::string> adapter_names, where;
  auto input = read_score_input(args.input, &adapter_names, &where);
  if (!input) fail(input.status().message());
  auto loaded = load_model_with_adapters(args.model, args.threads, args.lora);
  if (!loaded) fail(loaded.status().message());
  for (size_t i = 0; i < input->size(); ++i) {
    if (adapter_names[i].empty()) continue;
    auto slot = loaded->adapters->slot_of(adapter_names[i]);
    if (!slot) fail(where[i] + ": field 'adapter': " + slot.status().message());
    (*input)[i].adapter_slot = *slot;
  }
  const int64_t vocab = loaded->model().vocab_size();
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
  auto results = engine::score_sequences(loaded->model(), *input, so);
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
