// Runs the built `punica` binary as a user would, for the end-to-end CLI tests. ctest runs each test in its
// own process, in parallel: every temp file carries the process id.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace punica::cli_test {

inline const std::string& punica_binary() {
  static const std::string bin = std::string(PUNICA_BINARY_DIR) + "/bin/punica";
  return bin;
}

// A temp path unique to this process: TempDir/<pid>_<name>.
inline std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + std::to_string(::getpid()) + "_" + name;
}

inline std::string write_temp_file(const std::string& name, const std::string& text) {
  const std::string path = temp_path(name);
  std::ofstream(path) << text;
  return path;
}

struct CliRun {
  int code = -1;
  std::string out, err;
};

// `punica ARGS`: stdout and stderr apart, and the exit code (-1 if it did not exit normally).
inline CliRun run_punica(const std::string& args) {
  const std::string err_path = temp_path("punica_cli_stderr.txt");
  CliRun r;
  FILE* p = popen((punica_binary() + " " + args + " 2>" + err_path).c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err_path);
  std::stringstream ss;
  ss << e.rdbuf();
  r.err = ss.str();
  return r;
}

}  // namespace punica::cli_test
