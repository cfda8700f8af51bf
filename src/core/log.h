// Minimal leveled logging to stderr. PUNICA_LOG_LEVEL=debug|info|warn|error (default info).
#pragma once

#include <cstdio>
#include <string>

namespace punica {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError };
LogLevel log_level();
void log_message(LogLevel level, const std::string& msg);

}  // namespace punica

#define PUNICA_LOG(level, msg)                                                     \
  do {                                                                             \
    if (::punica::LogLevel::level >= ::punica::log_level())                        \
      ::punica::log_message(::punica::LogLevel::level, (msg));                     \
  } while (0)
