// ssepp-bench COMMAND [ARGS]: see `ssepp-bench help`.
#include "bench.hpp"

int main(int argc, char** argv) {
  bench::Args args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "help" || !bench::commands().count(args[0])) {
    std::fprintf(stderr, "usage: ssepp-bench COMMAND [ARGS]\n");
    for (auto& [name, c] : bench::commands()) std::fprintf(stderr, "  %s\n", c.second.c_str());
    return args.empty() || args[0] == "help" ? 0 : 2;
  }
  auto& cmd = bench::commands()[args[0]].first;
  return cmd(bench::Args(args.begin() + 1, args.end()));
}
