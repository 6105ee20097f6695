// The pump under `imgq submit` and `imgq ingest` against a fake broker: a
// ROUTER and a PUB socket on 127.0.0.1 ephemeral ports, answering as the
// test scripts it (PROTOCOL.md). Checks what the client does at each answer:
// results placed and acknowledged once, a refusal retried after
// retry_after_ms, unfinished jobs resubmitted under their keys when the
// broker's instance changes, and a silent broker given up on in time.
#include "imgq/client_cli/pump.h"

#include <algorithm>
#include <csignal>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "common/subprocess.h"
#include "imgq/common/zmq_frames.h"
#include "imgq/schemas/codec.h"

namespace imgq::client {
namespace {

using std::chrono::milliseconds;

template <typename F>
bool eventually(F done) {
  return imgq::testing::eventually(done, std::chrono::seconds(20));
}

// What the fake broker does with a submit: accept and finish it (with the
// result bytes "result:" + key), accept only, refuse as the queue full, or
// send the result alone (a broker holding `accepted` for accept_hold_ms).
// kEventOnly: publishes the job's event (the broker does at acceptance)
// and holds `accepted` back for good.
enum class OnSubmit { kFinish, kAcceptOnly, kQueueFull, kSilence, kResultOnly, kEventOnly };

class FakeBroker {
 public:
  FakeBroker() : router_(context_, zmq::socket_type::router), pub_(context_, zmq::socket_type::pub) {
    router_.set(zmq::sockopt::linger, 0);
    pub_.set(zmq::sockopt::linger, 0);
    router_.bind("tcp://127.0.0.1:*");
    pub_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    progress_ = pub_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeBroker() {
    stop_ = true;
    thread_.join();
  }

  const std::string& endpoint() const { return endpoint_; }

  // The behaviour for the n-th submit (0-based) of a key; later ones: kFinish.
  void script(const std::string& key, std::vector<OnSubmit> steps) {
    std::lock_guard<std::mutex> lock(mutex_);
    script_[key] = std::move(steps);
  }
  void set_instance(const std::string& instance) {
    std::lock_guard<std::mutex> lock(mutex_);
    instance_ = instance;
  }
  void set_silent(bool silent) { silent_ = silent; }
  // A ping that subscribes (it names the session) is answered on the
  // progress socket only, as when its published pong overtakes the reply.
  void set_subscribe_pongs_published_only(bool only) { published_only_ = only; }

  // Jobs whose keys were submitted, in order; acknowledged jobs.
  std::vector<std::string> submits() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return submits_;
  }
  std::map<std::string, int> acks() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return acks_;
  }
  // Each submit's accept_hold_ms, in order.
  std::vector<uint32_t> holds() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return holds_;
  }
  // Keys of the jobs cancelled, in order.
  std::vector<std::string> cancelled() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return cancelled_;
  }
  // Finishes every job accepted with kAcceptOnly (as the broker would once
  // a group has run it).
  void finish_accepted() {
    std::lock_guard<std::mutex> lock(mutex_);
    finish_now_ = true;
  }

 private:
  void serve() {
    while (!stop_) {
      zmq::pollitem_t items[] = {{router_.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 1, milliseconds(10));
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (finish_now_) {
          for (const auto& [identity, accepted] : unfinished_) finish(identity, accepted);
          unfinished_.clear();
          finish_now_ = false;
        }
      }
      if (!(items[0].revents & ZMQ_POLLIN)) continue;
      Frames frames;
      if (!recv_frames(router_, frames, 4, /*dontwait=*/true) || frames.size() < 2) continue;
      if (silent_) continue;
      const std::string identity = frames[0];
      auto header = proto::decode_header(frames[1]);
      if (!header.ok()) continue;
      std::lock_guard<std::mutex> lock(mutex_);
      if (header->type() == proto::Ping::kType) {
        auto ping = header->as<proto::Ping>();
        proto::Pong pong;
        pong.req = ping->req;
        pong.groups = 1;
        pong.instance = instance_;
        pong.progress = progress_;
        if (ping->session.empty() || !published_only_) reply(identity, proto::encode(pong));
        if (!ping->session.empty()) {
          pub_.send(zmq::buffer(ping->session), zmq::send_flags::sndmore);
          pub_.send(zmq::buffer(proto::encode(pong)));
        }
      } else if (header->type() == proto::Submit::kType) {
        auto submit = header->as<proto::Submit>();
        const size_t n = static_cast<size_t>(std::count(submits_.begin(), submits_.end(), submit->key));
        submits_.push_back(submit->key);
        const auto& steps = script_[submit->key];
        const OnSubmit step = n < steps.size() ? steps[n] : OnSubmit::kFinish;
        if (step == OnSubmit::kSilence) continue;
        if (step == OnSubmit::kQueueFull) {
          proto::Error error;
          error.req = submit->req;
          error.code = static_cast<int>(StatusCode::kResourceExhausted);
          error.code_name = "resource_exhausted";
          error.message = "the queue is full";
          error.retryable = true;
          error.retry_after_ms = 50;
          reply(identity, proto::encode(error));
          continue;
        }
        proto::Accepted accepted;
        accepted.req = submit->req;
        char number[9];
        std::snprintf(number, sizeof number, "%08llu", static_cast<unsigned long long>(++jobs_));
        accepted.job = submit->session + number;  // ids start with the session
        accepted.position = 1;
        job_keys_[accepted.job] = submit->key;
        holds_.push_back(submit->accept_hold_ms);
        if (step == OnSubmit::kResultOnly) {
          finish(identity, accepted);
          continue;
        }
        if (step == OnSubmit::kEventOnly) {
          proto::Event event;
          event.job.job = accepted.job;
          event.job.state = "queued";
          event.job.position = 1;
          event.job.name = submit->name;
          pub_.send(zmq::buffer(accepted.job), zmq::send_flags::sndmore);
          pub_.send(zmq::buffer(proto::encode(event)));
          continue;
        }
        reply(identity, proto::encode(accepted));
        if (step == OnSubmit::kFinish) {
          finish(identity, accepted);
        } else {
          unfinished_.emplace_back(identity, accepted);
        }
      } else if (header->type() == proto::Cancel::kType) {
        // As the broker: the state after, then the cancelled job's result
        // to its submitter (which must be acknowledged).
        auto cancel = header->as<proto::Cancel>();
        cancelled_.push_back(job_keys_[cancel->job]);
        auto it = std::find_if(unfinished_.begin(), unfinished_.end(),
                               [&](const auto& u) { return u.second.job == cancel->job; });
        proto::StatusReply state;
        state.req = cancel->req;
        state.job.job = cancel->job;
        state.job.state = "cancelled";
        reply(identity, proto::encode(state));
        if (it != unfinished_.end()) {
          proto::JobResult result;
          result.req = it->second.req;
          result.job = cancel->job;
          result.state = "cancelled";
          result.code = static_cast<int>(StatusCode::kCancelled);
          result.message = "cancelled on request";
          reply(it->first, proto::encode(result));
          unfinished_.erase(it);
        }
      } else if (header->type() == proto::ResultAck::kType) {
        auto ack = header->as<proto::ResultAck>();
        ++acks_[job_keys_[ack->job]];
        for (const std::string& job : ack->jobs) ++acks_[job_keys_[job]];
      }
    }
  }

  void finish(const std::string& identity, const proto::Accepted& accepted) {
    proto::JobResult result;
    result.req = accepted.req;
    result.job = accepted.job;
    result.state = "done";
    result.format = "png";
    reply(identity, proto::encode(result), "result:" + job_keys_[accepted.job]);
  }

  void reply(const std::string& identity, const std::string& header, const std::string& payload = {}) {
    router_.send(zmq::buffer(identity), zmq::send_flags::sndmore);
    router_.send(zmq::buffer(header), payload.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
    if (!payload.empty()) router_.send(zmq::buffer(payload));
  }

  zmq::context_t context_;
  zmq::socket_t router_, pub_;
  std::string endpoint_, progress_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> silent_{false}, published_only_{false};
  mutable std::mutex mutex_;
  std::string instance_ = "first";
  std::map<std::string, std::vector<OnSubmit>> script_;
  std::vector<std::string> submits_;
  std::map<std::string, int> acks_;
  std::vector<std::string> cancelled_;
  std::vector<uint32_t> holds_;
  std::map<std::string, std::string> job_keys_;
  std::vector<std::pair<std::string, proto::Accepted>> unfinished_;
  bool finish_now_ = false;
  uint64_t jobs_ = 0;
};

// Items "a", "b", ... whose results are kept in memory, not written.
class MemorySource : public ItemSource {
 public:
  explicit MemorySource(const std::filesystem::path& dir, int n) {
    for (int i = 0; i < n; ++i) {
      Item item;
      item.source = dir / (std::string(1, static_cast<char>('a' + i)) + ".png");
      item.output = item.source;
      item.key = "key-" + std::string(1, static_cast<char>('a' + i));
      items_.push_back(item);
    }
  }
  std::optional<Item> next() override {
    if (next_ >= items_.size()) return std::nullopt;
    return items_[next_++];
  }
  bool exhausted() const override { return next_ >= items_.size(); }
  Status place(Item& item, std::string_view bytes) override {
    ++placed_[item.key];
    results_[item.key] = std::string(bytes);
    return Status::Ok();
  }
  std::vector<Status> sync(const std::vector<Item*>& placed) override {
    return std::vector<Status>(placed.size(), Status::Ok());
  }
  std::map<std::string, std::string> results_;
  std::map<std::string, int> placed_;

 private:
  std::vector<Item> items_;
  size_t next_ = 0;
};

class PumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("imgq_pump_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    // Files the pump reads when it sends them.
    for (char c = 'a'; c <= 'e'; ++c) {
      std::ofstream(dir_ / (std::string(1, c) + ".png")) << "image " << c;
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  int run(MemorySource& source, Millis timeout = Millis{20'000}, Reporter* reporter = nullptr,
          const volatile std::sig_atomic_t* interrupted = nullptr, bool detach = false) {
    PumpOptions options;
    options.detach = detach;
    options.broker = broker_.endpoint();
    options.ops = {"invert"};
    options.timeout = timeout;
    options.mode = ReportMode::kJson;
    options.interrupted = interrupted;
    auto json = make_reporter(options.mode, out_, err_);
    return run_pump(options, source, reporter != nullptr ? *reporter : *json, out_, err_);
  }

  // Runs the pump on a thread and interrupts it, as Ctrl-C does, once
  // `ready()` holds; its exit status.
  template <typename Ready>
  int run_interrupted(MemorySource& source, Reporter& reporter, bool detach, Ready ready) {
    volatile std::sig_atomic_t interrupted = 0;
    int code = -1;
    std::thread pump([&] { code = run(source, Millis{20'000}, &reporter, &interrupted, detach); });
    EXPECT_TRUE(eventually(ready));
    interrupted = 1;
    pump.join();
    return code;
  }

  std::filesystem::path dir_;
  FakeBroker broker_;
  std::ostringstream out_, err_;
};

TEST_F(PumpTest, EveryResultIsPlacedAndAcknowledgedOnce) {
  MemorySource source(dir_, 3);
  EXPECT_EQ(run(source), 0) << err_.str();
  EXPECT_EQ(source.results_.size(), 3u);
  EXPECT_EQ(source.results_["key-b"], "result:key-b");
  for (const auto& [key, n] : source.placed_) EXPECT_EQ(n, 1) << key;
  // Acknowledged after the group commit, so maybe a moment after run ends.
  EXPECT_TRUE(eventually([&] { return broker_.acks().size() == 3; }));
  for (const auto& [key, n] : broker_.acks()) EXPECT_EQ(n, 1) << key;
}

// The broker's pong to the subscribing ping reaches the client on the
// progress socket first (or only): that is an answer too. (It was not: the
// client had no pong on record and gave up at once, "no answer from the
// broker for 60 s", seen once on a loaded machine.)
TEST_F(PumpTest, APongPublishedBeforeItsReplyCountsAsAnAnswer) {
  broker_.set_subscribe_pongs_published_only(true);
  MemorySource source(dir_, 2);
  EXPECT_EQ(run(source), 0) << err_.str();
  EXPECT_EQ(source.results_.size(), 2u);
}

// A broker holding `accepted` (the pump asks it to, accept_hold_ms) sends
// a small job's result alone: that result is the acceptance too. (Results
// are acknowledged in batches: the fake counts every job a `result_ack`
// names.)
TEST_F(PumpTest, AResultWithoutItsAcceptedIsTakenAsBoth) {
  broker_.script("key-a", {OnSubmit::kResultOnly});
  broker_.script("key-c", {OnSubmit::kResultOnly});
  MemorySource source(dir_, 4);
  EXPECT_EQ(run(source), 0) << err_.str();
  EXPECT_EQ(source.results_.size(), 4u);
  EXPECT_EQ(source.results_["key-a"], "result:key-a");
  for (const auto& [key, n] : source.placed_) EXPECT_EQ(n, 1) << key;
  EXPECT_TRUE(eventually([&] { return broker_.acks().size() == 4; }));
  for (const auto& [key, n] : broker_.acks()) EXPECT_EQ(n, 1) << key;
  for (uint32_t hold : broker_.holds()) EXPECT_GT(hold, 0u);
  // The run's report names every job as accepted and done.
  const std::string report = out_.str();
  size_t accepted = 0;
  for (size_t at = report.find("\"event\":\"accepted\""); at != std::string::npos;
       at = report.find("\"event\":\"accepted\"", at + 1)) {
    ++accepted;
  }
  EXPECT_EQ(accepted, 4u) << report;
}

// The jobs the pump has heard were accepted, readable while it runs.
class AcceptedJobs : public Reporter {
 public:
  void accepted(const JobView& job, uint32_t) override {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(job.job);
  }
  void event(const JobView&, const proto::JobState&) override {}
  void succeeded(const JobView&, const proto::JobStats&) override {}
  void failed(const JobView&, const std::string&, const std::string&) override {}
  void tick(const Tally&) override {}
  void finish(const Tally&, double) override {}
  std::vector<std::string> jobs() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return jobs_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> jobs_;
};

// `accepted` held back and never sent: the job's published event (the
// broker publishes only accepted jobs) is its acceptance, so an interrupted
// run still names the job for `imgq status` and `imgq fetch`.
TEST_F(PumpTest, AnEventOfAHeldJobIsItsAcceptance) {
  broker_.script("key-a", {OnSubmit::kEventOnly});
  broker_.script("key-b", {OnSubmit::kSilence});
  MemorySource source(dir_, 2);
  AcceptedJobs accepted;
  EXPECT_EQ(run_interrupted(source, accepted, /*detach=*/true, [&] { return accepted.jobs().size() == 1; }),
            130);
  ASSERT_EQ(accepted.jobs().size(), 1u);
  const std::string job = accepted.jobs()[0];
  EXPECT_NE(out_.str().find("\"event\":\"unfinished\",\"job\":\"" + job + "\""), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("a.png"), std::string::npos) << out_.str();
  EXPECT_NE(err_.str().find("1 job(s) accepted and not finished"), std::string::npos) << err_.str();
  EXPECT_NE(err_.str().find("1 more sent and not yet answered"), std::string::npos) << err_.str();
}

// Ctrl-C: the run's unfinished jobs are cancelled at the broker (their
// cancelled results acknowledged, not reported as failures), exit 130.
TEST_F(PumpTest, AnInterruptCancelsTheRunsUnfinishedJobs) {
  broker_.script("key-a", {OnSubmit::kAcceptOnly});
  broker_.script("key-b", {OnSubmit::kAcceptOnly});
  MemorySource source(dir_, 3);
  AcceptedJobs accepted;
  EXPECT_EQ(run_interrupted(source, accepted, /*detach=*/false,
                            [&] { return accepted.jobs().size() == 3 && source.results_.size() == 1; }),
            130);
  auto cancelled = broker_.cancelled();
  std::sort(cancelled.begin(), cancelled.end());
  EXPECT_EQ(cancelled, (std::vector<std::string>{"key-a", "key-b"})) << "c was done: not cancelled";
  EXPECT_NE(err_.str().find("2 job(s) cancelled, 1 done"), std::string::npos) << err_.str();
  EXPECT_EQ(err_.str().find("error"), std::string::npos) << "a cancel is no failure: " << err_.str();
  EXPECT_TRUE(eventually([&] { return broker_.acks().size() == 3; })) << "every result acknowledged";
}

// --detach: an interrupt leaves the jobs running and lists them.
TEST_F(PumpTest, AnInterruptWithDetachLeavesTheJobsRunning) {
  broker_.script("key-a", {OnSubmit::kAcceptOnly});
  MemorySource source(dir_, 1);
  AcceptedJobs accepted;
  EXPECT_EQ(run_interrupted(source, accepted, /*detach=*/true, [&] { return accepted.jobs().size() == 1; }),
            130);
  EXPECT_TRUE(broker_.cancelled().empty());
  EXPECT_NE(out_.str().find("\"event\":\"unfinished\""), std::string::npos) << out_.str();
}

TEST_F(PumpTest, AFullQueueIsWaitedOutAndTheSameKeySentAgain) {
  broker_.script("key-a", {OnSubmit::kQueueFull, OnSubmit::kQueueFull, OnSubmit::kFinish});
  MemorySource source(dir_, 2);
  EXPECT_EQ(run(source), 0) << err_.str();
  const auto submits = broker_.submits();
  EXPECT_EQ(std::count(submits.begin(), submits.end(), "key-a"), 3) << "two refusals, then accepted";
  EXPECT_EQ(std::count(submits.begin(), submits.end(), "key-b"), 1);
  EXPECT_EQ(source.results_["key-a"], "result:key-a");
}

TEST_F(PumpTest, ANewBrokerInstanceGetsTheUnfinishedJobsAgainUnderTheirKeys) {
  broker_.script("key-a", {OnSubmit::kAcceptOnly});
  broker_.script("key-b", {OnSubmit::kAcceptOnly});
  MemorySource source(dir_, 3);
  std::thread restart([&] {
    // Once both are accepted (and c done), the broker "restarts": its
    // pings answer with a new instance, and the jobs it had are gone.
    eventually([&] { return broker_.submits().size() >= 3; });
    broker_.set_instance("second");
  });
  EXPECT_EQ(run(source), 0) << err_.str();
  restart.join();
  const auto submits = broker_.submits();
  EXPECT_EQ(std::count(submits.begin(), submits.end(), "key-a"), 2) << "resubmitted once, same key";
  EXPECT_EQ(std::count(submits.begin(), submits.end(), "key-b"), 2);
  EXPECT_EQ(std::count(submits.begin(), submits.end(), "key-c"), 1) << "finished before: not sent again";
  EXPECT_EQ(source.results_.size(), 3u);
  for (const auto& [key, n] : source.placed_) EXPECT_EQ(n, 1) << key << " placed twice";
  EXPECT_NE(err_.str().find("restarted"), std::string::npos) << err_.str();
}

TEST_F(PumpTest, ABrokerSilentForTheTimeoutIsGivenUpOnWithTheAcceptedJobsListed) {
  broker_.script("key-a", {OnSubmit::kAcceptOnly});
  MemorySource source(dir_, 1);
  std::thread silence([&] {
    eventually([&] { return broker_.submits().size() >= 1; });
    broker_.set_silent(true);
  });
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(run(source, Millis{1500}), 3) << err_.str();
  silence.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20)) << "no hang";
  EXPECT_NE(out_.str().find("\"event\":\"unfinished\""), std::string::npos) << out_.str();
  EXPECT_TRUE(source.results_.empty());
}

}  // namespace
}  // namespace imgq::client
