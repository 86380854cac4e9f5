// docs/testing.md: two test cases of a user's own code, with a stand-in for the test framework.
#include <string>
#include <vector>
// @includes
#include <ssepp/broadcaster.hpp>

#define TEST_CASE_NAME2(line) test_case_##line
#define TEST_CASE_NAME(line) TEST_CASE_NAME2(line)
#define TEST_CASE(name) static void TEST_CASE_NAME(__LINE__)()
#define REQUIRE(...) static_cast<void>(static_cast<bool>(__VA_ARGS__))
#define CHECK(...) static_cast<void>(static_cast<bool>(__VA_ARGS__))

struct Quote {
  std::string symbol;
  double price;
};
ssepp::Event price_event(const Quote& q);
template <class S>
void publish_trade(ssepp::Broadcaster<S>& hub, const Quote& q);

// @snippet
