// The broker core over a real journal (SQLite in a temporary folder) with a
// fake clock: accepted only once stored, results kept until acknowledged,
// keys that answer, conflict and owner scoping, and recovery after a broker
// that stopped at any point, damaged files included. No sockets, no sleeps.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include <gtest/gtest.h>

#include "broker/core_test_support.h"
#include "imgq/broker/broker_core.h"
#include "imgq/broker/salvage.h"
#include "imgq/broker/sqlite_journal.h"
#include "imgq/common/checksum.h"
#include "imgq/common/file_io.h"

#include <sqlite3.h>

namespace imgq::broker {
namespace {

namespace fs = std::filesystem;
using namespace imgq::broker::testing;  // NOLINT: the shared test vocabulary

class JournalTest : public ::testing::Test {
 protected:
  JournalTest() {
    dir_ = fs::temp_directory_path() / ("imgq_journal_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    start();
  }
  ~JournalTest() override {
    core_.reset();
    journal_.reset();
    fs::remove_all(dir_);
  }

  static BrokerConfig config() {
    BrokerConfig c;
    c.max_attempts = 2;
    c.result_ttl = Duration{60'000};
    c.max_kept_bytes = 1'000'000;
    return c;
  }

  // A broker process starting on the data dir: what it restored.
  RestoreSummary start() {
    Recovered recovered;
    auto journal = SqliteJournal::open(dir_, &recovered);
    EXPECT_TRUE(journal.ok()) << journal.status().ToString();
    journal_ = std::move(*journal);
    problems_ = recovered.problems;
    out_ = std::make_unique<RecordingOutbox>();
    core_ = std::make_unique<BrokerCore>(config(), *out_, [this] { return now_; }, nullptr, journal_.get());
    core_->set_wall_clock([this] { return wall_; });
    return core_->restore(std::move(recovered.jobs));
  }
  // The process dies: whatever was not committed is lost.
  RestoreSummary crash_and_restart() {
    core_.reset();
    journal_.reset();
    return start();
  }

  void send(const std::string& client, Frames frames, const std::string& owner = {}) {
    core_->on_client(client, std::move(frames), owner);
  }

  proto::Submit submit_message(uint64_t req, std::string key = {}, std::vector<std::string> ops = {"invert"}) {
    proto::Submit s;
    s.req = req;
    s.ops = std::move(ops);
    s.name = "f" + std::to_string(req) + ".png";
    s.key = std::move(key);
    return s;
  }
  // Submits and commits; the accepted job id, or empty after an error.
  std::string submit(const std::string& client, uint64_t req, std::string key = {}, std::string image = kImg,
                     const std::string& owner = {}) {
    send(client, {proto::encode(submit_message(req, std::move(key))), std::move(image)}, owner);
    // Past the commit gap of the production policy (it holds a commit of
    // submits that close to the previous one).
    now_ += BrokerConfig{}.commit.gap;
    core_->commit();
    const Sent& reply = out_->clients.back();
    return reply.type == "accepted" ? decode<proto::Accepted>(reply.frames[0]).job : std::string();
  }
  void hello(const std::string& group, int slots = 1) {
    proto::Hello h;
    h.name = group;
    h.ranks = 1;
    h.slots = slots;
    core_->on_worker(group, {proto::encode(h)});
  }
  void done(const std::string& group, const std::string& job, std::string result = "OUT") {
    proto::Done d;
    d.job = job;
    core_->on_worker(group, {proto::encode(d), std::move(result)});
  }
  std::string job_sent_to(const std::string& group) {
    for (auto it = out_->workers.rbegin(); it != out_->workers.rend(); ++it) {
      if (it->to == group && it->type == "job") return decode<proto::JobRequest>(it->frames[0]).job;
    }
    return {};
  }
  template <typename M>
  void request(const std::string& client, const std::string& job, uint64_t req = 9, const std::string& owner = {}) {
    M m;
    m.req = req;
    m.job = job;
    send(client, {proto::encode(m)}, owner);
  }
  proto::Error last_error() { return decode<proto::Error>(out_->clients.back().frames[0]); }
  // Lets the lazy commit of what is not a submit (dispatches, results,
  // acknowledgements) come due, as the broker's loop does.
  void settle() {
    now_ += BrokerConfig{}.commit.lazy;
    core_->commit();
  }

  fs::path dir_;
  Clock::time_point now_ = Clock::time_point{} + std::chrono::hours(1);
  double wall_ = 1'800'000'000;  // Unix seconds; tests move it with now_
  std::unique_ptr<SqliteJournal> journal_;
  std::unique_ptr<RecordingOutbox> out_;
  std::unique_ptr<BrokerCore> core_;
  std::vector<std::string> problems_;
};

TEST_F(JournalTest, AcceptedOnlyOnceTheCommitHasStoredIt) {
  send("c", {proto::encode(submit_message(1)), kImg});
  EXPECT_TRUE(out_->clients.empty()) << "answered before the commit";
  EXPECT_TRUE(journal_->dirty());
  const uint64_t syncs = journal_->syncs();
  // Many submits of one round share one commit.
  for (uint64_t req = 2; req <= 20; ++req) send("c", {proto::encode(submit_message(req)), kImg});
  core_->commit();
  EXPECT_EQ(journal_->syncs(), syncs + 1) << "group commit: one fsync for the round";
  ASSERT_EQ(out_->clients.size(), 20u);
  for (const Sent& s : out_->clients) EXPECT_EQ(s.type, "accepted");
  // Not even a crash right after can lose them.
  const RestoreSummary r = crash_and_restart();
  EXPECT_EQ(r.queued, 20u);
  EXPECT_EQ(core_->queued(), 20u);
}

TEST_F(JournalTest, WithTheLogSyncedInTheBackgroundASubmitWaitsForItsSync) {
  ASSERT_TRUE(journal_->start_background_sync().ok());
  journal_->hold_syncs_for_testing(true);  // the commit is written, not yet synced
  send("c", {proto::encode(submit_message(1)), kImg});
  core_->commit();
  core_->release_synced();
  EXPECT_EQ(*journal_->synced(), 0u);
  EXPECT_TRUE(out_->clients.empty()) << "answered before it was on disk";
  journal_->hold_syncs_for_testing(false);
  ASSERT_TRUE(journal_->wait_synced(1).ok());
  core_->release_synced();
  ASSERT_EQ(out_->clients.size(), 1u);
  EXPECT_EQ(out_->clients[0].type, "accepted");
  // Its eventfd said so.
  uint64_t count = 0;
  EXPECT_EQ(::read(journal_->notify_fd(), &count, sizeof count), static_cast<ssize_t>(sizeof count));
  EXPECT_GE(count, 1u);
  const RestoreSummary r = crash_and_restart();
  EXPECT_EQ(r.queued, 1u);
}

// A big image (in a file of its own) is written and fsynced on the journal's
// writer thread: the job is dispatched while it is, and accepted only at the
// first commit after the file is on disk. The writes are held with a gate.
TEST_F(JournalTest, ABigImageIsWrittenOffTheLoopAndAcceptedOnceOnDisk) {
  ASSERT_TRUE(journal_->start_background_sync().ok());
  journal_->hold_payload_writes_for_testing(true);
  hello("g");
  const std::string big = png_bytes(SqliteJournal::kInlineBytes + 4096);
  send("c", {proto::encode(submit_message(1)), big});
  const std::string id = job_sent_to("g");
  EXPECT_FALSE(id.empty()) << "dispatched while its image is written";
  core_->commit();
  EXPECT_TRUE(journal_->syncing());
  EXPECT_TRUE(journal_->dirty()) << "committed before its image was on disk";
  EXPECT_EQ(fs::file_size(dir_ / "payloads" / (id + ".image")), 0u) << "written on the loop";
  EXPECT_TRUE(out_->clients.empty()) << "accepted before its image was on disk";
  journal_->hold_payload_writes_for_testing(false);
  // The writer says it is done on the eventfd; then the commit, then its sync.
  for (int round = 0; round < 200 && out_->clients.empty(); ++round) {
    pollfd ready{journal_->notify_fd(), POLLIN, 0};
    ASSERT_GE(::poll(&ready, 1, 50), 0);
    uint64_t count;
    (void)!::read(journal_->notify_fd(), &count, sizeof count);
    core_->commit();
  }
  ASSERT_EQ(out_->clients.size(), 1u);
  EXPECT_EQ(out_->clients[0].type, "accepted");
  EXPECT_EQ(decode<proto::Accepted>(out_->clients[0].frames[0]).job, id);
  // On disk whole: a crash now restores the job with its image.
  const RestoreSummary r = crash_and_restart();
  EXPECT_EQ(r.queued, 1u);
  auto image = journal_->image(id);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  EXPECT_TRUE(*image == big);
}

// A submit is queued and dispatched at once, its commit syncing meanwhile;
// its client hears nothing of it (no accepted, event or result, even if it
// finished) until the commit is on disk, then `accepted` and its result.
TEST_F(JournalTest, AJobRunsWhileItsCommitSyncsAndIsAnsweredOnlyAfter) {
  hello("g");
  send("c", {proto::encode(submit_message(1)), kImg});
  const std::string id = job_sent_to("g");
  ASSERT_FALSE(id.empty()) << "dispatched before its commit";
  EXPECT_TRUE(out_->clients.empty());
  request<proto::StatusRequest>("c", id, 5);
  EXPECT_EQ(last_error().code_name, "not_found") << "unknown to clients before the commit";
  const size_t before = out_->clients.size();
  done("g", id, "RESULT");
  EXPECT_EQ(out_->clients.size(), before) << "no result before the commit";
  for (const auto& [topic, event] : out_->events) EXPECT_NE(topic, id) << "no event before the commit";
  core_->commit();
  ASSERT_EQ(out_->clients.size(), before + 2);
  EXPECT_EQ(out_->clients[before].type, "accepted");
  EXPECT_EQ(decode<proto::Accepted>(out_->clients[before].frames[0]).job, id);
  EXPECT_EQ(out_->clients[before + 1].type, "result");
  EXPECT_EQ(out_->clients[before + 1].frames.back(), "RESULT");
  ASSERT_FALSE(out_->events.empty());
  EXPECT_EQ(out_->events.back().second.job.state, "done");
  // Stored: a crash now loses nothing (the job's end was not yet written,
  // so it runs again: once in effect).
  const RestoreSummary r = crash_and_restart();
  EXPECT_EQ(r.queued + r.requeued + r.results, 1u);
}

TEST_F(JournalTest, UncommittedSubmitsWereNeverAcknowledgedAndAreGoneAfterACrash) {
  send("c", {proto::encode(submit_message(1)), png_bytes(400'000)});  // a payload file of its own
  EXPECT_TRUE(out_->clients.empty());
  const RestoreSummary r = crash_and_restart();
  EXPECT_EQ(r.queued, 0u);
  EXPECT_TRUE(fs::is_empty(dir_ / "payloads")) << "the unreferenced payload was removed";
}

// A journal whose commits fail, as on a full disk.
class FailingJournal final : public Journal {
 public:
  bool durable() const override { return true; }
  Status add(const JobRecord&, const SharedBytes&) override {
    staged = true;
    return add_error;
  }
  void progressed(const JobRecord&) override { staged = true; }
  void finish(const JobRecord&, const SharedBytes&) override { staged = true; }
  void drop_result(const std::string&, Gone, double) override { staged = true; }
  void forget(const std::string&) override { staged = true; }
  Result<uint64_t> commit() override {
    staged = false;
    return Status::ResourceExhausted("cannot commit: database or disk is full");
  }
  Result<uint64_t> synced() override { return uint64_t{0}; }
  Status wait_synced(uint64_t) override { return Status::Ok(); }
  bool syncing() override { return false; }
  bool dirty() const override { return staged; }
  Result<std::string> image(const std::string&) override { return Status::NotFound("none"); }
  Result<std::string> result(const std::string&) override { return Status::NotFound("none"); }
  Status add_error;
  bool staged = false;
};

TEST_F(JournalTest, WhatCannotBeStoredIsRefusedNeverAcknowledged) {
  FailingJournal failing;
  RecordingOutbox out;
  BrokerCore core(config(), out, [this] { return now_; }, nullptr, &failing);
  core.on_client("c", {proto::encode(submit_message(1, "k")), kImg});
  core.commit();
  ASSERT_EQ(out.clients.size(), 1u);
  auto error = decode<proto::Error>(out.clients[0].frames[0]);
  EXPECT_EQ(error.req, 1u);
  EXPECT_EQ(error.code_name, "resource_exhausted");
  EXPECT_TRUE(error.retryable);
  EXPECT_NE(error.message.find("could not store the job, so it was not accepted"), std::string::npos);
  EXPECT_NE(error.message.find("disk is full"), std::string::npos);
  EXPECT_EQ(core.queued(), 0u);
  EXPECT_EQ(core.jobs(), 0u);
  EXPECT_EQ(core.counters().rejected_unstored, 1u);

  // A file that cannot be written is refused at once, with its reason.
  failing.add_error = Status::Unavailable("cannot create /data/payloads/x.image: Permission denied");
  core.on_client("c", {proto::encode(submit_message(2, "k")), kImg});
  error = decode<proto::Error>(out.clients.back().frames[0]);
  EXPECT_EQ(error.req, 2u);
  EXPECT_EQ(error.code_name, "unavailable");
  EXPECT_NE(error.message.find("Permission denied"), std::string::npos);
}

// A job dispatched while its commit was syncing, whose commit then failed:
// refused to its client, stopped on its group, and the group's answer is a
// stray that frees the slot for the next job.
TEST_F(JournalTest, AJobWhoseCommitFailsIsStoppedWhereItRuns) {
  FailingJournal failing;
  RecordingOutbox out;
  BrokerCore core(config(), out, [this] { return now_; }, nullptr, &failing);
  proto::Hello h;
  h.name = "g";
  h.ranks = 1;
  h.slots = 1;
  core.on_worker("g", {proto::encode(h)});
  core.on_client("c", {proto::encode(submit_message(1)), kImg});
  ASSERT_FALSE(out.workers.empty());
  ASSERT_EQ(out.workers.back().type, "job");
  const std::string id = decode<proto::JobRequest>(out.workers.back().frames[0]).job;
  core.commit();
  ASSERT_EQ(out.clients.size(), 1u);
  EXPECT_EQ(out.clients[0].type, "error");
  EXPECT_NE(decode<proto::Error>(out.clients[0].frames[0]).message.find("not accepted"), std::string::npos);
  ASSERT_EQ(out.workers.back().type, "abort");
  EXPECT_EQ(decode<proto::Abort>(out.workers.back().frames[0]).job, id);
  EXPECT_EQ(core.jobs(), 0u);
  // The group answers the aborted job; the next submit runs on it.
  proto::Done d;
  d.job = id;
  d.code = static_cast<int>(StatusCode::kCancelled);
  core.on_worker("g", {proto::encode(d)});
  core.on_client("c", {proto::encode(submit_message(2)), kImg});
  EXPECT_EQ(out.workers.back().type, "job");
  EXPECT_NE(decode<proto::JobRequest>(out.workers.back().frames[0]).job, id);
}

// The disk fills, then turns read-only, while a job finishes and its result
// is acknowledged: submits are refused with a retry hint and the reason,
// every failure is counted, the pong says what the disk is, and once it
// takes writes again (found by a probe, no submit needed) the journal
// catches up with what it could not store: after a restart the acknowledged
// job is a tombstone, not a job to run again.
TEST_F(JournalTest, ADiskFullOrReadOnlyMidRunRefusesWithAHintAndTheJournalCatchesUpWhenItIsBack) {
  auto pong = [&] {
    proto::Ping ping;
    ping.req = 77;
    send("c", {proto::encode(ping)});
    return decode<proto::Pong>(out_->clients.back().frames[0]);
  };
  EXPECT_EQ(pong().journal, "healthy");
  hello("g");
  const std::string a = submit("c", 1, "ka");
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(job_sent_to("g"), a);

  journal_->fail_disk_for_testing(DiskOp::kCommit, ENOSPC);
  done("g", a);
  settle();  // the job's end cannot be stored
  ASSERT_EQ(out_->clients.back().type, "result");  // delivered all the same, from memory
  EXPECT_TRUE(submit("c", 2).empty());
  proto::Error refused = last_error();
  EXPECT_EQ(refused.code_name, "resource_exhausted");
  EXPECT_EQ(refused.retry_after_ms, 1000u);
  EXPECT_NE(refused.message.find("No space left on device"), std::string::npos) << refused.message;
  EXPECT_EQ(pong().journal, "full");
  request<proto::ResultAck>("c", a);
  settle();

  journal_->fail_disk_for_testing(DiskOp::kCommit, EROFS);
  EXPECT_TRUE(submit("c", 3).empty());
  refused = last_error();
  EXPECT_EQ(refused.code_name, "unavailable");
  EXPECT_EQ(refused.retry_after_ms, 1000u);
  EXPECT_NE(refused.message.find("Read-only file system"), std::string::npos) << refused.message;
  EXPECT_EQ(pong().journal, "read_only");
  const uint64_t failures = core_->counters().disk_errors;
  EXPECT_GE(failures, 4u);  // the end, a submit, the acknowledgement, a submit
  EXPECT_EQ(core_->counters().rejected_unstored, 2u);

  // The disk is back; nothing commits, the probe finds out.
  journal_->fail_disk_for_testing(DiskOp::kCommit, 0);
  now_ += std::chrono::seconds(2);
  core_->tick();
  EXPECT_EQ(pong().journal, "healthy");
  const std::string d = submit("c", 4);
  EXPECT_FALSE(d.empty());
  settle();
  EXPECT_EQ(core_->counters().disk_errors, failures);

  const RestoreSummary r = crash_and_restart();
  EXPECT_EQ(r.queued, 1u);      // d
  EXPECT_EQ(r.requeued, 0u);    // a's end was stored after all...
  EXPECT_EQ(r.tombstones, 1u);  // ...and its acknowledgement
  EXPECT_EQ(r.results, 0u);
  EXPECT_TRUE(submit("c", 5, "ka").empty());
  EXPECT_NE(last_error().message.find("acknowledged"), std::string::npos) << last_error().message;
}

// A log that cannot be made durable (fsync failed: the kernel may have
// dropped the pages) is not trusted again: the waiting submits are refused
// and the core says the broker must stop, so a restart recovers from disk.
TEST_F(JournalTest, AFailedSyncOfTheLogRefusesAndStopsTheBroker) {
  journal_->fail_disk_for_testing(DiskOp::kSync, EIO);
  EXPECT_TRUE(submit("c", 1, "k1").empty());
  EXPECT_EQ(last_error().code_name, "unavailable");
  EXPECT_NE(last_error().message.find("Input/output error"), std::string::npos) << last_error().message;
  settle();
  ASSERT_FALSE(core_->failure().ok());
  EXPECT_NE(core_->failure().message().find("the broker stops"), std::string::npos) << core_->failure().message();
  EXPECT_GE(core_->counters().disk_errors, 1u);
  // The refused job's row may have reached the disk regardless (as after a
  // crash between a commit and its sync): its client asks again under its
  // key and gets that job, not a second one.
  journal_->fail_disk_for_testing(DiskOp::kSync, 0);
  const RestoreSummary r = crash_and_restart();
  EXPECT_LE(r.queued, 1u);
  EXPECT_FALSE(submit("c", 2, "k1").empty());
  EXPECT_EQ(core_->queued(), 1u);
  EXPECT_TRUE(core_->failure().ok());
}

// 50,000 tiny jobs run, acknowledged and forgotten: the database and its
// log give their space back at quiet moments (a bounded step each), so the
// journal ends within a few MB of where it began, whatever went through it.
TEST_F(JournalTest, TheJournalGivesBackTheSpaceOfForgottenJobs) {
  auto on_disk = [&] {
    std::error_code ec;
    const uintmax_t log = fs::file_size(dir_ / "journal.db-wal", ec);
    return fs::file_size(dir_ / "journal.db") + (ec ? 0 : log);
  };
  const uintmax_t before = on_disk();
  hello("g", 250);
  uint64_t req = 0;
  for (int round = 0; round < 200; ++round) {
    out_->clients.clear();
    out_->workers.clear();
    for (int i = 0; i < 250; ++i) {
      ++req;
      send("c", {proto::encode(submit_message(req, "k" + std::to_string(req))), kImg});
    }
    now_ += BrokerConfig{}.commit.gap;
    core_->commit();
    proto::ResultAck ack;
    for (const Sent& sent : out_->workers) {
      if (sent.type != "job") continue;
      const std::string id = decode<proto::JobRequest>(sent.frames[0]).job;
      done("g", id);
      (ack.job.empty() ? ack.job : ack.jobs.emplace_back()) = id;
    }
    ASSERT_EQ(ack.jobs.size(), 249u) << "round " << round;
    settle();  // the results stored
    send("c", {proto::encode(ack)});
    settle();  // and acknowledged: tombstones for one TTL, for their keys
  }
  const uintmax_t peak = on_disk();
  EXPECT_EQ(core_->tombstones(), 50'000u);
  now_ += config().result_ttl + std::chrono::seconds(1);
  wall_ += 61;
  core_->tick();
  settle();
  EXPECT_EQ(core_->tombstones(), 0u);
  EXPECT_EQ(core_->jobs(), 0u);
  int steps = 0;
  double longest = 0;  // a step holds the broker's loop this long
  for (; steps < 500 && on_disk() > before + (2u << 20); ++steps) {
    now_ += std::chrono::seconds(1);
    const auto started = std::chrono::steady_clock::now();
    core_->tick();
    longest = std::max(longest, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  auto mb = [](uintmax_t bytes) { return static_cast<double>(bytes) / 1e6; };
  std::cout << "[ measured ] journal " << mb(before) << " MB before, " << mb(peak) << " MB after 50,000 jobs, "
            << mb(on_disk()) << " MB " << steps << " quiet second(s) after they were forgotten (longest step "
            << longest * 1e3 << " ms)\n";
  EXPECT_LE(on_disk(), before + (2u << 20));
  // Still a working journal: a new job is stored and restored.
  EXPECT_FALSE(submit("c", ++req).empty());
  EXPECT_EQ(crash_and_restart().queued, 1u);
}

TEST_F(JournalTest, AResultStaysUntilAcknowledgedAndItsKeyAnswersAfterwards) {
  const std::string job = submit("c", 1, "key-1");
  hello("g");
  done("g", job, "RESULT");
  ASSERT_EQ(out_->clients.back().type, "result");
  EXPECT_EQ(core_->kept_bytes(), 6u);

  // Delivered to a socket is not yet acknowledged: fetch gets it again,
  // from disk (the broker keeps no copy in memory).
  request<proto::Fetch>("other", job);
  ASSERT_EQ(out_->clients.back().type, "result");
  EXPECT_EQ(out_->clients.back().frames[1], "RESULT");
  // So does a resubmit of the key, after any restart.
  settle();
  crash_and_restart();
  EXPECT_EQ(core_->kept_bytes(), 6u);
  send("again", {proto::encode(submit_message(7, "key-1")), kImg});
  ASSERT_GE(out_->clients.size(), 2u);
  EXPECT_EQ(out_->clients[out_->clients.size() - 2].type, "accepted");
  EXPECT_TRUE(decode<proto::Accepted>(out_->clients[out_->clients.size() - 2].frames[0]).existing);
  ASSERT_EQ(out_->clients.back().type, "result");
  EXPECT_EQ(decode<proto::JobResult>(out_->clients.back().frames[0]).req, 7u);
  EXPECT_EQ(out_->clients.back().frames[1], "RESULT");

  request<proto::ResultAck>("again", job);
  EXPECT_EQ(core_->kept_bytes(), 0u);
  EXPECT_EQ(core_->counters().acknowledged, 1u);
  request<proto::Fetch>("other", job);
  EXPECT_EQ(last_error().code_name, "not_found");
  EXPECT_NE(last_error().message.find("delivered and acknowledged at"), std::string::npos) << last_error().message;
  // Regression: a delivered key got `accepted existing` and then nothing.
  send("late", {proto::encode(submit_message(8, "key-1")), kImg});
  core_->commit();
  EXPECT_EQ(last_error().code_name, "not_found");
  EXPECT_EQ(last_error().req, 8u);
  EXPECT_NE(last_error().message.find("its result was acknowledged at"), std::string::npos);
  // Also after a restart (a tombstone for the key), until one more TTL.
  settle();
  crash_and_restart();
  send("later", {proto::encode(submit_message(9, "key-1")), kImg});
  core_->commit();
  EXPECT_EQ(last_error().code_name, "not_found");
  // Only a tombstone is kept (a few strings, not the whole job); status
  // still names the job's end, and it cannot be cancelled.
  EXPECT_EQ(core_->jobs(), 0u);
  EXPECT_EQ(core_->tombstones(), 1u);
  request<proto::StatusRequest>("other", job);
  ASSERT_EQ(out_->clients.back().type, "status_reply");
  EXPECT_EQ(decode<proto::StatusReply>(out_->clients.back().frames[0]).job.state, "done");
  request<proto::Cancel>("other", job);
  EXPECT_EQ(last_error().code_name, "invalid_argument");
  EXPECT_NE(last_error().message.find("already done"), std::string::npos) << last_error().message;
  now_ += Duration{61'000};
  core_->tick();
  EXPECT_EQ(core_->tombstones(), 0u) << "the tombstone went after its TTL";
  // The key is free again: a new job.
  send("new", {proto::encode(submit_message(10, "key-1")), kImg});
  core_->commit();
  ASSERT_EQ(out_->clients.back().type, "accepted");
  EXPECT_FALSE(decode<proto::Accepted>(out_->clients.back().frames[0]).existing);
  EXPECT_NE(decode<proto::Accepted>(out_->clients.back().frames[0]).job, job);
}

// Under load a commit waits out commit_gap after the previous one, so that
// it takes more submits (and one fsync for them); a lone submit is not held.
TEST_F(JournalTest, UnderLoadACommitWaitsOutTheGapAfterThePreviousOne) {
  BrokerConfig c = config();
  c.commit.gap = std::chrono::microseconds(2000);
  RecordingOutbox out;
  BrokerCore core(c, out, [this] { return now_; }, nullptr, journal_.get());
  auto submit_and_commit = [&](uint64_t req) {
    core.on_client("c", {proto::encode(submit_message(req)), kImg});
    core.commit();
  };
  submit_and_commit(1);
  ASSERT_EQ(out.clients.size(), 1u) << "the first commit in a while goes at once";
  now_ += Duration{1};
  submit_and_commit(2);
  EXPECT_EQ(out.clients.size(), 1u) << "1 ms after the last commit: it waits";
  EXPECT_LE(core.time_to_next_tick(), Duration{1});
  submit_and_commit(3);
  EXPECT_EQ(out.clients.size(), 1u);
  now_ += Duration{1};
  core.commit();
  ASSERT_EQ(out.clients.size(), 3u) << "both in one commit, 2 ms after the last";
  EXPECT_EQ(decode<proto::Accepted>(out.clients[1].frames[0]).req, 2u);
  EXPECT_EQ(decode<proto::Accepted>(out.clients[2].frames[0]).req, 3u);
  EXPECT_EQ(core.counters().commits, 2u);

  // Without a journal to sync (memory only) there is nothing to wait for.
  RecordingOutbox memory_out;
  BrokerCore memory(c, memory_out, [this] { return now_; });
  for (uint64_t req = 1; req <= 2; ++req) {
    memory.on_client("c", {proto::encode(submit_message(req)), kImg});
    memory.commit();
    EXPECT_EQ(memory_out.clients.size(), req);
  }
}

TEST_F(JournalTest, AnUnacknowledgedResultExpiresAndSaysWhen) {
  const std::string job = submit("c", 1, "k");
  out_->gone.insert("c");
  hello("g");
  done("g", job);
  now_ += Duration{61'000};
  core_->tick();
  EXPECT_EQ(core_->counters().expired_results, 1u);
  EXPECT_EQ(core_->kept_bytes(), 0u);
  send("c2", {proto::encode(submit_message(2, "k")), kImg});
  core_->commit();
  EXPECT_EQ(last_error().code_name, "not_found");
  EXPECT_NE(last_error().message.find("the result of job " + job + " (key \"k\") expired at"), std::string::npos)
      << last_error().message;
}

// A kept result's TTL runs from when it finished, across a restart: the
// stored wall-clock time becomes a time of the new process's clock.
TEST_F(JournalTest, AKeptResultExpiresAfterARestartWhenItWouldHaveWithoutOne) {
  const std::string job = submit("c", 1);
  out_->gone.insert("c");
  hello("g");
  done("g", job);
  settle();
  now_ += Duration{50'000};  // 50 s of the 60 s TTL pass; then the broker restarts
  wall_ += 50;
  crash_and_restart();
  now_ += Duration{9'000};
  wall_ += 9;
  core_->tick();
  request<proto::Fetch>("c2", job);
  EXPECT_EQ(decode<proto::JobResult>(out_->clients.back().frames[0]).state, "done") << "expired early";
  now_ += Duration{2'000};  // 61 s since it finished
  wall_ += 2;
  core_->tick();
  EXPECT_EQ(core_->counters().expired_results, 1u);
  request<proto::Fetch>("c2", job);
  EXPECT_EQ(last_error().code_name, "not_found");
  EXPECT_NE(last_error().message.find("expired at 2027-01-15 08:01:01 UTC"), std::string::npos) << last_error().message;
}

TEST_F(JournalTest, AKeyReusedForADifferentJobIsAConflict) {
  const std::string job = submit("c", 1, "k");
  send("c", {proto::encode(submit_message(2, "k", {"grayscale"})), kImg});
  core_->commit();
  EXPECT_EQ(last_error().code_name, "conflict");
  EXPECT_EQ(last_error().job, job);
  EXPECT_FALSE(last_error().retryable);
  send("c", {proto::encode(submit_message(3, "k")), png_bytes(100)});
  core_->commit();
  EXPECT_EQ(last_error().code_name, "conflict");
  EXPECT_NE(last_error().message.find("use a new key"), std::string::npos);
  // The same request again is no conflict, also with the format spelled
  // another way (jpg and jpeg, png and PNG write the same bytes).
  EXPECT_EQ(submit("c", 4, "k"), job);
  proto::Submit upper = submit_message(5, "k");
  upper.format = "PNG";
  send("c", {proto::encode(upper), kImg});
  core_->commit();
  ASSERT_EQ(out_->clients.back().type, "accepted");
  EXPECT_EQ(decode<proto::Accepted>(out_->clients.back().frames[0]).job, job);
  proto::Submit jpg = submit_message(6, "j");
  jpg.format = "jpg";
  send("c", {proto::encode(jpg), kImg});
  core_->commit();
  const std::string jpg_job = decode<proto::Accepted>(out_->clients.back().frames[0]).job;
  jpg.req = 7;
  jpg.format = "jpeg";
  send("c", {proto::encode(jpg), kImg});
  core_->commit();
  ASSERT_EQ(out_->clients.back().type, "accepted");
  EXPECT_EQ(decode<proto::Accepted>(out_->clients.back().frames[0]).job, jpg_job);
}

TEST_F(JournalTest, KeysAndJobsAreScopedToTheClientsKey) {
  const std::string alice = submit("a", 1, "k", kImg, "ALICEKEY");
  const std::string mallory = submit("m", 1, "k", kImg, "MALLORYKEY");
  EXPECT_NE(alice, mallory) << "the same key of another owner is another job";
  hello("g", 2);
  done("g", alice, "ALICE'S");
  request<proto::Fetch>("m", alice, 5, "MALLORYKEY");
  EXPECT_EQ(last_error().code_name, "not_found");
  request<proto::StatusRequest>("m", alice, 6, "MALLORYKEY");
  EXPECT_EQ(last_error().code_name, "not_found");
  request<proto::Cancel>("m", mallory, 7, "ALICEKEY");
  EXPECT_EQ(last_error().code_name, "not_found");
  request<proto::ResultAck>("m", alice, 8, "MALLORYKEY");
  request<proto::Fetch>("a", alice, 9, "ALICEKEY");
  ASSERT_EQ(out_->clients.back().type, "result") << "mallory's ack did not remove it";
  EXPECT_EQ(out_->clients.back().frames[1], "ALICE'S");
}

TEST_F(JournalTest, ResultsNobodyAcknowledgedBoundNewWork) {
  const std::string job = submit("c", 1, {}, kImg);
  hello("g");
  done("g", job, std::string(1'000'001, 'r'));
  EXPECT_EQ(submit("c", 2), "");
  EXPECT_EQ(last_error().code_name, "resource_exhausted");
  EXPECT_NE(last_error().message.find("--max-kept-bytes"), std::string::npos);
  request<proto::ResultAck>("c", job);
  EXPECT_NE(submit("c", 3), "");
}

TEST_F(JournalTest, RecoveryKeepsIdsOrderAttemptsAndResults) {
  const std::string first = submit("c1", 1);
  const std::string big = submit("c1", 2, {}, png_bytes(300'000));  // in a payload file
  const std::string other = submit("c2", 1);
  const std::string urgent = [&] {
    auto s = submit_message(3);
    s.priority = 9;
    send("c2", {proto::encode(s), kImg});
    now_ += BrokerConfig{}.commit.gap;
    core_->commit();
    return decode<proto::Accepted>(out_->clients.back().frames[0]).job;
  }();
  hello("g");  // takes `urgent`, the highest priority
  ASSERT_EQ(job_sent_to("g"), urgent);
  settle();
  const RestoreSummary r = crash_and_restart();
  EXPECT_EQ(r.queued, 3u);
  EXPECT_EQ(r.requeued, 1u);
  EXPECT_EQ(core_->counters().retried, 1u);
  // The running one first (its attempt counted), then the lines in turn.
  hello("g2", 4);
  std::vector<std::string> order;
  for (const Sent& s : out_->workers) {
    if (s.type == "job") order.push_back(decode<proto::JobRequest>(s.frames[0]).job);
  }
  EXPECT_EQ(order, (std::vector<std::string>{urgent, first, other, big}));
  EXPECT_EQ(out_->workers.back().frames[1], png_bytes(300'000)) << "the image read back from its payload file";
  request<proto::StatusRequest>("c", urgent);
  EXPECT_EQ(decode<proto::StatusReply>(out_->clients.back().frames[0]).job.attempts, 2);

  // Killed again while it runs: past --max-attempts (2) it fails, saying why.
  settle();
  crash_and_restart();
  request<proto::Fetch>("c", urgent);
  const auto result = decode<proto::JobResult>(out_->clients.back().frames[0]);
  EXPECT_EQ(result.state, "failed");
  EXPECT_NE(result.message.find("gave up after 2 attempts"), std::string::npos) << result.message;
}

// Whether a job was running is stored, not guessed from its attempts: a job
// requeued when its group left, then caught by a crash, waits again as it
// did, its attempt not counted twice. The row keeps the format earlier
// brokers read: '' as the state of an unfinished job, `running` beside it.
TEST_F(JournalTest, AJobRequeuedBeforeACrashIsRestoredQueuedNotAsRunning) {
  const std::string requeued = submit("c", 1);
  const std::string waited = submit("c", 2);
  hello("g1");
  ASSERT_EQ(job_sent_to("g1"), requeued);
  core_->on_worker("g1", {proto::encode(proto::Bye{})});  // back in the queue, its attempt counted
  auto urgent_submit = submit_message(3);
  urgent_submit.priority = 9;
  send("c", {proto::encode(urgent_submit), kImg});
  now_ += BrokerConfig{}.commit.gap;
  core_->commit();
  const std::string urgent = decode<proto::Accepted>(out_->clients.back().frames[0]).job;
  hello("g2");
  ASSERT_EQ(job_sent_to("g2"), urgent);  // running when the broker dies
  settle();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "journal.db").c_str(), &db), SQLITE_OK);
    sqlite3_stmt* row = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT id, state, running, attempts FROM jobs ORDER BY seq", -1, &row, nullptr),
              SQLITE_OK);
    std::vector<std::string> rows;
    while (sqlite3_step(row) == SQLITE_ROW) {
      rows.push_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(row, 0))) + " '" +
                     reinterpret_cast<const char*>(sqlite3_column_text(row, 1)) + "' " +
                     std::to_string(sqlite3_column_int(row, 2)) + " " + std::to_string(sqlite3_column_int(row, 3)));
    }
    sqlite3_finalize(row);
    sqlite3_close(db);
    EXPECT_EQ(rows, (std::vector<std::string>{requeued + " '' 0 1", waited + " '' 0 0", urgent + " '' 1 1"}));
  }
  const RestoreSummary r = crash_and_restart();
  EXPECT_EQ(r.requeued, 1u) << "only the job that ran is said to have been running";
  EXPECT_EQ(r.queued, 2u);
  request<proto::StatusRequest>("c", requeued);
  const auto status = decode<proto::StatusReply>(out_->clients.back().frames[0]).job;
  EXPECT_EQ(status.state, "queued");
  EXPECT_EQ(status.attempts, 1) << "a job that waited counted as one that ran";
}

// No broker writes an unfinished state's name in `state`; one found there is
// read as it says, never a reason to leave an accepted job out.
TEST_F(JournalTest, AnUnfinishedStateNamedInTheRowIsReadNotLeftOut) {
  const std::string job = submit("c", 1);
  core_.reset();
  journal_.reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ / "journal.db").c_str(), &db), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, "UPDATE jobs SET state = 'queued', running = NULL", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  const RestoreSummary r = start();
  EXPECT_TRUE(problems_.empty()) << problems_.front();
  EXPECT_EQ(r.queued, 1u);
  request<proto::StatusRequest>("c", job);
  EXPECT_EQ(decode<proto::StatusReply>(out_->clients.back().frames[0]).job.state, "queued");
}

TEST_F(JournalTest, ADamagedPayloadFailsItsJobAloneWithTheReason) {
  const std::string damaged = submit("c", 1, {}, png_bytes(300'000));
  const std::string fine = submit("c", 2);
  crash_and_restart();
  fs::resize_file(dir_ / "payloads" / (damaged + ".image"), 1000);
  hello("g", 4);
  EXPECT_EQ(job_sent_to("g"), fine);
  request<proto::Fetch>("c", damaged);
  const auto result = decode<proto::JobResult>(out_->clients.back().frames[0]);
  EXPECT_EQ(result.state, "failed");
  EXPECT_NE(result.message.find("is damaged (1000 of 300000 bytes, in " + (dir_ / "payloads").string()), std::string::npos)
      << result.message;
}

// Damage that keeps a stored payload's size (a disk, a file system, a
// person writing over it): the checksum taken when the bytes arrived finds
// it. A damaged image fails its job; a damaged result is never delivered;
// both are counted. In a payload file and inline in the database alike.
void flip_byte(const fs::path& file, size_t at) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at));
  const char c = static_cast<char>(f.get() ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(at));
  f.put(c);
}

// The same through SQLite, in a row's blob (`column`: image or result).
void flip_byte_in_row(const fs::path& db_path, const std::string& column, const std::string& id) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* read = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, ("SELECT " + column + " FROM jobs WHERE id = ?").c_str(), -1, &read, nullptr),
            SQLITE_OK);
  sqlite3_bind_text(read, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(read), SQLITE_ROW);
  std::string blob(static_cast<const char*>(sqlite3_column_blob(read, 0)),
                   static_cast<size_t>(sqlite3_column_bytes(read, 0)));
  sqlite3_finalize(read);
  ASSERT_FALSE(blob.empty()) << column << " of " << id << " is not inline";
  blob[blob.size() / 2] = static_cast<char>(blob[blob.size() / 2] ^ 0x5a);
  sqlite3_stmt* write = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, ("UPDATE jobs SET " + column + " = ? WHERE id = ?").c_str(), -1, &write, nullptr),
            SQLITE_OK);
  sqlite3_bind_blob(write, 1, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(write, 2, id.c_str(), -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(write), SQLITE_DONE);
  sqlite3_finalize(write);
  sqlite3_close(db);
}

TEST_F(JournalTest, AnImageDamagedAtItsOwnSizeFailsItsJobAndIsCounted) {
  const std::string in_file = submit("c", 1, {}, png_bytes(300'000));
  const std::string in_row = submit("c", 2, {}, png_bytes(2'000));
  const std::string fine = submit("c", 3);
  crash_and_restart();
  flip_byte(dir_ / "payloads" / (in_file + ".image"), 150'000);
  ASSERT_NO_FATAL_FAILURE(flip_byte_in_row(dir_ / "journal.db", "image", in_row));
  hello("g", 4);
  EXPECT_EQ(job_sent_to("g"), fine) << "only the intact image reaches a group";
  for (const std::string& job : {in_file, in_row}) {
    request<proto::Fetch>("c", job);
    const auto result = decode<proto::JobResult>(out_->clients.back().frames[0]);
    EXPECT_EQ(result.state, "failed") << job;
    EXPECT_EQ(result.code, static_cast<int>(StatusCode::kIoError));
    EXPECT_NE(result.message.find("image of job " + job + " is damaged (checksum"), std::string::npos)
        << result.message;
  }
  EXPECT_NE(decode<proto::JobResult>(out_->clients.back().frames[0]).message.find("journal.db"), std::string::npos);
  EXPECT_EQ(core_->counters().damaged_images, 2u);
}

TEST_F(JournalTest, AResultDamagedAtItsOwnSizeIsNeverDeliveredAndIsCounted) {
  const std::string big = submit("c", 1);
  const std::string small = submit("c", 2);
  const std::string fine = submit("c", 3);
  hello("g", 3);
  const std::string big_result = png_bytes(300'000);
  done("g", big, big_result);
  done("g", small, "RESULT");
  done("g", fine, "INTACT");
  // The result carries the checksum taken when it arrived.
  const auto sent = decode<proto::JobResult>(out_->clients.back().frames[0]);
  ASSERT_TRUE(sent.crc32.has_value());
  EXPECT_EQ(*sent.crc32, crc32_of(std::string_view("INTACT")));
  settle();
  crash_and_restart();
  flip_byte(dir_ / "payloads" / (big + ".result"), 1000);
  ASSERT_NO_FATAL_FAILURE(flip_byte_in_row(dir_ / "journal.db", "result", small));
  for (const std::string& job : {big, small}) {
    request<proto::Fetch>("other", job);
    ASSERT_EQ(out_->clients.back().type, "error") << job;
    EXPECT_EQ(last_error().code_name, "io_error");
    EXPECT_NE(last_error().message.find("result of job " + job + " is damaged (checksum"), std::string::npos)
        << last_error().message;
  }
  EXPECT_EQ(core_->counters().damaged_results, 2u);
  // The intact one is delivered with its checksum, read back from disk.
  request<proto::Fetch>("other", fine);
  ASSERT_EQ(out_->clients.back().type, "result");
  EXPECT_EQ(out_->clients.back().frames[1], "INTACT");
  EXPECT_EQ(decode<proto::JobResult>(out_->clients.back().frames[0]).crc32, crc32_of(std::string_view("INTACT")));
}

TEST_F(JournalTest, ATornLogTailIsDroppedAndTheRestRecovered) {
  for (uint64_t req = 1; req <= 3; ++req) ASSERT_NE(submit("c", req), "");
  const fs::path wal = dir_ / "journal.db-wal";
  const uint64_t before = fs::file_size(wal);
  // The mark as it was before the torn commit (it is written after a sync,
  // and the torn commit was never synced).
  const std::string mark = *read_file_string(dir_ / "journal.mark");
  ASSERT_NE(submit("c", 4), "");
  ASSERT_GT(fs::file_size(wal), before);
  // What a crash in the middle of writing the last commit leaves: the files
  // as they are while the broker runs (a clean close would checkpoint the
  // log), with the log cut inside the last commit's frames.
  const fs::path crashed = dir_.string() + "_crashed";
  fs::remove_all(crashed);
  fs::create_directories(crashed);
  for (const char* f : {"journal.db", "journal.db-wal"}) fs::copy_file(dir_ / f, crashed / f);
  std::ofstream(crashed / "journal.mark", std::ios::binary) << mark;
  fs::resize_file(crashed / "journal.db-wal", fs::file_size(wal) - 10);
  std::ofstream(crashed / "journal.db-wal", std::ios::app) << "garbage that is no WAL frame";
  core_.reset();
  journal_.reset();
  fs::remove_all(dir_);
  fs::rename(crashed, dir_);
  const RestoreSummary r = start();
  EXPECT_EQ(r.queued, 3u) << "the three committed before the torn one";
  EXPECT_TRUE(problems_.empty()) << "a commit never synced is no loss: " << problems_.front();
  EXPECT_NE(submit("c", 5), "");
}

// The log cut after its commits were synced (kill -9, then a disk or a
// person truncating journal.db-wal): SQLite restores what is left without
// a word, but journal.mark, written after each sync outside the log, says
// how much is gone. The lost job's image file is no orphan to delete: it is
// quarantined. The next start is clean again (the loss is said once).
TEST_F(JournalTest, ALogThatLostSyncedCommitsIsReportedWithTheirCountAndTheirFilesKept) {
  ASSERT_NE(submit("c", 1), "");
  // What a crash leaves after the first commit (the files as they are while
  // the broker runs: a clean close would checkpoint the log).
  const fs::path crashed = dir_.string() + "_crashed";
  fs::remove_all(crashed);
  fs::create_directories(crashed);
  for (const char* f : {"journal.db", "journal.db-wal"}) fs::copy_file(dir_ / f, crashed / f);
  const std::string lost_big = submit("c", 2, {}, png_bytes(SqliteJournal::kInlineBytes + 4096));
  ASSERT_NE(lost_big, "");
  ASSERT_NE(submit("c", 3), "");
  ASSERT_TRUE(fs::exists(dir_ / "payloads" / (lost_big + ".image")));
  // ...with the log cut back to it, two synced commits later: the mark and
  // the payload files are those of now.
  fs::copy(dir_ / "payloads", crashed / "payloads");
  fs::copy_file(dir_ / "journal.mark", crashed / "journal.mark");
  core_.reset();
  journal_.reset();
  fs::remove_all(dir_);
  fs::rename(crashed, dir_);
  const RestoreSummary r = start();
  EXPECT_EQ(r.queued, 1u);
  ASSERT_FALSE(problems_.empty());
  bool said = false;
  for (const std::string& p : problems_) said = said || p.find("lost its last 2 commit(s)") != std::string::npos;
  EXPECT_TRUE(said) << ::testing::PrintToString(problems_);
  EXPECT_FALSE(fs::exists(dir_ / "payloads" / (lost_big + ".image")));
  bool kept = false;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    kept = kept || (entry.path().filename().string().rfind("quarantine-", 0) == 0 &&
                    fs::exists(entry.path() / (lost_big + ".image")));
  }
  EXPECT_TRUE(kept) << "the lost job's image was removed, not quarantined";
  crash_and_restart();
  EXPECT_TRUE(problems_.empty()) << ::testing::PrintToString(problems_);
}

TEST_F(JournalTest, AnUnreadableDatabaseIsMovedAsideAndTheBrokerStarts) {
  ASSERT_NE(submit("c", 1), "");
  core_.reset();
  journal_.reset();
  for (const char* f : {"journal.db-wal", "journal.db-shm"}) fs::remove(dir_ / f);
  std::ofstream(dir_ / "journal.db", std::ios::binary | std::ios::trunc) << std::string(8192, '\x42');
  const RestoreSummary r = start();
  EXPECT_EQ(r.queued, 0u);
  ASSERT_EQ(problems_.size(), 1u);
  EXPECT_NE(problems_[0].find("moved it, its log and its payload files to "), std::string::npos) << problems_[0];
  EXPECT_NE(problems_[0].find("--salvage"), std::string::npos) << problems_[0];
  EXPECT_NE(submit("c", 2), "") << "the new journal works";
}

// The first 100 bytes of journal.db overwritten: the broker cannot open
// it, so it moves it aside with its log, mark and payload files (none is
// deleted) and starts empty; --salvage then rebuilds the header, takes
// back the waiting jobs and the kept result, and names the one job whose
// image no longer matches its checksum.
TEST_F(JournalTest, ADamagedHeaderMovesTheJournalAsideWholeAndSalvageTakesBackWhatVerifies) {
  hello("g");
  const std::string done_job = submit("c", 1);
  ASSERT_EQ(job_sent_to("g"), done_job);
  done("g", done_job, "THE RESULT");
  settle();
  const std::string tiny = submit("c", 2);
  const std::string big = submit("c", 3, {}, png_bytes(SqliteJournal::kInlineBytes + 4096));
  const std::string damaged = submit("c", 4, {}, png_bytes(SqliteJournal::kInlineBytes + 8192));
  ASSERT_FALSE(tiny.empty() || big.empty() || damaged.empty());
  core_.reset();
  journal_.reset();
  {
    std::fstream db(dir_ / "journal.db", std::ios::in | std::ios::out | std::ios::binary);
    db.write(std::string(100, '\x5a').data(), 100);
  }
  RestoreSummary r = start();
  EXPECT_EQ(r.queued + r.results, 0u);
  ASSERT_EQ(problems_.size(), 1u);
  fs::path aside;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    if (entry.path().filename().string().rfind("damaged-", 0) == 0) aside = entry.path();
  }
  ASSERT_FALSE(aside.empty());
  EXPECT_TRUE(fs::exists(aside / "journal.db"));
  EXPECT_TRUE(fs::exists(aside / "payloads" / (big + ".image"))) << "a payload file was deleted";
  {
    std::fstream file(aside / "payloads" / (damaged + ".image"), std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(200);
    file.put('!');
  }
  const uintmax_t aside_size = fs::file_size(aside / "journal.db");

  core_.reset();
  auto report = salvage(aside, *journal_, {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  std::cout << report->text(aside, dir_);
  EXPECT_TRUE(report->header_repaired);
  EXPECT_EQ(report->queued, 2u);
  EXPECT_EQ(report->results, 1u);
  ASSERT_EQ(report->lost.size(), 1u);
  EXPECT_EQ(report->lost[0], damaged + ": its image does not match its checksum");
  EXPECT_EQ(report->unreadable, 0u);
  EXPECT_EQ(fs::file_size(aside / "journal.db"), aside_size) << "the salvage wrote to its source";

  r = crash_and_restart();
  EXPECT_EQ(r.queued, 2u);
  EXPECT_EQ(r.results, 1u);
  request<proto::Fetch>("c", done_job);
  ASSERT_EQ(out_->clients.back().type, "result");
  EXPECT_EQ(out_->clients.back().frames[1].view(), "THE RESULT");
  hello("g");
  EXPECT_EQ(job_sent_to("g"), tiny);
  done("g", tiny);
  EXPECT_EQ(job_sent_to("g"), big);
}

TEST_F(JournalTest, ASecondBrokerOnTheSameDataDirIsRefused) {
  Recovered recovered;
  auto second = SqliteJournal::open(dir_, &recovered);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("is in use by another imgq-broker"), std::string::npos)
      << second.status().message();
}

}  // namespace
}  // namespace imgq::broker
