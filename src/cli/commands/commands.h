// Each `punica` subcommand lives in its own file and adds itself to the app here.
#pragma once

namespace CLI {
class App;
}

namespace punica::cli {

void add_version_command(CLI::App& app);
void add_score_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_info_command(CLI::App& app);
void add_tokenize_commands(CLI::App& app);  // tokenize, detokenize

}  // namespace punica::cli
