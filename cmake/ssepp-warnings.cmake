# Our own targets' flags: warnings as errors, never propagated to consumers (this target is not
# installed and only our tests, examples and benchmarks link it).
add_library(ssepp_warnings INTERFACE)
if(MSVC)
  target_compile_options(ssepp_warnings INTERFACE /W4 /WX)
else()
  target_compile_options(ssepp_warnings INTERFACE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Werror)
endif()
