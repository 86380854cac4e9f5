// CHECK for the fuzz targets: a failed condition aborts with its line (libFuzzer keeps the input).
#pragma once

#include <cstdio>
#include <cstdlib>

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "check failed line %d: %s\n", __LINE__, #cond); \
      std::abort();                                                        \
    }                                                                      \
  } while (0)
