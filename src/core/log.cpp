#include "core/log.h"

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace punica {

LogLevel log_level() {
  static const LogLevel level = [] {
    const char* env = std::getenv("PUNICA_LOG_LEVEL");
    if (!env) return LogLevel::kInfo;
    if (!std::strcmp(env, "debug")) return LogLevel::kDebug;
    if (!std::strcmp(env, "warn")) return LogLevel::kWarn;
    if (!std::strcmp(env, "error")) return LogLevel::kError;
    return LogLevel::kInfo;
  }();
  return level;
}

void log_message(LogLevel level, const std::string& msg) {
  static std::mutex mu;
  static const char* names[] = {"debug", "info", "warn", "error"};
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "[punica %s] %s\n", names[static_cast<int>(level)], msg.c_str());
}

}  // namespace punica
