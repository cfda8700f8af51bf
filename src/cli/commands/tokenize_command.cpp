// `punica tokenize --model PATH --text TEXT [--pieces] [--add-special-tokens]` prints the token ids
// (comma-separated) of TEXT, or one "id<TAB>piece" line per token with --pieces.
// `punica detokenize --model PATH --ids 1,2,3 [--skip-special-tokens]` prints the decoded text.
// PATH: a model folder with tokenizer.json, a tokenizer.json file, or a .gguf file.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands/commands.h"
#include "cli/commands/token_id_list.h"
#include "tokenizer/tokenizer.h"

namespace punica::cli {
namespace {

struct TokenizeArgs {
  std::string model;
  std::string text;
  std::string ids;
  bool pieces = false;
  bool add_special_tokens = false;
  bool skip_special_tokens = false;
};

[[noreturn]] void fail(const char* command, const std::string& message) {
  std::fprintf(stderr, "punica %s: %s\n", command, message.c_str());
  throw CLI::RuntimeError(1);
}

std::unique_ptr<Tokenizer> load_or_fail(const char* command, const std::string& model) {
  auto t = Tokenizer::load(model);
  if (!t) fail(command, t.status().message());
  return std::move(*t);
}

void run_tokenize(const TokenizeArgs& args) {
  auto tok = load_or_fail("tokenize", args.model);
  std::vector<int32_t> ids = tok->encode(args.text, args.add_special_tokens);
  if (args.pieces) {
    // The piece as the vocabulary spells it, JSON-quoted so spaces, newlines and bytes stay visible.
    for (int32_t id : ids)
      std::cout << id << '\t' << nlohmann::json(tok->id_to_token(id)).dump(-1, ' ', false,
                                                                         nlohmann::json::error_handler_t::replace)
                << '\n';
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? "," : "") << ids[i];
    std::cout << '\n';
  }
}

void run_detokenize(const TokenizeArgs& args) {
  auto tok = load_or_fail("detokenize", args.model);
  std::vector<int32_t> ids;
  std::stringstream ss(args.ids);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const std::optional<long long> v = parse_token_id(item);
    if (!v || *v >= tok->vocab_size())
      fail("detokenize", "--ids: '" + item + "' is not a token id in [0, " + std::to_string(tok->vocab_size()) + ")");
    ids.push_back(static_cast<int32_t>(*v));
  }
  std::cout << tok->decode(ids, args.skip_special_tokens) << '\n';
}

}  // namespace

void add_tokenize_commands(CLI::App& app) {
  auto args = std::make_shared<TokenizeArgs>();
  auto* tok = app.add_subcommand("tokenize", "Print the token ids of a text");
  tok->add_option("--model", args->model, "Model folder (tokenizer.json), tokenizer.json or .gguf file")->required();
  tok->add_option("--text", args->text, "Text to tokenize")->required();
  tok->add_flag("--pieces", args->pieces, "Print one 'id<TAB>token' line per token");
  tok->add_flag("--add-special-tokens", args->add_special_tokens, "Add BOS/EOS as the model's tokenizer does");
  tok->callback([args] { run_tokenize(*args); });

  auto* detok = app.add_subcommand("detokenize", "Print the text of token ids");
  detok->add_option("--model", args->model, "Model folder (tokenizer.json), tokenizer.json or .gguf file")->required();
  detok->add_option("--ids", args->ids, "Token ids, comma-separated")->required();
  detok->add_flag("--skip-special-tokens", args->skip_special_tokens, "Leave out special tokens");
  detok->callback([args] { run_detokenize(*args); });
}

}  // namespace punica::cli
