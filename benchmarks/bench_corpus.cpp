// ssepp-bench corpus DIR [--size MB]: writes the deterministic parser corpora (json.sse, llm.sse,
// multiline.sse, crlf.sse; 32 MB each by default) for `ssepp-bench parse FILE` and for peers.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench.hpp"
#include "corpus.hpp"

namespace {

int run(const bench::Args& args) {
  if (args.empty() || args[0].rfind("--", 0) == 0) {
    std::fprintf(stderr, "usage: ssepp-bench corpus DIR [--size MB]\n");
    return 2;
  }
  const std::string dir = args[0];
  const double mb = std::atof(bench::option(args, "--size", "32").c_str());
  if (!(mb > 0)) {
    std::fprintf(stderr, "ssepp-bench corpus: --size must be a positive number of MB\n");
    return 2;
  }
  const auto bytes = static_cast<std::size_t>(mb * 1e6);
  for (const corpus::Kind& kind : corpus::kinds()) {
    const std::string path = dir + "/" + kind.name + ".sse";
    const std::string data = kind.make(bytes);
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr || std::fwrite(data.data(), 1, data.size(), f) != data.size() ||
        std::fclose(f) != 0) {
      std::fprintf(stderr, "ssepp-bench corpus: cannot write %s\n", path.c_str());
      return 1;
    }
    std::printf("{\"file\":\"%s\",\"bytes\":%zu}\n", path.c_str(), data.size());
  }
  return 0;
}

bench::Register reg("corpus", "corpus DIR [--size MB]   write the parser corpora (json, llm, multiline, crlf)",
                    run);

}  // namespace
