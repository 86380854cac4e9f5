// ssepp-llm [--url URL] [--model MODEL] [--cacert FILE] PROMPT...
//
// Streams an OpenAI-style chat completion and prints the tokens as they arrive: a POST with a
// JSON body and `Authorization: Bearer $OPENAI_API_KEY`, unnamed events whose data is a JSON
// chunk (`choices[0].delta.content`), the end at `data: [DONE]`. One-shot: never requested
// again after its end (a second request would be a second, paid completion); 408, 429 and 5xx
// are retried after their Retry-After, up to three times.
//
// The URL: --url, else $OPENAI_BASE_URL + "/chat/completions", else OpenAI's. The model:
// --model, else $OPENAI_MODEL, else "gpt-4o-mini".
#include <ssepp/asio/client.hpp>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::move(fallback);
}

}  // namespace

int main(int argc, char** argv) {
  std::string url, model = env_or("OPENAI_MODEL", "gpt-4o-mini"), prompt, ca_file;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--url" || a == "--model" || a == "--cacert") && i + 1 < argc) {
      (a == "--url" ? url : a == "--model" ? model : ca_file) = argv[++i];
    } else {
      prompt += (prompt.empty() ? "" : " ") + a;
    }
  }
  if (prompt.empty()) {
    std::fprintf(stderr, "usage: ssepp-llm [--url URL] [--model MODEL] [--cacert FILE] PROMPT...\n");
    return 2;
  }
  if (url.empty()) url = env_or("OPENAI_BASE_URL", "https://api.openai.com/v1") + "/chat/completions";
  const std::string key = env_or("OPENAI_API_KEY", "");
  if (key.empty()) {
    std::fprintf(stderr, "ssepp-llm: set OPENAI_API_KEY\n");
    return 2;
  }

  ssepp::asio::EventClientOptions o;
  o.client.url = url;
  o.client.method = "POST";
  o.client.body = nlohmann::json{{"model", model},
                                 {"stream", true},
                                 {"messages", {{{"role", "user"}, {"content", prompt}}}}}
                      .dump();
  o.client.headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer " + key}};
  o.client.policy = ssepp::RetryPolicy::api;  // 408, 429, 5xx: retried after Retry-After
  o.client.reconnect_on_end = false;          // one-shot: a finished completion is not asked again
  o.client.max_retries = 3;
  o.read_timeout = std::chrono::seconds(120);  // a model may think a while before its first token
  o.ca_file = ca_file;

  boost::asio::io_context ioc;
  auto made = ssepp::asio::EventClient::create(ioc.get_executor(), o);
  if (!made) {
    std::fprintf(stderr, "ssepp-llm: %s\n", made.error().message().c_str());
    return 2;
  }
  auto client = *made;
  bool done = false;
  int status = 0;
  ssepp::asio::EventHandlers h;
  h.on_event = [&](const ssepp::EventView& ev) {
    if (ev.data == "[DONE]") {
      done = true;
      return client->close();  // the completion is over, whatever the connection does
    }
    auto chunk = nlohmann::json::parse(ev.data, nullptr, false);  // no exception on bad JSON
    if (chunk.is_discarded()) return;
    const auto* text = [&]() -> const nlohmann::json* {
      if (!chunk.contains("choices") || !chunk["choices"].is_array() || chunk["choices"].empty())
        return nullptr;
      const auto& c = chunk["choices"][0];
      if (!c.contains("delta") || !c["delta"].contains("content")) return nullptr;
      return c["delta"]["content"].is_string() ? &c["delta"]["content"] : nullptr;
    }();
    if (text != nullptr) {
      std::fputs(text->get_ref<const std::string&>().c_str(), stdout);
      std::fflush(stdout);
    }
  };
  h.on_reconnect = [](std::chrono::milliseconds delay, std::error_code why) {
    std::fprintf(stderr, "\nssepp-llm: %s; retrying in %lld ms\n",
                 why ? why.message().c_str() : "busy", static_cast<long long>(delay.count()));
  };
  h.on_close = [&](std::error_code ec) {
    std::fputs("\n", stdout);
    if (!ec && done) return;
    status = 1;
    const auto& c = client->client();
    std::fprintf(stderr, "ssepp-llm: %s", ec ? ec.message().c_str() : "the stream ended before [DONE]");
    if (c.status() != 0 && c.status() != 200) std::fprintf(stderr, " (HTTP %d)", c.status());
    std::fprintf(stderr, "\n%.*s\n", static_cast<int>(c.error_body().size()), c.error_body().data());
  };
  client->start(std::move(h));
  ioc.run();
  return status;
}
