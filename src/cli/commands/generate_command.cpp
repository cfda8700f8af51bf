// `punica generate --model PATH --tokens 1,2,3 [--tokens ...] [--max-tokens N --temperature T --top-k K
// --top-p P --min-p M --seed S --ignore-eos]`: generates from token-id prompts and prints the new token ids,
// one line per prompt (comma-separated, same order). Several --tokens run as one batch.
// GenerateArgs collects every option, so further options (text prompts, --lora) are added as fields.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "engine/generator.h"
#include "engine/runtime.h"

namespace punica::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::vector<std::string> token_prompts;   // "1,2,3" each
  int64_t max_tokens = 16;
  float temperature = 0.f;
  int64_t top_k = 0;
  float top_p = 1.f;
  float min_p = 0.f;
  std::optional<uint64_t> seed;
  bool ignore_eos = false;
  int threads = 2;
};

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "punica generate: %s\n", message.c_str());
  throw CLI::RuntimeError(1);
}

Expected<std::vector<int32_t>> parse_token_list(const std::string& text, size_t which) {
  std::vector<int32_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b == std::string::npos)
      return invalid_argument("--tokens #" + std::to_string(which + 1) + ": empty item in '" + text + "'");
    const std::string t = item.substr(b, e - b + 1);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(t, &used);
    } catch (...) {
      used = 0;
    }
    if (used != t.size() || v < 0 || v > INT32_MAX)
      return invalid_argument("--tokens #" + std::to_string(which + 1) + ": '" + t +
                              "' is not a non-negative token id");
    out.push_back(static_cast<int32_t>(v));
  }
  if (out.empty()) return invalid_argument("--tokens #" + std::to_string(which + 1) + ": no token ids");
  return out;
}

void run_generate(const GenerateArgs& args) {
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < args.token_prompts.size(); ++i) {
    auto p = parse_token_list(args.token_prompts[i], i);
    if (!p) fail(p.status().message());
    prompts.push_back(std::move(*p));
  }
  if (prompts.empty()) fail("give a prompt with --tokens");
  engine::RuntimeOptions ro;
  ro.num_threads = args.threads;
  auto rt = engine::Runtime::open(args.model, ro);
  if (!rt) fail(rt.status().message());
  model::LlamaModel& m = (*rt)->model();
  int64_t kv_tokens = 0;
  for (const auto& p : prompts) kv_tokens += static_cast<int64_t>(p.size()) + std::max<int64_t>(args.max_tokens, 0) + 16;
  auto kv = m.make_kv_cache(kv_tokens);
  if (!kv) fail(kv.status().message());
  engine::Generator gen(m, *kv);
  for (size_t i = 0; i < prompts.size(); ++i) {
    engine::GenerationRequest req;
    req.id = std::to_string(i);
    req.prompt = prompts[i];
    req.max_tokens = args.max_tokens;
    req.sampling.temperature = args.temperature;
    req.sampling.top_k = args.top_k;
    req.sampling.top_p = args.top_p;
    req.sampling.min_p = args.min_p;
    req.sampling.seed = args.seed;
    if (!args.ignore_eos) {
      for (int64_t id : m.config().eos_token_ids) req.stop_token_ids.push_back(static_cast<int32_t>(id));
    }
    auto added = gen.add(std::move(req));
    if (!added) fail("--tokens #" + std::to_string(i + 1) + ": " + added.status().message());
  }
  Status st = gen.run_to_completion();
  if (!st) fail(st.message());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& toks = gen.generated(i);
    std::string line;
    for (size_t k = 0; k < toks.size(); ++k) line += (k ? "," : "") + std::to_string(toks[k]);
    std::cout << line << '\n';
  }
  std::cout.flush();
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate tokens from token-id prompts");
  cmd->add_option("--model", args->model, "Hugging Face model folder or .gguf file")->required();
  cmd->add_option("--tokens", args->token_prompts, "Prompt token ids, comma-separated (repeat for a batch)");
  cmd->add_option("--max-tokens", args->max_tokens, "New tokens per prompt")->default_val(16);
  cmd->add_option("--temperature", args->temperature, "0 = greedy")->default_val(0.f);
  cmd->add_option("--top-k", args->top_k, "0 = off")->default_val(0);
  cmd->add_option("--top-p", args->top_p, "1 = off")->default_val(1.f);
  cmd->add_option("--min-p", args->min_p, "0 = off")->default_val(0.f);
  cmd->add_option("--seed", args->seed, "Sampling seed (per prompt RNG)");
  cmd->add_flag("--ignore-eos", args->ignore_eos, "Do not stop at the model's EOS tokens");
  cmd->add_option("--threads", args->threads, "CPU threads")->default_val(2);
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace punica::cli
