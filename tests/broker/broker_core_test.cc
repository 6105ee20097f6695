// The broker's state machine driven message by message with a fake clock:
// no sockets, no sleeps.
#include "imgq/broker/broker_core.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "broker/core_test_support.h"
#include "imgq/schemas/codec.h"
#include "imgq/schemas/op_catalog.h"

namespace imgq::broker {
namespace {

using namespace imgq::broker::testing;  // NOLINT: the shared test vocabulary

class BrokerCoreTest : public ::testing::Test {
 protected:
  BrokerCoreTest() : core_(config(), out_, [this] { return now_; }) {}

  static BrokerConfig config() {
    BrokerConfig c;
    c.max_queued = 5;
    c.max_queued_per_client = 5;  // one client may fill it here (the share has a test of its own)
    c.max_queued_bytes = 1000;
    c.max_image_bytes = 600;
    c.max_attempts = 2;
    c.result_ttl = Duration{60'000};
    return c;
  }

  // Submits a local-files job; returns the accepted job id (or empty, after an error).
  std::string submit_local(const std::string& client, uint64_t req, const std::string& path,
                           const std::string& output) {
    proto::Submit s;
    s.req = req;
    s.ops = {"invert"};
    s.path = path;
    s.output = output;
    core_.on_client(client, {proto::encode(s)});
    core_.commit();
    const Sent& reply = out_.clients.back();
    if (reply.type != "accepted") return {};
    return decode<proto::Accepted>(reply.frames[0]).job;
  }

  // Submits and returns the accepted job id (or empty, after an error).
  std::string submit(const std::string& client, uint64_t req, std::vector<std::string> ops = {"invert"},
                     int priority = 4, std::string image = kImg, std::string key = {}) {
    proto::Submit s;
    s.req = req;
    s.ops = std::move(ops);
    s.priority = priority;
    s.name = "file" + std::to_string(req) + ".png";
    s.key = std::move(key);
    core_.on_client(client, {proto::encode(s), std::move(image)});
    core_.commit();
    const Sent& reply = out_.clients.back();
    if (reply.type != "accepted") return {};
    return decode<proto::Accepted>(reply.frames[0]).job;
  }

  void hello(const std::string& group, const std::string& name, int ranks = 2, int slots = 0,
             std::vector<std::string> allow_paths = {}) {
    proto::Hello h;
    h.name = name;
    h.ranks = ranks;
    h.slots = slots;
    h.allow_paths = std::move(allow_paths);
    core_.on_worker(group, {proto::encode(h)});
  }

  void done(const std::string& group, const std::string& job, int code = 0, std::string result = "OUT") {
    proto::Done d;
    d.job = job;
    d.code = code;
    d.message = code == 0 ? "" : "it broke";
    Frames frames{proto::encode(d)};
    if (code == 0) frames.push_back(std::move(result));
    core_.on_worker(group, std::move(frames));
  }

  // The job the broker last sent to `group`.
  std::string job_sent_to(const std::string& group) {
    for (auto it = out_.workers.rbegin(); it != out_.workers.rend(); ++it) {
      if (it->to == group && it->type == "job") return decode<proto::JobRequest>(it->frames[0]).job;
    }
    return {};
  }

  proto::Error last_error() { return decode<proto::Error>(out_.clients.back().frames[0]); }

  void advance(Duration d) {
    now_ += d;
    core_.tick();
  }

  Clock::time_point now_ = Clock::time_point{} + std::chrono::hours(1);
  RecordingOutbox out_;
  BrokerCore core_;
};

TEST_F(BrokerCoreTest, SubmitDispatchAndResultGoToTheSubmitter) {
  const std::string job = submit("client-1", 7, {"grayscale", "canny"});
  ASSERT_EQ(job.size(), 16u);
  EXPECT_EQ(decode<proto::Accepted>(out_.clients.back().frames[0]).position, 1u);
  EXPECT_EQ(core_.queued(), 1u);

  hello("g1", "group-one");
  EXPECT_EQ(job_sent_to("g1"), job);
  const auto request = decode<proto::JobRequest>(out_.workers.back().frames[0]);
  EXPECT_EQ(request.ops, (std::vector<std::string>{"grayscale", "canny:aperture=3,high=200,l2=false,low=100"}));
  EXPECT_EQ(request.format, "png");
  EXPECT_EQ(out_.workers.back().frames[1], kImg);
  EXPECT_EQ(core_.running(), 1u);

  done("g1", job);
  const Sent& result = out_.clients.back();
  EXPECT_EQ(result.to, "client-1");
  ASSERT_EQ(result.type, "result");
  const auto r = decode<proto::JobResult>(result.frames[0]);
  EXPECT_EQ(r.req, 7u);
  EXPECT_EQ(r.state, "done");
  EXPECT_EQ(r.stats.group, "group-one");
  EXPECT_EQ(r.stats.ranks, 2);
  EXPECT_EQ(result.frames[1], "OUT");
  EXPECT_EQ(core_.counters().succeeded, 1u);
  EXPECT_EQ(core_.idle_groups(), 1u);
}

TEST_F(BrokerCoreTest, EventsCarryTheWholeStateInOrder) {
  const std::string job = submit("c", 1);
  hello("g", "G");
  proto::Progress p;
  p.job = job;
  p.done = 1;
  p.total = 2;
  core_.on_worker("g", {proto::encode(p)});
  done("g", job);
  std::vector<std::string> states;
  for (const auto& [topic, e] : out_.events) {
    EXPECT_EQ(topic, job);
    states.push_back(e.job.state);
  }
  EXPECT_EQ(states, (std::vector<std::string>{"queued", "running", "running", "done"}));
  EXPECT_EQ(out_.events[0].second.job.position, 1u);
  EXPECT_EQ(out_.events[1].second.job.group, "G");
  EXPECT_EQ(out_.events[2].second.job.done, 1);
  EXPECT_EQ(out_.events[2].second.job.total, 2);
}

TEST_F(BrokerCoreTest, RefusesBadSubmitsWithClearErrors) {
  EXPECT_EQ(submit("c", 1, {"gaussian_blur:ksize=4"}), "");
  EXPECT_EQ(last_error().code_name, "invalid_argument");
  EXPECT_NE(last_error().message.find("ksize must be an odd integer"), std::string::npos);
  EXPECT_EQ(last_error().req, 1u);

  EXPECT_EQ(submit("c", 2, {"invert"}, 12), "");
  EXPECT_NE(last_error().message.find("priority must be from 0 to 9"), std::string::npos);

  EXPECT_EQ(submit("c", 3, {"invert"}, 4, ""), "");
  EXPECT_EQ(last_error().code_name, "invalid_image");

  EXPECT_EQ(submit("c", 4, {"invert"}, 4, png_bytes(601)), "");
  EXPECT_EQ(last_error().code_name, "too_large");
  EXPECT_EQ(core_.counters().rejected_invalid, 3u);
  EXPECT_EQ(core_.counters().rejected_too_large, 1u);
}

TEST_F(BrokerCoreTest, BoundedQueueRefusesWithRetryHintAndLosesNothing) {
  for (int i = 0; i < 5; ++i) ASSERT_NE(submit("c", static_cast<uint64_t>(i)), "");
  EXPECT_EQ(submit("c", 99), "");
  const auto error = last_error();
  EXPECT_EQ(error.code_name, "resource_exhausted");
  EXPECT_TRUE(error.retryable);
  EXPECT_EQ(error.retry_after_ms, 1000u);
  EXPECT_EQ(core_.queued(), 5u);
}

TEST_F(BrokerCoreTest, ByteBoundCountsWaitingImages) {
  ASSERT_NE(submit("c", 1, {"invert"}, 4, png_bytes(500)), "");
  ASSERT_NE(submit("c", 2, {"invert"}, 4, png_bytes(500)), "");
  EXPECT_EQ(submit("c", 3, {"invert"}, 4, kImg), "");
  EXPECT_EQ(last_error().code_name, "resource_exhausted");
  hello("g", "G");  // one job leaves the queue
  EXPECT_NE(submit("c", 4, {"invert"}, 4, kImg), "");
}

TEST_F(BrokerCoreTest, SilentGroupIsForgottenAndItsJobRunsElsewhere) {
  const std::string job = submit("c", 1);
  hello("g1", "one");
  ASSERT_EQ(job_sent_to("g1"), job);
  hello("g2", "two");
  EXPECT_EQ(job_sent_to("g2"), "");

  // g2 keeps heartbeating, g1 goes silent.
  for (int i = 0; i < 6; ++i) {
    core_.on_worker("g2", {proto::encode(proto::Heartbeat{})});
    advance(Duration{1000});
  }
  EXPECT_EQ(core_.groups(), 1u);
  EXPECT_EQ(job_sent_to("g2"), job);
  EXPECT_EQ(core_.counters().retried, 1u);
  done("g2", job);
  EXPECT_EQ(decode<proto::JobResult>(out_.clients.back().frames[0]).state, "done");

  // The dead group's late result is discarded, and it must say hello again.
  done("g1", job);
  EXPECT_EQ(out_.workers.back().to, "g1");
  EXPECT_EQ(out_.workers.back().type, "disconnect");
  EXPECT_EQ(core_.counters().succeeded, 1u);
}

// The jobs the broker sent to `group`, in order.
std::vector<std::string> jobs_sent(const RecordingOutbox& out, const std::string& group) {
  std::vector<std::string> jobs;
  for (const Sent& s : out.workers) {
    if (s.to == group && s.type == "job") jobs.push_back(decode<proto::JobRequest>(s.frames[0]).job);
  }
  return jobs;
}

TEST_F(BrokerCoreTest, AGroupWithSlotsHoldsSeveralJobsAndLosesNoneWhenItDies) {
  std::vector<std::string> ids;
  for (uint64_t r = 1; r <= 5; ++r) ids.push_back(submit("c", r));
  hello("wide", "W", 2, 2);  // two slots
  hello("narrow", "N", 2);   // one (no slots field)
  // The wide group fills both slots at once; the narrow one, joining later,
  // takes the third; the rest wait.
  EXPECT_EQ(jobs_sent(out_, "wide"), (std::vector<std::string>{ids[0], ids[1]}));
  EXPECT_EQ(jobs_sent(out_, "narrow"), (std::vector<std::string>{ids[2]}));
  EXPECT_EQ(core_.running(), 3u);
  EXPECT_EQ(core_.busy_groups(), 2u);
  EXPECT_EQ(core_.queued(), 2u);

  // A done frees one slot, taken by the next job at once.
  done("wide", ids[1]);
  EXPECT_EQ(jobs_sent(out_, "wide").back(), ids[3]);
  // A job the group does not hold is stray, even with a free-looking slot.
  done("wide", ids[1]);
  EXPECT_EQ(core_.counters().stray_results, 1u);

  // The wide group leaves holding two jobs: both run again, nothing lost.
  core_.on_worker("wide", {proto::encode(proto::Bye{})});
  EXPECT_EQ(core_.counters().retried, 2u);
  done("narrow", ids[2]);
  for (int i = 0; i < 3; ++i) done("narrow", job_sent_to("narrow"));
  EXPECT_EQ(core_.counters().succeeded, 5u);
  EXPECT_EQ(core_.running(), 0u);
  EXPECT_EQ(core_.queued(), 0u);
}

TEST_F(BrokerCoreTest, DispatchPrefersTheGroupHoldingFewestJobs) {
  hello("a", "A", 2, 4);
  advance(Duration{10});
  hello("b", "B", 2, 4);
  const std::string first = submit("c", 1), second = submit("c", 2), third = submit("c", 3);
  // a was idle the longest; then b holds fewer; then a again.
  EXPECT_EQ(jobs_sent(out_, "a"), (std::vector<std::string>{first, third}));
  EXPECT_EQ(jobs_sent(out_, "b"), (std::vector<std::string>{second}));
}

TEST_F(BrokerCoreTest, LocalFilesJobsCarryPathsNotBytes) {
  const std::string job = submit_local("c", 1, "/data/in/big.ppm", "/data/out/big.png");
  ASSERT_FALSE(job.empty());

  hello("g", "G", 2, 0, {"/data"});
  const Sent& sent = out_.workers.back();
  ASSERT_EQ(sent.type, "job");
  EXPECT_EQ(sent.frames.size(), 1u) << "no image frame";
  const auto request = decode<proto::JobRequest>(sent.frames[0]);
  EXPECT_EQ(request.path, "/data/in/big.ppm");
  EXPECT_EQ(request.output, "/data/out/big.png");

  proto::Done d;
  d.job = job;
  d.output = "/data/out/big.png";
  core_.on_worker("g", {proto::encode(d)});
  const Sent& result = out_.clients.back();
  ASSERT_EQ(result.type, "result");
  EXPECT_EQ(result.frames.size(), 1u);
  const auto r = decode<proto::JobResult>(result.frames[0]);
  EXPECT_EQ(r.state, "done");
  EXPECT_EQ(r.output, "/data/out/big.png");

  // Relative paths, a missing output, or bytes as well are refused.
  proto::Submit s;
  s.req = 2;
  s.ops = {"invert"};
  s.path = "in/big.ppm";
  s.output = "/data/out/big.png";
  core_.on_client("c", {proto::encode(s)});
  EXPECT_NE(last_error().message.find("needs an absolute path and output"), std::string::npos);
  s.req = 3;
  s.path = "/data/in/big.ppm";
  s.output.clear();
  core_.on_client("c", {proto::encode(s)});
  EXPECT_NE(last_error().message.find("needs an absolute path and output"), std::string::npos);
  s.req = 4;
  s.output = "/data/out/big.png";
  core_.on_client("c", {proto::encode(s), kImg});
  EXPECT_NE(last_error().message.find("takes no image frame"), std::string::npos);
  EXPECT_EQ(core_.counters().succeeded, 1u);
}

TEST_F(BrokerCoreTest, LocalFilesJobsGoOnlyToAGroupWhoseFoldersHoldBothFiles) {
  hello("plain", "P", 2, 2);                            // no local files
  hello("scans", "S", 2, 1, {"/mnt/scans", "/out/"});  // a trailing slash is the same folder
  hello("tiles", "T", 2, 1, {"/mnt/tiles"});

  const std::string scan = submit_local("c", 1, "/mnt/scans/a.ppm", "/out/a.png");
  const std::string tile = submit_local("c", 2, "/mnt/tiles/x/../b.ppm", "/mnt/tiles/b.png");
  EXPECT_EQ(jobs_sent(out_, "scans"), (std::vector<std::string>{scan}));
  EXPECT_EQ(jobs_sent(out_, "tiles"), (std::vector<std::string>{tile}));
  EXPECT_TRUE(jobs_sent(out_, "plain").empty()) << "the group without --allow-paths got a local-files job";

  // Another scan waits for the scans group (busy) rather than go elsewhere;
  // the jobs behind it, of its client and of others, run on the free plain
  // group meanwhile.
  const std::string scan2 = submit_local("c", 3, "/mnt/scans/c.ppm", "/out/c.png");
  const std::string after = submit("c", 4);
  const std::string other = submit("d", 5);
  EXPECT_EQ(jobs_sent(out_, "plain"), (std::vector<std::string>{after, other}));
  EXPECT_EQ(core_.queued(), 1u);
  proto::Done written;
  written.job = scan;
  written.output = "/out/a.png";
  core_.on_worker("scans", {proto::encode(written)});
  EXPECT_EQ(core_.counters().succeeded, 1u);
  EXPECT_EQ(jobs_sent(out_, "scans"), (std::vector<std::string>{scan, scan2}));
  EXPECT_EQ(core_.queued(), 0u);

  // No connected group may use the files (a prefix of a name is not its
  // folder): refused at once with the reason, nothing queued.
  EXPECT_TRUE(submit_local("c", 6, "/mnt/scans-old/d.ppm", "/out/d.png").empty());
  EXPECT_EQ(last_error().code, static_cast<int>(StatusCode::kPermissionDenied));
  EXPECT_NE(last_error().message.find("no connected worker group may use /mnt/scans-old/d.ppm"), std::string::npos)
      << last_error().message;
  EXPECT_TRUE(submit_local("c", 7, "/mnt/scans/e.ppm", "/mnt/tiles/e.png").empty()) << "no one group holds both";

  // With no group connected at all a local-files job waits, like any other;
  // the jobs of the groups that left run again where they may.
  for (const char* g : {"plain", "scans", "tiles"}) core_.on_worker(g, {proto::encode(proto::Bye{})});
  EXPECT_EQ(core_.counters().retried, 4u);
  const std::string later = submit_local("c", 8, "/mnt/tiles/f.ppm", "/mnt/tiles/f.png");
  EXPECT_FALSE(later.empty());
  hello("plain2", "P2", 2, 8);
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(jobs_sent(out_, "plain2")), sorted({after, other}));
  hello("tiles2", "T2", 2, 2, {"/mnt/tiles"});
  EXPECT_EQ(sorted(jobs_sent(out_, "tiles2")), sorted({tile, later}));
  EXPECT_EQ(core_.queued(), 1u) << "the second scan waits for a group with its folders";
}

TEST_F(BrokerCoreTest, BrokerHeartbeatsIdleGroups) {
  hello("g", "G");
  out_.workers.clear();
  advance(Duration{999});
  EXPECT_TRUE(out_.workers.empty());
  advance(Duration{1});
  ASSERT_EQ(out_.workers.size(), 1u);
  EXPECT_EQ(out_.workers[0].type, "heartbeat");
}

TEST_F(BrokerCoreTest, JobThatKillsEveryGroupFailsAfterMaxAttempts) {
  const std::string job = submit("c", 1);
  for (int attempt = 0; attempt < 2; ++attempt) {
    hello("g" + std::to_string(attempt), "G");
    ASSERT_EQ(job_sent_to("g" + std::to_string(attempt)), job);
    advance(Duration{5000});
  }
  const auto r = decode<proto::JobResult>(out_.clients.back().frames[0]);
  EXPECT_EQ(r.state, "failed");
  EXPECT_NE(r.message.find("gave up after 2 attempts"), std::string::npos) << r.message;
}

TEST_F(BrokerCoreTest, ByeRequeuesAtOnce) {
  const std::string job = submit("c", 1);
  hello("g1", "one");
  core_.on_worker("g1", {proto::encode(proto::Bye{})});
  EXPECT_EQ(core_.groups(), 0u);
  EXPECT_EQ(core_.queued(), 1u);
  hello("g2", "two");
  EXPECT_EQ(job_sent_to("g2"), job);
}

// An image goes to its group, and again to the next after a retry, in the
// buffer it arrived in; a result goes to its client in the group's buffer.
TEST_F(BrokerCoreTest, ImagesAndResultsPassByReferenceNotCopy) {
  const SharedBytes image(png_bytes(500));
  proto::Submit s;
  s.req = 1;
  s.ops = {"invert"};
  core_.on_client("c", {proto::encode(s), image});
  core_.commit();
  ASSERT_EQ(out_.clients.back().type, "accepted");
  const std::string job = decode<proto::Accepted>(out_.clients.back().frames[0]).job;
  hello("g1", "one");
  ASSERT_EQ(job_sent_to("g1"), job);
  EXPECT_EQ(out_.workers.back().frames[1].data(), image.data());
  core_.on_worker("g1", {proto::encode(proto::Bye{})});
  hello("g2", "two");
  ASSERT_EQ(job_sent_to("g2"), job);
  EXPECT_EQ(out_.workers.back().frames[1].data(), image.data());

  const SharedBytes result(std::string(500, 'r'));
  proto::Done d;
  d.job = job;
  core_.on_worker("g2", {proto::encode(d), result});
  ASSERT_EQ(out_.clients.back().type, "result");
  EXPECT_EQ(out_.clients.back().frames[1].data(), result.data());
  EXPECT_EQ(out_.clients.back().frames[1], result);
}

TEST_F(BrokerCoreTest, FailureFromTheGroupReachesTheClient) {
  const std::string job = submit("c", 1);
  hello("g", "G");
  done("g", job, static_cast<int>(StatusCode::kInvalidImage));
  const auto r = decode<proto::JobResult>(out_.clients.back().frames[0]);
  EXPECT_EQ(r.state, "failed");
  EXPECT_EQ(r.code, static_cast<int>(StatusCode::kInvalidImage));
  EXPECT_EQ(r.message, "it broke");
  EXPECT_EQ(out_.clients.back().frames.size(), 1u);
}

TEST_F(BrokerCoreTest, ResultForAVanishedClientIsKeptForFetchUntilTheTtl) {
  const std::string job = submit("gone", 1);
  out_.gone.insert("gone");
  hello("g", "G");
  done("g", job);
  EXPECT_EQ(core_.counters().undelivered_results, 1u);

  proto::Fetch f;
  f.req = 5;
  f.job = job;
  core_.on_client("new", {proto::encode(f)});
  ASSERT_EQ(out_.clients.back().type, "result");
  EXPECT_EQ(out_.clients.back().frames[1], "OUT");

  advance(Duration{60'000});
  core_.on_client("new", {proto::encode(f)});
  EXPECT_EQ(last_error().code_name, "not_found");
}

TEST_F(BrokerCoreTest, StatusAndCancelOfAQueuedJob) {
  const std::string job = submit("c", 1);
  proto::StatusRequest s;
  s.req = 2;
  s.job = job;
  core_.on_client("c", {proto::encode(s)});
  EXPECT_EQ(decode<proto::StatusReply>(out_.clients.back().frames[0]).job.state, "queued");

  proto::Cancel c;
  c.req = 3;
  c.job = job;
  core_.on_client("c", {proto::encode(c)});
  EXPECT_EQ(decode<proto::StatusReply>(out_.clients.back().frames[0]).job.state, "cancelled");
  EXPECT_EQ(core_.queued(), 0u);
  EXPECT_EQ(core_.counters().cancelled, 1u);
  hello("g", "G");
  EXPECT_EQ(job_sent_to("g"), "");

  core_.on_client("c", {proto::encode(c)});
  EXPECT_NE(last_error().message.find("is already cancelled"), std::string::npos);
}

TEST_F(BrokerCoreTest, RefusesBombsAndNonImagesFromTheirHeaders) {
  // 100,000 x 100,000 pixels declared in 57 bytes: refused before queueing.
  EXPECT_EQ(submit("c", 1, {"invert"}, 4, png_bytes(0, 100'000, 100'000)), "");
  EXPECT_EQ(last_error().code_name, "too_large");
  EXPECT_NE(last_error().message.find("file1.png: PNG declares 100000 x 100000 pixels"), std::string::npos)
      << last_error().message;
  EXPECT_NE(last_error().message.find("--max-pixels"), std::string::npos);

  EXPECT_EQ(submit("c", 2, {"invert"}, 4, "hello, I am a text file"), "");
  EXPECT_EQ(last_error().code_name, "invalid_image");
  EXPECT_NE(last_error().message.find("file2.png: not a recognised image format"), std::string::npos);

  const std::string whole = png_bytes(100);
  EXPECT_EQ(submit("c", 3, {"invert"}, 4, whole.substr(0, 70)), "");
  EXPECT_NE(last_error().message.find("truncated"), std::string::npos) << last_error().message;
  EXPECT_EQ(core_.counters().rejected_too_large, 1u);
  EXPECT_EQ(core_.counters().rejected_invalid, 2u);
  EXPECT_EQ(core_.queued(), 0u);
}

TEST_F(BrokerCoreTest, CancelOfARunningJobStopsItsGroupAndAnswersAtOnce) {
  const std::string job = submit("c", 1);
  const std::string next = submit("c", 2);
  hello("g", "G");
  ASSERT_EQ(job_sent_to("g"), job);
  proto::Cancel c;
  c.req = 3;
  c.job = job;
  core_.on_client("c", {proto::encode(c)});
  // The submitter gets the result (cancelled), the canceller the new state.
  EXPECT_EQ(decode<proto::StatusReply>(out_.clients.back().frames[0]).job.state, "cancelled");
  EXPECT_EQ(out_.workers.back().type, "abort");
  EXPECT_EQ(decode<proto::Abort>(out_.workers.back().frames[0]).job, job);
  // The group is busy until it reports; then it takes the next job.
  EXPECT_EQ(core_.idle_groups(), 0u);
  done("g", job, static_cast<int>(StatusCode::kCancelled));
  EXPECT_EQ(core_.counters().cancelled, 1u);
  EXPECT_EQ(core_.counters().failed, 0u);
  EXPECT_EQ(job_sent_to("g"), next);
}

TEST_F(BrokerCoreTest, AJobPastItsDeadlineFailsAndItsGroupIsRecovered) {
  proto::Submit s;
  s.req = 1;
  s.ops = {"invert"};
  s.timeout_ms = 2000;
  core_.on_client("c", {proto::encode(s), kImg});
  core_.commit();
  const std::string job = decode<proto::Accepted>(out_.clients.back().frames[0]).job;
  hello("g", "G");
  EXPECT_EQ(decode<proto::JobRequest>(out_.workers.back().frames[0]).timeout_ms, 2000u);
  // Heartbeats keep the group alive; the job's deadline passes.
  for (int i = 0; i < 3; ++i) {
    core_.on_worker("g", {proto::encode(proto::Heartbeat{})});
    advance(Duration{900});
  }
  const auto result = decode<proto::JobResult>(out_.clients.back().frames[0]);
  EXPECT_EQ(result.state, "failed");
  EXPECT_EQ(result.code, static_cast<int>(StatusCode::kDeadlineExceeded));
  EXPECT_NE(result.message.find("longer than its timeout of 2 s on group G"), std::string::npos) << result.message;
  EXPECT_EQ(out_.workers.back().type, "abort");
  EXPECT_EQ(core_.counters().deadlines_exceeded, 1u);
  // A late result is dropped; the group is free again.
  done("g", job);
  EXPECT_EQ(core_.counters().succeeded, 0u);
  EXPECT_EQ(core_.idle_groups(), 1u);
  EXPECT_NE(submit("c", 2), "");
  EXPECT_EQ(core_.idle_groups(), 0u);
}

TEST_F(BrokerCoreTest, DefaultDeadlineComesFromTheConfig) {
  ASSERT_NE(submit("c", 1), "");
  hello("g", "G");
  EXPECT_EQ(decode<proto::JobRequest>(out_.workers.back().frames[0]).timeout_ms, 600'000u);
}

TEST_F(BrokerCoreTest, IdempotencyKeyReturnsTheSameJob) {
  const std::string first = submit("c", 1, {"invert"}, 4, kImg, "key-1");
  const std::string again = submit("c2", 2, {"invert"}, 4, kImg, "key-1");
  EXPECT_EQ(first, again);
  EXPECT_TRUE(decode<proto::Accepted>(out_.clients.back().frames[0]).existing);
  EXPECT_EQ(core_.queued(), 1u);
  hello("g", "G");
  done("g", first);
  EXPECT_EQ(out_.clients.back().to, "c2") << "the result follows the latest submit";
  EXPECT_EQ(decode<proto::JobResult>(out_.clients.back().frames[0]).req, 2u);
}

// accept_hold_ms: a tiny job's client hears one message, its result; a job
// still running when the hold ends is accepted then, once.
TEST_F(BrokerCoreTest, AResultWithinTheAcceptHoldStandsForAccepted) {
  auto held_submit = [&](const std::string& client, uint64_t req, uint32_t hold_ms, std::string key = {}) {
    proto::Submit s;
    s.req = req;
    s.ops = {"invert"};
    s.key = std::move(key);
    s.accept_hold_ms = hold_ms;
    core_.on_client(client, {proto::encode(s), kImg});
    core_.commit();
  };
  auto sent_to = [&](const std::string& client) {
    std::vector<std::string> types;
    for (const Sent& s : out_.clients) {
      if (s.to == client) types.push_back(s.type + ":" + std::to_string(decode<proto::JobResult>(s.frames[0]).req));
    }
    return types;
  };

  // Done within the hold: the result alone, and nothing when the hold ends.
  hello("g", "G", 1, 1);
  held_submit("fast", 1, 500);
  EXPECT_TRUE(sent_to("fast").empty()) << "accepted is held";
  EXPECT_LE(core_.time_to_next_tick(), Duration{500});
  const std::string fast = job_sent_to("g");
  ASSERT_FALSE(fast.empty()) << "a held job is queued and dispatched as any";
  advance(Duration{100});
  done("g", fast);
  EXPECT_EQ(sent_to("fast"), (std::vector<std::string>{"result:1"}));
  advance(Duration{1000});
  EXPECT_EQ(sent_to("fast"), (std::vector<std::string>{"result:1"})) << "the result stood for accepted";

  // Still running when the hold ends: accepted then, with its position; the
  // result later. A hold past the protocol's maximum is the maximum.
  held_submit("slow", 2, 200);
  held_submit("queued", 3, 100'000);
  const std::string slow = job_sent_to("g");
  advance(Duration{199});
  EXPECT_TRUE(sent_to("slow").empty());
  advance(Duration{1});
  EXPECT_EQ(sent_to("slow"), (std::vector<std::string>{"accepted:2"}));
  EXPECT_EQ(decode<proto::Accepted>(out_.clients.back().frames[0]).job, slow);
  advance(proto::kMaxAcceptHold - Duration{200} - Duration{1});
  EXPECT_TRUE(sent_to("queued").empty());
  advance(Duration{1});
  ASSERT_EQ(sent_to("queued"), (std::vector<std::string>{"accepted:3"}));
  EXPECT_EQ(decode<proto::Accepted>(out_.clients.back().frames[0]).position, 1u) << "it waits behind slow";
  done("g", slow);
  EXPECT_EQ(sent_to("slow"), (std::vector<std::string>{"accepted:2", "result:2"}));

  // Named again by its key while held: the first connection is told at
  // once, and the result follows the latest submit, as without a hold.
  const std::string queued = job_sent_to("g");
  held_submit("keyed", 4, 500, "k");
  EXPECT_TRUE(sent_to("keyed").empty());
  held_submit("again", 5, 500, "k");
  EXPECT_EQ(sent_to("keyed"), (std::vector<std::string>{"accepted:4"}));
  EXPECT_EQ(sent_to("again"), (std::vector<std::string>{"accepted:5"}));
  const auto first = decode<proto::Accepted>(out_.clients[out_.clients.size() - 2].frames[0]);
  const auto second = decode<proto::Accepted>(out_.clients.back().frames[0]);
  EXPECT_FALSE(first.existing);
  EXPECT_TRUE(second.existing);
  EXPECT_EQ(first.job, second.job);
  done("g", queued);
  done("g", job_sent_to("g"));
  EXPECT_EQ(sent_to("again"), (std::vector<std::string>{"accepted:5", "result:5"}));
  advance(Duration{1000});
  EXPECT_EQ(sent_to("keyed"), (std::vector<std::string>{"accepted:4"}));
  EXPECT_EQ(sent_to("queued"), (std::vector<std::string>{"accepted:3", "result:3"}));
}

TEST_F(BrokerCoreTest, OneResultAckAcknowledgesSeveralResults) {
  hello("g", "G", 1, 3);
  std::vector<std::string> jobs;
  for (uint64_t req = 1; req <= 3; ++req) jobs.push_back(submit("c", req));
  for (const std::string& job : jobs) done("g", job);
  proto::ResultAck ack;
  ack.job = jobs[0];
  ack.jobs = {jobs[1], jobs[2], "0123456789abcdef"};  // an unknown id is ignored
  core_.on_client("c", {proto::encode(ack)});
  EXPECT_EQ(core_.counters().acknowledged, 3u);
  EXPECT_EQ(core_.kept_bytes(), 0u);
  proto::Fetch fetch;
  fetch.req = 9;
  fetch.job = jobs[2];
  core_.on_client("c", {proto::encode(fetch)});
  EXPECT_EQ(last_error().code, static_cast<int>(StatusCode::kNotFound));
}

TEST_F(BrokerCoreTest, PingReportsGroupsAndQueue) {
  hello("g", "G", 4);
  submit("c", 1);
  submit("c", 2);
  proto::Ping p;
  p.req = 9;
  core_.on_client("c", {proto::encode(p)});
  const auto pong = decode<proto::Pong>(out_.clients.back().frames[0]);
  EXPECT_EQ(pong.req, 9u);
  EXPECT_EQ(pong.groups, 1u);
  EXPECT_EQ(pong.busy, 1u);
  EXPECT_EQ(pong.ranks, 4u);
  EXPECT_EQ(pong.queued, 1u);
  EXPECT_EQ(pong.instance, core_.instance());
  EXPECT_EQ(pong.instance.size(), 16u);
}

// One client floods; ten others submit 20 jobs each meanwhile. The flood
// is refused past its share (a tenth of --max-queued by default) with a
// retry hint, every other client is admitted at once, and, dispatch taking
// clients in turn, their jobs all run before the flood's share has.
TEST(BrokerCoreShares, OneClientFloodingIsRefusedPastItsShareWhileEveryOtherIsAdmitted) {
  BrokerConfig config;
  config.max_queued = 1000;  // alone, a client's share is 500; with 10 others, the floor of 100
  config.result_ttl = Duration{60'000};
  RecordingOutbox out;
  Clock::time_point now{};
  BrokerCore core(config, out, [&] { return now; });
  auto submit = [&](const std::string& client, uint64_t req) {
    proto::Submit s;
    s.req = req;
    s.ops = {"invert"};
    core.on_client(client, {proto::encode(s), kImg});
    core.commit();
    return out.clients.back();
  };
  size_t flood_accepted = 0, flood_refused = 0;
  for (uint64_t req = 1; req <= 2000; ++req) {
    const Sent reply = submit("flood", req);
    if (reply.type == "accepted") {
      ++flood_accepted;
      continue;
    }
    ++flood_refused;
    const auto error = decode<proto::Error>(reply.frames[0]);
    ASSERT_EQ(error.code_name, "resource_exhausted");
    EXPECT_EQ(error.retry_after_ms, 1000u);
    EXPECT_NE(error.message.find("its share of the queue (500: --max-queued 1000 / (1 client holds jobs + 1), never "
                                 "less than --max-queued-per-client 100)"),
              std::string::npos)
        << error.message;
  }
  EXPECT_EQ(flood_accepted, 500u);
  EXPECT_EQ(flood_refused, 1500u);
  std::map<std::string, std::string> others;  // job -> client
  for (int c = 0; c < 10; ++c) {
    for (uint64_t req = 1; req <= 20; ++req) {
      const std::string client = "small" + std::to_string(c);
      const Sent reply = submit(client, req);
      ASSERT_EQ(reply.type, "accepted") << "client " << c << " was refused while the flood ran";
      others[decode<proto::Accepted>(reply.frames[0]).job] = client;
    }
  }
  // With eleven clients holding jobs, the flood's share is the floor.
  const auto error = decode<proto::Error>(submit("flood", 3000).frames[0]);
  EXPECT_NE(error.message.find("(100: --max-queued 1000 / (11 clients hold jobs + 1)"), std::string::npos)
      << error.message;
  EXPECT_EQ(core.counters().rejected_client_share, 1501u);
  EXPECT_EQ(core.counters().rejected_queue_full, 0u);
  // One group, one slot: jobs run one at a time, clients taken in turn.
  proto::Hello h;
  h.name = "g";
  h.ranks = 1;
  h.slots = 1;
  core.on_worker("g", {proto::encode(h)});
  size_t ran = 0, flood_ran = 0;
  while (!others.empty()) {
    ASSERT_FALSE(out.workers.empty());
    ASSERT_EQ(out.workers.back().type, "job");
    const std::string job = decode<proto::JobRequest>(out.workers.back().frames[0]).job;
    ++ran;
    proto::Done d;
    d.job = job;
    core.on_worker("g", {proto::encode(d), "OUT"});
    if (auto it = others.find(job); it != others.end()) {
      proto::ResultAck ack;
      ack.job = job;
      core.on_client(it->second, {proto::encode(ack)});
      others.erase(it);
    } else {
      ++flood_ran;
    }
  }
  std::cout << "[ measured ] the ten clients' 200 jobs ran within the first " << ran << " dispatches ("
            << flood_ran << " of the flood's among them)\n";
  EXPECT_LE(ran, 221u);
  // The others done, the flood is alone again: its share is half the queue,
  // and it holds less now.
  EXPECT_EQ(submit("flood", 5000).type, "accepted");
}

// Results waiting for their acknowledgement are shared the same way: a
// client that never fetches its results is stopped, not everyone.
TEST(BrokerCoreShares, AClientThatLeavesItsResultsUnfetchedIsRefusedPastItsShareOfKeptBytes) {
  BrokerConfig config;
  config.max_kept_bytes = 1000;
  config.max_kept_bytes_per_client = 100;
  config.result_ttl = Duration{60'000};
  RecordingOutbox out;
  BrokerCore core(config, out);
  proto::Hello h;
  h.name = "g";
  h.ranks = 1;
  h.slots = 1;
  core.on_worker("g", {proto::encode(h)});
  uint64_t req = 0;
  auto run = [&](const std::string& client) {
    proto::Submit s;
    s.req = ++req;
    s.ops = {"invert"};
    core.on_client(client, {proto::encode(s), kImg});
    core.commit();
    const Sent reply = out.clients.back();
    if (reply.type != "accepted") return reply;
    proto::Done d;
    d.job = decode<proto::Accepted>(reply.frames[0]).job;
    core.on_worker("g", {proto::encode(d), std::string(200, 'r')});  // a 200-byte result
    return reply;
  };
  // Alone, its share is 1000 / 2: three unfetched results (600 bytes) pass it.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(run("hoarder").type, "accepted");
  const Sent refused = run("hoarder");
  ASSERT_EQ(refused.type, "error");
  const auto error = decode<proto::Error>(refused.frames[0]);
  EXPECT_EQ(error.code_name, "resource_exhausted");
  EXPECT_NE(error.message.find("hold 600 bytes, past its share (500: --max-kept-bytes 1000"), std::string::npos)
      << error.message;
  // Another client is admitted, its results delivered.
  EXPECT_EQ(run("polite").type, "accepted");
  EXPECT_EQ(core.kept_bytes(), 800u);
}

// A session a submit would refuse is refused in a ping too, with the
// reason, instead of a pong whose copy on the progress socket never comes.
TEST_F(BrokerCoreTest, APingWithASessionThatIsNotEightLowerCaseHexDigitsIsRefused) {
  for (const std::string session : {"NOT-HEX!", "ABCDEF12", "abc", "0123456789"}) {
    proto::Ping p;
    p.req = 5;
    p.session = session;
    core_.on_client("c", {proto::encode(p)});
    ASSERT_EQ(out_.clients.back().type, "error") << session;
    const auto error = decode<proto::Error>(out_.clients.back().frames[0]);
    EXPECT_EQ(error.req, 5u);
    EXPECT_EQ(error.code_name, "invalid_argument");
    EXPECT_NE(error.message.find("8 lower-case hex digits, got \"" + session + "\""), std::string::npos) << error.message;
  }
  EXPECT_TRUE(out_.events.empty());
  proto::Ping good;
  good.req = 6;
  core_.on_client("c", {proto::encode(good)});
  EXPECT_EQ(out_.clients.back().type, "pong");
}

TEST_F(BrokerCoreTest, OpsAreListedWithTheirParameters) {
  proto::OpsRequest request;
  request.req = 12;
  core_.on_client("c", {proto::encode(request)});
  ASSERT_FALSE(out_.clients.empty());
  const auto reply = decode<proto::OpsReply>(out_.clients.back().frames[0]);
  EXPECT_EQ(reply.req, 12u);
  ASSERT_EQ(reply.ops.size(), schemas::all_ops().size());
  auto blur = std::find_if(reply.ops.begin(), reply.ops.end(), [](const auto& op) { return op.name == "gaussian_blur"; });
  ASSERT_NE(blur, reply.ops.end());
  const proto::ParamInfo& ksize = blur->params.at(0);
  EXPECT_EQ(ksize.key, "ksize");
  EXPECT_EQ(ksize.type, "int");
  EXPECT_EQ(ksize.default_value, "5");
  EXPECT_TRUE(ksize.odd);
  EXPECT_EQ(ksize.max, 255);
  EXPECT_FALSE(reply.aliases.empty());
  // The reply's table is the one built in.
  EXPECT_EQ(schemas::format_op_table(reply.ops, reply.aliases), schemas::format_op_table());
}

TEST_F(BrokerCoreTest, MalformedClientTrafficIsAnsweredAndCounted) {
  const std::vector<Frames> garbage = {
      {},
      {""},
      {"\xc1"},
      {std::string("\x93\x01\x02\x03", 4)},
      {proto::encode(proto::Ping{}) + "x"},
      {proto::encode(proto::Ping{}), "unexpected payload"},
      {proto::encode(proto::Heartbeat{})},
  };
  for (const Frames& frames : garbage) {
    const size_t before = out_.clients.size();
    core_.on_client("c", frames);
    ASSERT_EQ(out_.clients.size(), before + 1);
    EXPECT_EQ(last_error().code_name, "invalid_argument");
  }
  EXPECT_EQ(core_.counters().malformed_client, garbage.size());
  // A request that does not decode is answered with its req and job.
  proto::StatusRequest with_payload;
  with_payload.req = 77;
  with_payload.job = "00000000000000ff";
  core_.on_client("c", {proto::encode(with_payload), "unexpected payload"});
  EXPECT_EQ(last_error().req, 77u);
  EXPECT_EQ(last_error().job, "00000000000000ff");
  // A submit with an output but no path is refused at once, naming both.
  proto::Submit output_only;
  output_only.req = 78;
  output_only.output = "/data/out/x.png";
  core_.on_client("c", {proto::encode(output_only), "image"});
  EXPECT_EQ(last_error().req, 78u);
  EXPECT_NE(last_error().message.find("\"output\" is set (\"/data/out/x.png\") without \"path\""),
            std::string::npos)
      << last_error().message;
  proto::Submit missing_ops;
  missing_ops.req = 1;
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(4);
  pk.pack(std::string("sig")); pk.pack(std::string("IMGQ"));
  pk.pack(std::string("ver")); pk.pack(1);
  pk.pack(std::string("type")); pk.pack(std::string("submit"));
  pk.pack(std::string("req")); pk.pack(1);
  core_.on_client("c", {std::string(buf.data(), buf.size()), kImg});
  EXPECT_NE(last_error().message.find("required field \"ops\" is missing"), std::string::npos);
}

TEST_F(BrokerCoreTest, MalformedWorkerTrafficIsDroppedAndCounted) {
  core_.on_worker("w", {"junk"});
  core_.on_worker("w", {});
  EXPECT_EQ(core_.counters().malformed_worker, 2u);
  EXPECT_TRUE(out_.workers.empty());
  proto::Hello bad;
  bad.name = "x";
  bad.ranks = 0;
  core_.on_worker("w", {proto::encode(bad)});
  EXPECT_EQ(core_.groups(), 0u);
}

// check_submit() is pure: each field's refusal, named, without a core.
TEST(CheckSubmitTest, EachBadFieldIsRefusedByName) {
  const SubmitLimits limits{.max_image_bytes = 600, .max_pixels = 100};
  auto refusal = [&](proto::Submit s, const std::string& image = kImg) {
    auto checked = check_submit(s, image, limits);
    return checked.ok() ? std::string("accepted") : checked.status().ToString();
  };
  proto::Submit good;
  good.ops = {"gaussian_blur:ksize=3"};
  ASSERT_EQ(refusal(good), "accepted");

  proto::Submit s = good;
  s.session = "XYZ";
  EXPECT_NE(refusal(s).find("session must be 8 lower-case hex digits, got \"XYZ\""), std::string::npos) << refusal(s);
  s = good;
  s.priority = 10;
  EXPECT_NE(refusal(s).find("priority must be from 0 to 9, got 10"), std::string::npos) << refusal(s);
  s = good;
  s.ops = {"swirl:ksize=3"};
  EXPECT_NE(refusal(s).find("swirl"), std::string::npos) << refusal(s);
  EXPECT_NE(refusal(s).find("invalid_argument"), std::string::npos) << refusal(s);
  s = good;
  s.format = "gif";
  EXPECT_NE(refusal(s).find("format \"gif\" is not one of"), std::string::npos) << refusal(s);
  s = good;
  s.output = "/out/x.png";
  EXPECT_NE(refusal(s).find("\"output\" is set"), std::string::npos) << refusal(s);
  s = good;
  s.path = "in/x.png";
  s.output = "/out/x.png";
  EXPECT_NE(refusal(s, "").find("absolute path and output"), std::string::npos) << refusal(s, "");
  EXPECT_NE(refusal(good, "").find("invalid_image"), std::string::npos) << refusal(good, "");
  EXPECT_NE(refusal(good, png_bytes(601)).find("601 bytes"), std::string::npos);
  EXPECT_NE(refusal(good, png_bytes(0, 11, 10)).find("too_large"), std::string::npos) << "110 pixels > 100";
  EXPECT_EQ(refusal(good, png_bytes(0, 10, 10)), "accepted") << "the pixel limit is inclusive";
}

TEST(CheckSubmitTest, AcceptedFieldsComeOutCanonical) {
  proto::Submit s;
  s.ops = {"gaussian_blur: ksize = 5"};
  auto checked = check_submit(s, kImg, {.max_image_bytes = 600, .max_pixels = 100});
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  EXPECT_EQ(checked->format, "png") << "the default";
  EXPECT_FALSE(checked->local);
  ASSERT_EQ(checked->ops.size(), 1u);
  EXPECT_EQ(checked->ops[0].find(' '), std::string::npos) << checked->ops[0];

  proto::Submit local;
  local.path = "/data/in/../in/a.png";
  local.output = "/data/out/./a.png";
  auto l = check_submit(local, "", {.max_image_bytes = 600, .max_pixels = 100});
  ASSERT_TRUE(l.ok()) << l.status().ToString();
  EXPECT_TRUE(l->local);
  EXPECT_EQ(l->route_path, "/data/in/a.png");
  EXPECT_EQ(l->route_output, "/data/out/a.png");
}

TEST(CheckSubmitTest, TooLargeIsCountedApartFromInvalid) {
  EXPECT_EQ(rejection_of(Status::TooLarge("x")), monitoring::Rejection::kTooLarge);
  EXPECT_EQ(rejection_of(Status::InvalidImage("x")), monitoring::Rejection::kInvalid);
  EXPECT_EQ(rejection_of(Status::InvalidArgument("x")), monitoring::Rejection::kInvalid);
}

// Every sample of the metrics' text form, "name{labels}" -> value, but the
// histograms' buckets (they move with their _count).
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    const std::string series = line.substr(0, space);
    if (series.find("_bucket{") != std::string::npos) continue;
    out[series] = std::stod(line.substr(space + 1));
  }
  return out;
}

// Each event moves exactly the series it should, and counts() reads the
// same numbers back: one path for every event, nothing counted twice.
TEST(BrokerEventsTest, EachEventMovesExactlyItsSeries) {
  proto::JobStats stats;
  stats.pixels = 100;
  stats.compute_seconds = 0.5;
  stats.imbalance = 0.25;
  struct Case {
    const char* what;
    std::function<void(BrokerEvents&)> event;
    std::set<std::string> moves;
  };
  const std::vector<Case> cases = {
      {"submitted", [](BrokerEvents& e) { e.submitted(); }, {"imgq_jobs_submitted_total"}},
      {"refused: queue full", [](BrokerEvents& e) { e.rejected(monitoring::Rejection::kQueueFull); },
       {"imgq_jobs_rejected_total{reason=\"queue_full\"}"}},
      {"refused: stopping", [](BrokerEvents& e) { e.rejected(monitoring::Rejection::kStopping); },
       {"imgq_jobs_rejected_total{reason=\"stopping\"}"}},
      {"malformed", [](BrokerEvents& e) { e.malformed(monitoring::Peer::kWorkers); },
       {"imgq_messages_rejected_total{socket=\"workers\"}"}},
      {"committed", [](BrokerEvents& e) { e.committed(0.002, true); },
       {"imgq_journal_commit_seconds_count", "imgq_journal_commit_seconds_sum"}},
      {"commit failed", [](BrokerEvents& e) { e.committed(0.002, false); },
       {"imgq_journal_commit_seconds_count", "imgq_journal_commit_seconds_sum", "imgq_journal_commit_failures_total"}},
      {"dispatched", [](BrokerEvents& e) { e.dispatched(0.5); },
       {"imgq_job_wait_seconds_count", "imgq_job_wait_seconds_sum"}},
      {"retried", [](BrokerEvents& e) { e.retried(); }, {"imgq_jobs_retried_total"}},
      {"stray result", [](BrokerEvents& e) { e.stray_result(); }, {"imgq_worker_results_discarded_total"}},
      {"group joined", [](BrokerEvents& e) { e.group_joined("g", 2, 3, "127.0.0.1"); }, {}},
      {"failed before running",
       [](BrokerEvents& e) { e.finished(JobState::kFailed, StatusCode::kInvalidImage, 0, "", nullptr); },
       {"imgq_jobs_completed_total{outcome=\"failed\"}", "imgq_jobs_failed_total{code=\"invalid_image\"}"}},
      {"done on a group",
       [&](BrokerEvents& e) { e.finished(JobState::kDone, StatusCode::kOk, 1.0, "g", &stats); },
       {"imgq_jobs_completed_total{outcome=\"succeeded\"}", "imgq_job_duration_seconds_count",
        "imgq_job_duration_seconds_sum", "imgq_group_jobs_total{group=\"g\",outcome=\"succeeded\"}",
        "imgq_group_pixels_total{group=\"g\"}", "imgq_group_stage_seconds_total{group=\"g\",stage=\"compute\"}",
        "imgq_group_rank_imbalance_ratio{group=\"g\"}"}},
      {"cancelled", [](BrokerEvents& e) { e.finished(JobState::kCancelled, StatusCode::kCancelled, 0, "", nullptr); },
       {"imgq_jobs_completed_total{outcome=\"cancelled\"}"}},
      {"undelivered", [](BrokerEvents& e) { e.undelivered_result(); }, {"imgq_results_undelivered_total"}},
      {"stopped running", [](BrokerEvents& e) { e.stopped_running(); }, {"imgq_jobs_stopped_running_total"}},
      {"acknowledged", [](BrokerEvents& e) { e.acknowledged(); }, {"imgq_results_ended_total{how=\"acknowledged\"}"}},
      {"expired", [](BrokerEvents& e) { e.expired_result(); }, {"imgq_results_ended_total{how=\"expired\"}"}},
  };
  monitoring::BrokerMetrics metrics("t");
  BrokerEvents events(&metrics);
  for (const Case& c : cases) {
    const auto before = samples(metrics.text());
    c.event(events);
    const auto after = samples(metrics.text());
    std::set<std::string> moved;
    for (const auto& [series, value] : after) {
      auto it = before.find(series);
      if (it == before.end() ? value != 0 : it->second != value) moved.insert(series);
    }
    EXPECT_EQ(moved, c.moves) << c.what;
  }
  const auto n = events.counts();
  EXPECT_EQ(n.submitted, 1u);
  EXPECT_EQ(n.rejected_queue_full, 1u);
  EXPECT_EQ(n.rejected_stopping, 1u);
  EXPECT_EQ(n.malformed_worker, 1u);
  EXPECT_EQ(n.commits, 1u);
  EXPECT_EQ(n.commit_failures, 1u);
  EXPECT_EQ(n.dispatched, 1u);
  EXPECT_EQ(n.retried, 1u);
  EXPECT_EQ(n.stray_results, 1u);
  EXPECT_EQ(n.failed, 1u);
  EXPECT_EQ(n.succeeded, 1u);
  EXPECT_EQ(n.cancelled, 1u);
  EXPECT_EQ(n.undelivered_results, 1u);
  EXPECT_EQ(n.aborted_running, 1u);
  EXPECT_EQ(n.acknowledged, 1u);
  EXPECT_EQ(n.expired_results, 1u);
  BrokerEvents without(nullptr);
  without.submitted();
  EXPECT_EQ(without.counts().submitted, 1u) << "metrics of its own, read back";
  EXPECT_FALSE(without.wants_state());
}

// With CURVE, the progress socket lets a key follow only the sessions it
// holds (its jobs' ids start with them); an operator key follows anything.
TEST(BrokerCoreSessions, AKeyFollowsOnlyItsOwnSessionsAndJobs) {
  RecordingOutbox out;
  BrokerConfig config;
  config.operator_keys = {"olga"};
  BrokerCore core(config, out);
  auto send = [&](const std::string& client, const std::string& owner, const std::string& header,
                  std::optional<std::string> image = std::nullopt) {
    Frames frames{header};
    if (image) frames.push_back(*image);
    core.on_client(client, std::move(frames), owner);
    core.commit();
    return out.clients.back();
  };
  proto::Ping ping;
  ping.req = 1;
  ping.session = "a11ce000";
  EXPECT_EQ(send("A", "alice", proto::encode(ping)).type, "pong");
  // A job without a session gets a fresh one, alice's too.
  proto::Submit submit;
  submit.req = 2;
  submit.ops = {"invert"};
  const Sent accepted = send("A", "alice", proto::encode(submit), kImg);
  ASSERT_EQ(accepted.type, "accepted");
  const std::string job = decode<proto::Accepted>(accepted.frames[0]).job;

  EXPECT_TRUE(core.on_subscription(true, "a11ce000", "alice"));
  EXPECT_TRUE(core.on_subscription(true, job, "alice"));
  for (const std::string& topic : {std::string(), std::string("a11ce"), std::string("a11ce000"), job,
                                   job.substr(0, 8), std::string("A11CE000"), std::string("zzzzzzzz")}) {
    EXPECT_FALSE(core.on_subscription(true, topic, "bob")) << topic;
    EXPECT_TRUE(core.on_subscription(true, topic, "olga")) << topic;
    EXPECT_TRUE(core.on_subscription(true, topic, "")) << topic << ": without CURVE, everything";
    EXPECT_TRUE(core.on_subscription(false, topic, "bob")) << "an unsubscription is always applied";
  }
  // A free session becomes the first subscriber's.
  EXPECT_TRUE(core.on_subscription(true, "b0b00000", "bob"));
  EXPECT_FALSE(core.on_subscription(true, "b0b00000", "alice"));
  // Nor may bob ping or submit with alice's session.
  ping.req = 3;
  Sent refused = send("B", "bob", proto::encode(ping));
  ASSERT_EQ(refused.type, "error");
  EXPECT_EQ(decode<proto::Error>(refused.frames[0]).code, static_cast<int>(StatusCode::kPermissionDenied));
  submit.req = 4;
  submit.session = "a11ce000";
  refused = send("B", "bob", proto::encode(submit), kImg);
  ASSERT_EQ(refused.type, "error");
  EXPECT_NE(decode<proto::Error>(refused.frames[0]).message.find("session a11ce000 is another client's"),
            std::string::npos);
  EXPECT_EQ(core.jobs(), 1u);
}

}  // namespace
}  // namespace imgq::broker
