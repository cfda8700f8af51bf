#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/commands/commands.h"

namespace punica::cli {

void add_version_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("version", "Print the punica version and build options");
  cmd->callback([] {
#ifdef PUNICA_WITH_CUDA
    std::printf("punica 0.1.0 (cpu, cuda)\n");
#else
    std::printf("punica 0.1.0 (cpu)\n");
#endif
  });
}

}  // namespace punica::cli
