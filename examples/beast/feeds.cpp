// The simulated feeds: stock prices on ticker:SYMBOL channels, job progress to its user.
#include "api.hpp"

#include <algorithm>
#include <cmath>

namespace demo {

namespace {

constexpr int job_step_percent = 5;
constexpr auto job_step = std::chrono::milliseconds(150);

}  // namespace

void App::run_feed(Clock::time_point now) {
  if (opts_.ticker.count() <= 0) return;
  std::vector<std::pair<std::string, std::string>> updates;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (now < next_quote_) return;
    next_quote_ =
        next_quote_ == Clock::time_point{} ? now + opts_.ticker : next_quote_ + opts_.ticker;
    if (next_quote_ < now) next_quote_ = now + opts_.ticker;
    std::normal_distribution<double> step(0.0, 0.004);
    for (auto& q : quotes_) {
      double before = q.price;
      q.price = std::max(1.0, std::round(q.price * (1.0 + step(rng_)) * 100.0) / 100.0);
      json data{{"symbol", q.symbol},
                {"price", q.price},
                {"change", std::round((q.price - before) * 100.0) / 100.0}};
      updates.emplace_back("ticker:" + q.symbol, data.dump());
    }
  }
  for (auto& [channel, data] : updates)
    (void)send(ssepp::Target::channel(std::move(channel)),
               ssepp::Event{}.with_type("price").with_data(std::move(data)));
}

void App::run_jobs(Clock::time_point now) {
  std::vector<std::pair<std::string, std::string>> updates;  // user, data
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& job : jobs_) {
      if (now < job.next) continue;
      job.percent = std::min(100, job.percent + job_step_percent);
      job.next = now + job_step;
      json data{{"job", job.id}, {"percent", job.percent}, {"done", job.percent >= 100}};
      updates.emplace_back(job.user, data.dump());
    }
    jobs_.erase(std::remove_if(jobs_.begin(), jobs_.end(),
                               [](const Job& job) { return job.percent >= 100; }),
                jobs_.end());
  }
  for (auto& [user, data] : updates)
    (void)send(ssepp::Target::user(user),
               ssepp::Event{}.with_type("progress").with_data(std::move(data)));
}

}  // namespace demo
