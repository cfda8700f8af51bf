// `punica generate --model PATH --tokens 1,2,3 [--tokens ...] [--max-tokens N --temperature T --top-k K
// --top-p P --min-p M --seed S --ignore-eos]`: generates from token-id prompts and prints the new token ids,
// one line per prompt (comma-separated, same order). Several --tokens run as one batch.
// GenerateArgs collects every option, so further options (text prompts, --lora) are added as fields.
// LoRA: --lora NAME=PATH (repeatable); --adapter NAME applies to every --tokens prompt; --input FILE.jsonl
// adds one prompt per line, {"id": optional, "adapter": "NAME" or null, "prompt": TEXT} or {..., "tokens":
// [ids]}, all run as one batch with the --tokens prompts. Text prompts are encoded with the model's
// tokenizer and BOS rules (as --prompt). With --input, every result is printed as one JSON line
// {"id", "adapter", "tokens", "text"} ("text" when the model has a tokenizer), in input order.
// Text: --prompt TEXT (encoded with the model's BOS rules) or --chat TEXT [--system TEXT] (the model's
// chat template with a generation prompt, as apply_chat_template(tokenize=True)); the reply is streamed
// as text to stdout while it is generated, it stops at the model's EOS / end-of-turn tokens or
// --max-tokens, and tokens/s go to stderr. --print-ids also prints the generated ids to stderr.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands/commands.h"
#include "cli/commands/jsonl_input.h"
#include "cli/commands/lora_options.h"
#include "cli/commands/token_id_list.h"
#include "tokenizer/chat_prompt.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"
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
  LoraCliOptions lora;
  std::string adapter;                      // for every --tokens prompt ("" = base model)
  std::string input;                        // JSONL prompts with per-line adapters
  std::string prompt_text;                  // --prompt: one text prompt
  std::string chat_text;                    // --chat: one user message
  std::string system_text;                  // --system: with --chat
  bool print_ids = false;                   // text modes: also print the generated ids (stderr)
};

struct Prompt {
  std::vector<int32_t> tokens;
  std::optional<std::string> text;          // a "prompt" line: encoded once the tokenizer is loaded
  std::string adapter;                      // "" = base model
  nlohmann::json id;                        // the line's "id", echoed in the output (null when absent)
  std::string where;                        // for messages
};

Expected<std::vector<Prompt>> read_generate_input(const std::string& path) {
  std::vector<Prompt> out;
  Status st = jsonl_for_each_object(path, [&](const nlohmann::json& j, const std::string& where) -> Status {
    Prompt p;
    p.where = where;
    auto adapter = jsonl_adapter_field(j, where);
    if (!adapter) return adapter.status();
    p.adapter = std::move(*adapter);
    if (auto id = j.find("id"); id != j.end()) {
      if (!id->is_string() && !id->is_number_integer() && !id->is_null())
        return invalid_argument(where + ": field 'id' must be a string or an integer");
      p.id = *id;
    }
    auto text = j.find("prompt");
    if (text != j.end() && j.contains("tokens"))
      return invalid_argument(where + ": give either 'prompt' (text) or 'tokens' (ids), not both");
    if (text != j.end()) {
      if (!text->is_string() || text->get<std::string>().empty())
        return invalid_argument(where + ": field 'prompt' must be a non-empty string");
      p.text = text->get<std::string>();
    } else {
      if (!j.contains("tokens")) return invalid_argument(where + ": field 'prompt' or 'tokens' is missing");
      auto tokens = jsonl_tokens_field(j, where);
      if (!tokens) return tokens.status();
      p.tokens = std::move(*tokens);
    }
    out.push_back(std::move(p));
    return Status::ok();
  });
  if (!st) return st;
  return out;
}

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
    const std::optional<long long> v = parse_token_id(t);
    if (!v || *v > INT32_MAX)
      return invalid_argument("--tokens #" + std::to_string(which + 1) + ": '" + t +
                              "' is not a non-negative token id");
    out.push_back(static_cast<int32_t>(*v));
  }
  if (out.empty()) return invalid_argument("--tokens #" + std::to_string(which + 1) + ": no token ids");
  return out;
}

// The model with its --lora adapters; fails the command with the error otherwise.
LoadedModel load_model(const GenerateArgs& args) {
  auto loaded = load_model_with_adapters(args.model, args.threads, args.lora);
  if (!loaded) fail(loaded.status().message());
  return std::move(*loaded);
}

// The slot of a --lora adapter name ("" = base model, -1); `where` prefixes the error.
int32_t adapter_slot(const LoadedModel& loaded, const std::string& name, const std::string& where) {
  if (name.empty()) return -1;
  auto slot = loaded.adapters->slot_of(name);
  if (!slot) fail(where + ": " + slot.status().message());
  return *slot;
}

// Generation stops at the config's EOS ids and, when the tokenizer is loaded, at its end-of-turn ids.
std::vector<int32_t> stop_token_ids(const GenerateArgs& args, const model::LlamaModel& m, const Tokenizer* tokenizer) {
  std::vector<int32_t> ids;
  if (args.ignore_eos) return ids;
  if (tokenizer) ids = tokenizer->stop_ids();
  for (int64_t id : m.config().eos_token_ids) {
    const auto i = static_cast<int32_t>(id);
    if (std::find(ids.begin(), ids.end(), i) == ids.end()) ids.push_back(i);
  }
  return ids;
}

engine::GenerationRequest make_request(const GenerateArgs& args, std::string id, std::vector<int32_t> prompt,
                                       int32_t slot, std::vector<int32_t> stop_ids) {
  engine::GenerationRequest req;
  req.id = std::move(id);
  req.prompt = std::move(prompt);
  req.max_tokens = args.max_tokens;
  req.sampling.temperature = args.temperature;
  req.sampling.top_k = args.top_k;
  req.sampling.top_p = args.top_p;
  req.sampling.min_p = args.min_p;
  req.sampling.seed = args.seed;
  req.adapter_slot = slot;
  req.stop_token_ids = std::move(stop_ids);
  return req;
}

// KV room for the prompts and their new tokens (+16 spare tokens each).
int64_t kv_tokens_for(const std::vector<std::vector<int32_t>>& prompts, int64_t max_tokens) {
  int64_t n = 0;
  for (const auto& p : prompts) n += static_cast<int64_t>(p.size()) + std::max<int64_t>(max_tokens, 0) + 16;
  return n;
}

// --prompt / --chat: one text prompt, its reply streamed as text.
void run_generate_text(const GenerateArgs& args) {
  if (!args.token_prompts.empty() || !args.input.empty()) fail("--prompt/--chat cannot be combined with --tokens/--input");
  if (!args.prompt_text.empty() && !args.chat_text.empty()) fail("give either --prompt or --chat, not both");
  if (!args.system_text.empty() && args.chat_text.empty()) fail("--system needs --chat");
  auto tok = Tokenizer::load(args.model);
  if (!tok) fail(tok.status().message());
  const Tokenizer& tokenizer = **tok;
  std::vector<int32_t> prompt;
  if (!args.chat_text.empty()) {
    auto chat = chat_prompt_render(tokenizer, chat_messages(args.chat_text, args.system_text));
    if (!chat) fail(chat.status().message());
    prompt = std::move(chat->ids);
  } else {
    prompt = tokenizer.encode(args.prompt_text, /*add_special_tokens=*/true);
  }
  if (prompt.empty()) fail("the prompt has no tokens");
  LoadedModel loaded = load_model(args);
  model::LlamaModel& m = loaded.model();
  const int32_t slot = adapter_slot(loaded, args.adapter, "--adapter");
  auto kv = m.make_kv_cache(kv_tokens_for({prompt}, args.max_tokens));
  if (!kv) fail(kv.status().message());
  engine::Generator gen(m, *kv);
  engine::GenerationRequest req = make_request(args, "0", prompt, slot, stop_token_ids(args, m, &tokenizer));
  auto added = gen.add(std::move(req));
  if (!added) fail(added.status().message());
  Detokenizer detok(tokenizer, /*skip_special_tokens=*/true);
  const auto start = std::chrono::steady_clock::now();
  auto first_token = start;
  size_t n_generated = 0;
  while (gen.has_unfinished()) {
    auto events = gen.step();
    if (!events) fail(events.status().message());
    for (const engine::GenerationEvent& e : *events) {
      if (e.token < 0) continue;
      if (n_generated++ == 0) first_token = std::chrono::steady_clock::now();
      std::string piece = detok.push(e.token);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
  }
  std::string rest = detok.finish();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  const auto end = std::chrono::steady_clock::now();
  const double total = std::chrono::duration<double>(end - start).count();
  const double decode = std::chrono::duration<double>(end - first_token).count();
  std::fprintf(stderr, "[punica] prompt %zu tokens, generated %zu tokens in %.2f s: %.1f tokens/s (decode %.1f tokens/s)\n",
               prompt.size(), n_generated, total, total > 0 ? n_generated / total : 0.0,
               decode > 0 && n_generated > 1 ? (n_generated - 1) / decode : 0.0);
  if (args.print_ids) {
    std::string line;
    for (size_t k = 0; k < gen.generated(0).size(); ++k) line += (k ? "," : "") + std::to_string(gen.generated(0)[k]);
    std::fprintf(stderr, "[punica] ids: %s\n", line.c_str());
  }
}

void run_generate(const GenerateArgs& args) {
  if (!args.prompt_text.empty() || !args.chat_text.empty()) {
    run_generate_text(args);
    return;
  }
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> adapter_of, where_of;
  for (size_t i = 0; i < args.token_prompts.size(); ++i) {
    auto p = parse_token_list(args.token_prompts[i], i);
    if (!p) fail(p.status().message());
    prompts.push_back(std::move(*p));
    adapter_of.push_back(args.adapter);
    where_of.push_back("--tokens #" + std::to_string(i + 1));
  }
  std::vector<nlohmann::json> id_of(prompts.size());
  // The tokenizer is needed for "prompt" lines and gives --input results their text; tiny test models
  // without one still run token prompts.
  std::unique_ptr<Tokenizer> tokenizer;
  if (!args.input.empty()) {
    auto lines = read_generate_input(args.input);
    if (!lines) fail(lines.status().message());
    auto tok = Tokenizer::load(args.model);
    if (tok) tokenizer = std::move(*tok);
    for (Prompt& p : *lines) {
      if (p.text) {
        if (!tokenizer) fail(p.where + ": field 'prompt': " + tok.status().message());
        p.tokens = tokenizer->encode(*p.text, /*add_special_tokens=*/true);
        if (p.tokens.empty()) fail(p.where + ": field 'prompt' encodes to no tokens");
      }
      prompts.push_back(std::move(p.tokens));
      adapter_of.push_back(p.adapter);
      where_of.push_back(p.where);
      id_of.push_back(std::move(p.id));
    }
  }
  if (prompts.empty()) fail("give a prompt with --tokens or --input");
  LoadedModel loaded = load_model(args);
  model::LlamaModel& m = loaded.model();
  std::vector<int32_t> slot_of(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) slot_of[i] = adapter_slot(loaded, adapter_of[i], where_of[i]);
  auto kv = m.make_kv_cache(kv_tokens_for(prompts, args.max_tokens));
  if (!kv) fail(kv.status().message());
  engine::Generator gen(m, *kv);
  const std::vector<int32_t> stop_ids = stop_token_ids(args, m, tokenizer.get());
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto added = gen.add(make_request(args, std::to_string(i), prompts[i], slot_of[i], stop_ids));
    if (!added) fail(where_of[i] + ": " + added.status().message());
  }
  Status st = gen.run_to_completion();
  if (!st) fail(st.message());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& toks = gen.generated(i);
    if (!args.input.empty()) {
      nlohmann::ordered_json out;
      out["id"] = id_of[i].is_null() ? nlohmann::json(i) : id_of[i];
      out["adapter"] = adapter_of[i].empty() ? nlohmann::json(nullptr) : nlohmann::json(adapter_of[i]);
      out["tokens"] = toks;
      if (tokenizer) out["text"] = tokenizer->decode(toks, /*skip_special_tokens=*/true);
      std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
      continue;
    }
    std::string line;
    for (size_t k = 0; k < toks.size(); ++k) line += (k ? "," : "") + std::to_string(toks[k]);
    std::cout << line << '\n';
  }
  std::cout.flush();
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate from token-id, text or chat prompts");
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
  add_lora_options(cmd, &args->lora);
  cmd->add_option("--adapter", args->adapter, "LoRA adapter (a --lora NAME) for the --tokens prompts");
  cmd->add_option("--input", args->input,
                  "JSONL prompts, one batch: {\"adapter\": NAME|null, \"prompt\": TEXT or \"tokens\": [...]} per line");
  cmd->add_option("--prompt", args->prompt_text, "Text prompt (streams the generated text)");
  cmd->add_option("--chat", args->chat_text, "User message, rendered with the model's chat template");
  cmd->add_option("--system", args->system_text, "System message for --chat");
  cmd->add_flag("--print-ids", args->print_ids, "With --prompt/--chat: also print the generated ids to stderr");
  cmd->callback([args] { run_generate(*args); });
}

}  // namespace punica::cli
