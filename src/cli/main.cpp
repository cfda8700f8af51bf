// `punica`: the command-line program. Each subcommand is defined in src/cli/commands/.
#include <CLI/CLI.hpp>

#include "cli/commands/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"punica: one base LLM and many LoRA fine-tunes, served as one"};
  app.require_subcommand(1);
  punica::cli::add_version_command(app);
  punica::cli::add_score_command(app);
  punica::cli::add_generate_command(app);
  punica::cli::add_info_command(app);
  punica::cli::add_tokenize_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
