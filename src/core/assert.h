// PUNICA_ASSERT: aborts on a programmer bug (never on bad input: that is a Status).
#pragma once

#include <cstdio>
#include <cstdlib>

#define PUNICA_ASSERT(cond, ...)                                                             \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond);      \
      __VA_OPT__(std::fprintf(stderr, __VA_ARGS__); std::fputc('\n', stderr);)               \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)
