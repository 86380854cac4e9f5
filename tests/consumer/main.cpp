// A consumer's program: includes the umbrella header and uses the library.
#include <ssepp/ssepp.hpp>

#include <cstdio>

int main() {
  ssepp::Event ev;
  ev.type = "price";
  ev.data = "{\"x\":1}";
  ev.id = "7";
  if (ev.effective_type() != "price") return 1;
  std::printf("ssepp %d consumer ok\n", SSEPP_VERSION);
  return 0;
}
