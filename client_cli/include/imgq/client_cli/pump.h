// The engine under `imgq submit` and `imgq ingest`: pulls items from a
// source, keeps at most `window` of them in flight at the broker, hands each
// result back to the source to put in place, acknowledges it, and reports.
// Only the items in flight (and those waiting out a back-off) are held, so
// a source of 100,000 files runs in memory for the window alone; files are
// read when sent.
#pragma once

#include <csignal>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "imgq/client_cli/client.h"
#include "imgq/client_cli/reporter.h"
#include "imgq/common/status.h"

namespace imgq::client {

struct Item {
  std::filesystem::path source;  // the input file
  // Where the result is written first: sent as `output` with --local, else
  // where place() writes by default. With `shown` set, a staging name whose
  // file sync() then moves to `shown` (never replacing a different file).
  std::filesystem::path output;
  std::filesystem::path shown;   // where the result ends up (empty: `output`)
  std::string key;               // idempotency key
  Status problem;                // set: fails at once with this message, nothing sent
};

// Where items come from and what happens to their results.
class ItemSource {
 public:
  virtual ~ItemSource() = default;
  // The next item to submit, if one is ready now.
  virtual std::optional<Item> next() = 0;
  // No item will ever come again (a list read to its end; a folder never is).
  virtual bool exhausted() const = 0;
  // A descriptor the pump polls for readability (inotify, a pipe), or -1;
  // `on_readable` is called when it is readable, `tick` on every round.
  virtual int fd() const { return -1; }
  virtual void on_readable() {}
  virtual void tick() {}
  // For the progress line: how many items are known in all / waiting.
  virtual std::optional<size_t> total() const { return std::nullopt; }
  virtual std::optional<size_t> waiting() const { return std::nullopt; }
  // For the summary: results already there and not redone (--skip-existing),
  // and files passed over as no images.
  virtual size_t kept() const { return 0; }
  virtual size_t not_images() const { return 0; }
  virtual size_t result_folders() const { return 0; }

  // A finished job's result image (`bytes`; for a local-files job, empty and
  // the group wrote `item.output`, synced): put it where it belongs. An
  // error fails the item and leaves the result unacknowledged at the broker.
  // By default it writes `item.output` (temporary file and rename) and
  // leaves syncing to sync(), which moves a staged result to `item.shown`.
  virtual Status place(Item& item, std::string_view bytes);
  // Makes the results placed since the last call durable and final, all in
  // one go (a group commit: by default one syncfs per file system written,
  // not one fsync per file); one status per item, in order. `shown` may be
  // changed to the name a result got. The pump calls it at most every
  // 50 ms, before it reports the items done and settles them.
  virtual std::vector<Status> sync(const std::vector<Item*>& placed);
  // Makes what settle() did since the last call durable; the pump
  // acknowledges the results after it.
  virtual Status commit() { return Status::Ok(); }

  // What became of an item: its result placed, the job (or the submit)
  // failed, or its result could not be placed (left at the broker).
  enum class Fate { kDone, kFailed, kNotPlaced };
  // After the item's end: what becomes of the input. Its result is
  // acknowledged after the next commit(). `message` says why for kFailed
  // and kNotPlaced.
  virtual void settle(const Item& /*item*/, Fate /*fate*/, const std::string& /*message*/) {}
  // The broker refused the item's key as used (acknowledged or expired
  // before: `not_found`) or as naming other work (`conflict`). A new key to
  // submit under, or nullopt to fail the item with the broker's message.
  virtual std::optional<std::string> rekey(const Item& /*item*/) { return std::nullopt; }

 protected:
  bool replace_results_ = false;  // sync() replaces a file at `shown` (--overwrite)

 private:
  std::set<std::filesystem::path> unsynced_;  // folders written by place() since sync()
};

// Where a result for `wanted` is written first: a hidden name beside it,
// .STEM.imgq-partPID.EXT (is_partial_result(); never taken as an input).
std::filesystem::path staging_name(const std::filesystem::path& wanted);

struct PumpOptions {
  std::string broker = kDefaultBroker;
  std::string progress;  // empty: default_progress_endpoint(broker)
  std::vector<std::string> ops;  // normalised specs
  std::string format;            // empty: each output's extension
  int priority = 4;
  size_t window = 16;
  bool no_wait = false;          // done with an item once it is accepted
  bool local = false;            // send paths, not bytes
  uint32_t job_timeout_ms = 0;
  Millis timeout{60'000};        // longest the broker may stay silent
  // The first answer: a broker that does not answer within this long is
  // reported (exit 3; with wait_for_broker, a warning and waiting on).
  Millis first_contact = kFirstContact;
  // While the broker is silent: false gives up after `timeout` (exit 3);
  // true (a long-running ingest) keeps waiting and saying so.
  bool wait_for_broker = false;
  // Set by a signal handler: stop taking items at once.
  const volatile std::sig_atomic_t* interrupted = nullptr;
  // Interrupted: true waits for the jobs in flight to end before returning
  // (an ingest finishing its window); false cancels this run's unfinished
  // jobs at the broker (a second signal leaves at once), unless `detach`,
  // which leaves them running and lists them.
  bool drain_on_interrupt = false;
  bool detach = false;
  CurveOptions curve;
  ReportMode mode = ReportMode::kPlain;
  bool color = false;              // warnings and errors in colour
  std::string command = "imgq";    // how messages start
  // The session's 8 hex digits (job ids start with it); empty: random.
  std::string session;
};

// 0 all succeeded, 1 some failed, 3 the broker could not be reached (or was
// silent for `timeout`, or refused our key), 130 interrupted (0 when an
// interrupted pump drained its window). On 3, and on 130 with `detach` or
// `no_wait`, the accepted, unfinished jobs are listed ("submitted FILE as
// job ID"); on 130 otherwise they were cancelled.
int run_pump(const PumpOptions& options, ItemSource& source, Reporter& reporter, std::ostream& out,
             std::ostream& err);

// Checks what every job of a run asks for before anything is sent: the ops
// as normalised specs, or InvalidArgument naming the op, format or priority
// that is wrong (a usage error, exit 2).
Result<std::vector<std::string>> check_request(const std::vector<std::string>& ops, const std::string& format,
                                               int priority);

// `file` absolute, with the links of its existing part resolved (its lexical
// form when that fails): how local-files jobs name files.
std::string local_path(const std::filesystem::path& file);

// 8 random lower-case hex digits.
std::string random_session();

}  // namespace imgq::client
