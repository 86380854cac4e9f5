// The test runner, shared by every test executable, for Catch2 2.x and 3.x.
//
// With a watchdog: a test executable that runs longer than SSEPP_TEST_WATCHDOG seconds (default
// 300, 0 for none) prints the test case it is in (with a stack trace under a sanitizer) and
// exits with status 124. A hang then fails with its name within ctest's timeout, instead of being
// killed silently with its output still buffered.
#if __has_include(<catch2/catch_session.hpp>)
#  include <catch2/catch_section_info.hpp>
#  include <catch2/catch_session.hpp>
#  include <catch2/catch_test_case_info.hpp>
#  include <catch2/reporters/catch_reporter_event_listener.hpp>
#  include <catch2/reporters/catch_reporter_registrars.hpp>
using ListenerBase = Catch::EventListenerBase;
#else
#  define CATCH_CONFIG_RUNNER
#  include <catch2/catch.hpp>
using ListenerBase = Catch::TestEventListenerBase;
#endif

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#  define SSEPP_TEST_SANITIZED 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#    define SSEPP_TEST_SANITIZED 1
#  endif
#endif
#ifdef SSEPP_TEST_SANITIZED
extern "C" void __sanitizer_print_stack_trace();
#endif

namespace {

// What the alarm handler prints: written by the listener, read by the handler (plain bytes, no
// allocation there).
char current[512] = "(before the first test case)";

void set_current(const char* what, const std::string& name) {
  std::string text = std::string(what) + " \"" + name + "\"";
  std::strncpy(current, text.c_str(), sizeof current - 1);
}

void write_all(const char* s) {
  std::size_t n = std::strlen(s);
  while (n > 0) {
    ssize_t w = ::write(STDERR_FILENO, s, n);
    if (w <= 0) return;
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

extern "C" void on_watchdog(int) {
  write_all("\nwatchdog: still running after SSEPP_TEST_WATCHDOG seconds, in ");
  write_all(current);
  write_all("\n");
#ifdef SSEPP_TEST_SANITIZED
  __sanitizer_print_stack_trace();
#endif
  ::_exit(124);
}

struct WatchdogListener : ListenerBase {
  using ListenerBase::ListenerBase;
  // Each calls the base too: it keeps state of its own (a stack of sections).
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    ListenerBase::testCaseStarting(info);
    set_current("test case", info.name);
  }
  void sectionStarting(const Catch::SectionInfo& info) override {
    ListenerBase::sectionStarting(info);
    set_current("section", info.name);
  }
  void testRunEnded(const Catch::TestRunStats& stats) override {
    ListenerBase::testRunEnded(stats);
    set_current("exit", "after the last test case");
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(WatchdogListener)

int main(int argc, char* argv[]) {
  unsigned seconds = 300;
  if (const char* env = std::getenv("SSEPP_TEST_WATCHDOG"))
    seconds = static_cast<unsigned>(std::strtoul(env, nullptr, 10));
  if (seconds > 0) {
    struct sigaction sa {};
    sa.sa_handler = on_watchdog;
    ::sigaction(SIGALRM, &sa, nullptr);
    ::alarm(seconds);
  }
  return Catch::Session().run(argc, argv);
}
