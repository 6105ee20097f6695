#include "imgq/client_cli/ingest.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "imgq/client_cli/pump.h"
#include "imgq/common/batch_paths.h"
#include "imgq/common/file_io.h"
#include "imgq/schemas/op_call.h"

namespace imgq::client {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// Items held ready beyond the window; past this the inbox itself is the
// queue (events are dropped and a walk finds the files later).
constexpr size_t kReadyCap = 1024;
// Entries a walk looks at per round, so results keep flowing during a walk
// of a large inbox.
constexpr size_t kWalkBudget = 2048;
// The staging folder under --out.
constexpr const char* kStaging = ".imgq-staging";

// 64-bit FNV-1a: stable across builds and versions, unlike std::hash, as a
// key must be for a restarted ingest to name the same job.
uint64_t fnv1a(std::string_view text, uint64_t hash = 1469598103934665603ull) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

bool hidden(const fs::path& name) {
  const std::string s = name.filename().string();
  return !s.empty() && s[0] == '.';
}

// True when some process has `file` open for writing: a read lease is
// refused (EAGAIN) exactly then. Where leases are not to be had (not the
// file's owner, a network file system) the file is taken as complete.
bool open_for_writing(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return errno == EWOULDBLOCK;  // a write lease is held on it
  const int rc = ::fcntl(fd, F_SETLEASE, F_RDLCK);
  const bool busy = rc != 0 && errno == EAGAIN;
  if (rc == 0) ::fcntl(fd, F_SETLEASE, F_UNLCK);
  ::close(fd);
  return busy;
}

class InboxSource : public ItemSource {
 public:
  InboxSource(const IngestOptions& options, fs::path inbox, fs::path out, fs::path done, fs::path failed,
              std::string request, std::ostream& err)
      : options_(options), inbox_(std::move(inbox)), out_(std::move(out)), done_(std::move(done)),
        failed_(std::move(failed)), request_(std::move(request)), err_(err),
        edges_(makes_edge_map(options.ops)) {}
  ~InboxSource() override {
    if (inotify_ >= 0) ::close(inotify_);
  }

  Status open() {
    inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_ < 0) return Status::IoError(std::string("cannot start inotify: ") + std::strerror(errno));
    watch(inbox_);
    if (watches_.empty()) return Status::IoError("cannot watch " + inbox_.string());
    clean_staging();
    rescan_ = true;
    return Status::Ok();
  }

  std::optional<Item> next() override {
    if (ready_.empty()) advance_walk();
    while (!ready_.empty()) {
      const std::string rel = std::move(ready_.front());
      ready_.pop_front();
      const fs::path path = inbox_ / rel;
      struct stat st{};
      if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || open_for_writing(path)) {
        // Gone, or still being written: its close (an inotify event) or a
        // walk brings it back.
        known_.erase(rel);
        continue;
      }
      ++taken_;
      Item item;
      item.source = path;
      item.shown = out_ / rel;
      item.shown.replace_extension("." + output_extension(rel, options_.format, edges_));
      // The file's identity in this inbox: its place, size, times and inode
      // (a file moved back in from done/ is a new drop: its ctime changed),
      // and what is asked of it.
      const std::string identity = inbox_.string() + '\0' + rel + '\0' + std::to_string(st.st_size) + '\0' +
                                   std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) +
                                   '\0' + std::to_string(st.st_ctim.tv_sec) + "." +
                                   std::to_string(st.st_ctim.tv_nsec) + '\0' + std::to_string(st.st_ino) + '\0' +
                                   request_;
      const std::string hash = hex64(fnv1a(identity)) + hex64(fnv1a(identity, 0x84222325cbf29ce4ull));
      item.key = "ingest:" + hash;
      // A local-files job writes a file named after its key into the
      // staging folder, which place() then puts in place.
      item.output = options_.local ? staging() / ("local-" + hash + item.shown.extension().string()) : item.shown;
      return item;
    }
    return std::nullopt;
  }

  // Results are written here first, then moved into place: a hidden folder
  // in --out (the same file system, so the move is a rename).
  fs::path staging() const { return out_ / kStaging; }

  // Removes what writers that died (a kill -9 mid-write) left in the staging
  // folder: files of processes that no longer run.
  void clean_staging() {
    std::error_code ec;
    fs::create_directories(staging(), ec);
    for (auto it = fs::directory_iterator(staging(), ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      const size_t at = name.find(".imgq-part");
      if (at == std::string::npos) continue;
      const long pid = std::strtol(name.c_str() + at + 10, nullptr, 10);
      if (pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove(it->path(), ec);
    }
  }

  bool exhausted() const override { return false; }
  int fd() const override { return inotify_; }

  void on_readable() override {
    alignas(inotify_event) char buffer[64 * 1024];
    while (true) {
      const ssize_t n = ::read(inotify_, buffer, sizeof buffer);
      if (n <= 0) return;
      for (ssize_t at = 0; at < n;) {
        const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
        at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        on_event(*event);
      }
    }
  }

  void tick() override {
    const auto now = SteadyClock::now();
    if (options_.rescan_seconds > 0 && !walk_ &&
        now - last_walk_ > std::chrono::duration<double>(options_.rescan_seconds)) {
      rescan_ = true;
    }
    if (ready_.size() < kReadyCap / 2) advance_walk();
  }

  std::optional<size_t> waiting() const override {
    const int64_t estimate = static_cast<int64_t>(counted_) - static_cast<int64_t>(taken_) + arrived_;
    return static_cast<size_t>(std::max<int64_t>(estimate, static_cast<int64_t>(ready_.size())));
  }

  // The result goes to the staging folder first (unsynced); sync() makes a
  // batch of them durable with one syncfs, and only then renames each into
  // place, so a file under its final name is always whole.
  Status place(Item& item, std::string_view bytes) override {
    if (options_.local) return Status::Ok();  // the group wrote item.output, synced
    return write_file(staged(item), {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
  }

  std::vector<Status> sync(const std::vector<Item*>& placed) override {
    std::vector<Status> statuses(placed.size());
    if (placed.empty()) return statuses;
    if (Status synced = sync_file_system(out_); !synced.ok()) {
      std::fill(statuses.begin(), statuses.end(), synced);
      return statuses;
    }
    for (size_t i = 0; i < placed.size(); ++i) statuses[i] = put_in_place(*placed[i]);
    dirty_ = true;
    return statuses;
  }

  Status commit() override {
    if (!dirty_) return Status::Ok();
    dirty_ = false;
    // The renames into --out and out of the inbox: one syncfs per file system.
    std::set<dev_t> synced;
    for (const fs::path& dir : {out_, inbox_, done_, failed_}) {
      struct stat st{};
      if (dir.empty() || (::stat(dir.c_str(), &st) == 0 && !synced.insert(st.st_dev).second)) continue;
      if (Status s = sync_file_system(dir); !s.ok()) return s;
    }
    return Status::Ok();
  }

  void settle(const Item& item, Fate fate, const std::string& message) override {
    const std::string rel = item.source.lexically_relative(inbox_).string();
    if (fate == Fate::kNotPlaced) {
      stuck(rel, "its result could not be written");
      return;
    }
    Status moved;
    std::string where;
    if (fate == Fate::kDone && options_.delete_done) {
      std::error_code ec;
      if (!fs::remove(item.source, ec) && ec) moved = Status::IoError("cannot delete it: " + ec.message());
    } else if (fate == Fate::kDone) {
      where = done_.string();
      moved = place_unique(done_ / rel, [&](const fs::path& name) { return move_no_replace(item.source, name); })
                  .status();
    } else {
      where = failed_.string();
      const std::string text = error_line(item.source.string(), message) + "\n";
      moved = place_unique(failed_ / rel, [&](const fs::path& name) -> Status {
                std::error_code e;
                if (fs::exists(name, e)) return Status(StatusCode::kConflict, name.string() + " exists");
                fs::path note = name;
                note += ".error.txt";
                Status noted = write_file(note, bytes_of(text));
                if (!noted.ok()) return noted;
                return move_no_replace(item.source, name);
              }).status();
    }
    if (moved.code() == StatusCode::kNotFound) {
      known_.erase(rel);  // taken away meanwhile by someone else
      return;
    }
    if (!moved.ok()) return stuck(rel, (where.empty() ? "" : "cannot move it to " + where + ": ") + moved.message());
    known_.erase(rel);
    dirty_ = true;  // commit() makes it durable before the result is acknowledged
  }

  std::optional<std::string> rekey(const Item& item) override {
    // The key names a job that ended before (this very file moved back in
    // with the same times) or other work: a new key, deterministically, so
    // a restart finds the same one.
    const size_t dot = item.key.find('.');
    const int n = dot == std::string::npos ? 0 : std::stoi(item.key.substr(dot + 1));
    if (n >= 20) return std::nullopt;
    return item.key.substr(0, dot) + "." + std::to_string(n + 1);
  }

 private:
  // Where an item's result is staged: named after its key, so a restarted
  // ingest (and a local-files group) finds it under the same name.
  fs::path staged(const Item& item) const {
    const std::string id = item.key.substr(item.key.find(':') + 1);
    return options_.local ? item.output : staging() / (id + ".imgq-part" + std::to_string(::getpid()));
  }

  // Renames a staged result to its name under --out, never replacing a
  // different file; the same bytes already there (placed before a crash)
  // count as placed.
  Status put_in_place(Item& item) {
    const fs::path from = staged(item);
    std::error_code ec;
    if (options_.local && !fs::exists(from, ec)) return Status::Ok();  // placed before a restart
    auto placed = place_file(from, item.shown);
    if (!placed.ok()) return placed.status();
    item.shown = *placed;
    return Status::Ok();
  }

  void stuck(const std::string& rel, const std::string& why) {
    // Left in the inbox and not taken again by this run (the next start retries it).
    stuck_.insert(rel);
    err_ << (inbox_ / rel).string() << ": error: " << why << "; left in the inbox until imgq ingest restarts\n";
  }

  void watch(const fs::path& dir) {
    const int wd = ::inotify_add_watch(inotify_, dir.c_str(),
                                       IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF |
                                           IN_ONLYDIR | IN_EXCL_UNLINK);
    if (wd < 0) {
      if (!told_watch_failure_) {
        told_watch_failure_ = true;
        err_ << "imgq: warning: cannot watch " << dir.string() << ": " << std::strerror(errno)
             << (errno == ENOSPC ? " (raise fs.inotify.max_user_watches)" : "")
             << "; files there are found by the walk every " << options_.rescan_seconds << " s\n";
      }
      return;
    }
    watches_[wd] = dir.lexically_relative(inbox_).string();
  }

  void on_event(const inotify_event& event) {
    if (event.mask & IN_Q_OVERFLOW) {
      rescan_ = true;
      return;
    }
    auto dir = watches_.find(event.wd);
    if (dir == watches_.end()) return;
    if (event.mask & IN_IGNORED) {
      watches_.erase(dir);
      return;
    }
    if ((event.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) && dir->second == ".") {
      err_ << "imgq: error: the inbox " << inbox_.string() << " was removed or moved away; nothing more comes in\n";
      return;
    }
    if (event.len == 0) return;
    const fs::path rel = fs::path(dir->second) / event.name;
    if (event.mask & IN_ISDIR) {
      // A new folder: a walk watches it and takes what was written into it
      // before the watch was set.
      if ((event.mask & (IN_CREATE | IN_MOVED_TO)) && !hidden(rel)) rescan_ = true;
      return;
    }
    if (event.mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) offer(rel.lexically_normal(), /*from_event=*/true);
  }

  bool wanted(const fs::path& rel) {
    if (hidden(rel)) return false;  // rsync's and others' partial files
    if (is_image_extension(extension_of(rel))) return true;
    if (told_ignored_.size() < 100 && told_ignored_.insert(rel.string()).second) {
      err_ << "imgq: ignoring " << (inbox_ / rel).string() << " (not an image file name)\n";
    }
    return false;
  }

  void offer(const fs::path& rel, bool from_event) {
    if (!wanted(rel)) return;
    const std::string key = rel.string();
    if (known_.count(key) != 0 || stuck_.count(key) != 0) return;
    if (ready_.size() >= kReadyCap) {
      rescan_ = true;  // the inbox holds it; a walk finds it
      return;
    }
    ready_.push_back(key);
    known_.insert(key);
    if (from_event) ++arrived_;
  }

  void start_walk() {
    rescan_ = false;
    last_walk_ = SteadyClock::now();
    std::error_code ec;
    // A quick count first, for the progress line's "waiting".
    size_t count = 0;
    for (auto it = fs::recursive_directory_iterator(inbox_, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (hidden(it->path())) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_directory(ec) && is_image_extension(extension_of(it->path()))) ++count;
    }
    counted_ = count >= stuck_.size() ? count - stuck_.size() : 0;
    taken_ = 0;
    arrived_ = 0;
    walk_.emplace(inbox_, fs::directory_options::skip_permission_denied, ec);
    if (ec) {
      err_ << "imgq: error: cannot list " << inbox_.string() << ": " << ec.message() << "\n";
      walk_.reset();
    }
  }

  void advance_walk() {
    if (!walk_ && rescan_) start_walk();
    std::error_code ec;
    for (size_t budget = kWalkBudget; walk_ && budget > 0 && ready_.size() < kReadyCap; --budget) {
      if (*walk_ == fs::recursive_directory_iterator()) {
        walk_.reset();
        break;
      }
      const fs::directory_entry& entry = **walk_;
      if (hidden(entry.path())) {
        if (entry.is_directory(ec)) walk_->disable_recursion_pending();
      } else if (entry.is_directory(ec)) {
        watch(entry.path());  // before its entries are read
      } else if (entry.is_regular_file(ec)) {
        offer(entry.path().lexically_relative(inbox_), /*from_event=*/false);
      }
      walk_->increment(ec);
      if (ec) {
        err_ << "imgq: warning: walking " << inbox_.string() << ": " << ec.message() << "\n";
        walk_.reset();
      }
    }
  }

  static bool makes_edge_map(const std::vector<std::string>& ops) {
    const auto pipeline = schemas::parse_pipeline(ops);  // valid: run_ingest checked it
    return pipeline.ok() && schemas::makes_edge_map(*pipeline);
  }

  const IngestOptions& options_;
  const fs::path inbox_, out_, done_, failed_;
  const std::string request_;  // ops and format, in the key
  std::ostream& err_;
  const bool edges_;  // the pipeline draws edges: a JPEG's result is a PNG (batch_paths.h)
  int inotify_ = -1;
  std::unordered_map<int, std::string> watches_;  // wd -> folder relative to the inbox
  std::deque<std::string> ready_;                 // relative paths, at most kReadyCap
  std::unordered_set<std::string> known_;         // ready or in flight
  std::unordered_set<std::string> stuck_;         // could not be moved out: not retaken by this run
  std::set<std::string> told_ignored_;
  std::optional<fs::recursive_directory_iterator> walk_;
  bool rescan_ = false;
  bool told_watch_failure_ = false;
  bool dirty_ = false;  // renames since the last commit()
  SteadyClock::time_point last_walk_{};
  size_t counted_ = 0, taken_ = 0;
  int64_t arrived_ = 0;
};

bool inside(const fs::path& path, const fs::path& folder) {
  const fs::path rel = path.lexically_relative(folder);
  return !rel.empty() && *rel.begin() != "..";
}

}  // namespace

int run_ingest(const IngestOptions& options, std::ostream& out, std::ostream& err) {
  if (options.ops.empty()) {
    err << "imgq ingest: error: no --op given: say what to do with the images, e.g. --op grayscale (imgq ops "
           "lists them), or --op identity to re-encode them as they are\n";
    return 2;
  }
  auto specs = check_request(options.ops, options.format, options.priority);
  if (!specs.ok()) {
    err << "imgq: error: " << specs.status().message() << "\n";
    return 2;
  }
  std::error_code ec;
  if (!fs::is_directory(options.inbox, ec)) {
    err << "imgq: error: the inbox " << options.inbox << " is not a folder\n";
    return 2;
  }
  const fs::path inbox = fs::canonical(options.inbox, ec);
  auto folder = [&](const std::string& given, const std::string& fallback, const char* what) -> std::optional<fs::path> {
    const fs::path dir = given.empty() ? fs::path(fallback) : fs::path(given);
    std::error_code e;
    fs::create_directories(dir, e);
    fs::path real = fs::weakly_canonical(dir, e);
    if (e) {
      err << "imgq: error: cannot use " << dir.string() << " as the " << what << " folder: " << e.message() << "\n";
      return std::nullopt;
    }
    if (real == inbox || inside(real, inbox)) {
      err << "imgq: error: the " << what << " folder " << dir.string()
          << " is inside the inbox (what is put there would be taken again)\n";
      return std::nullopt;
    }
    return real;
  };
  const auto out_dir = folder(options.out_dir, "", "--out");
  const auto done = options.delete_done ? std::optional<fs::path>(fs::path())
                                        : folder(options.done_dir, inbox.string() + ".done", "--done");
  const auto failed = folder(options.failed_dir, inbox.string() + ".failed", "--failed");
  if (!out_dir || !done || !failed) return 2;

  // One ingest per inbox: a second would take the same files.
  const fs::path lock_path = inbox / ".imgq-ingest.lock";
  const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    err << "imgq: error: " << (lock < 0 ? "cannot create " + lock_path.string() + ": " + std::strerror(errno)
                                         : "another imgq ingest is using " + inbox.string())
        << "\n";
    return 2;
  }
  // A lease broken by a writer signals SIGIO, which would end the process.
  std::signal(SIGIO, SIG_IGN);

  PumpOptions pump;
  pump.broker = options.broker;
  pump.progress = options.progress;
  pump.ops = *specs;
  pump.format = options.format;
  pump.priority = options.priority;
  pump.window = options.window;
  pump.local = options.local;
  pump.job_timeout_ms = options.job_timeout_ms;
  pump.timeout = options.timeout;
  pump.wait_for_broker = true;
  pump.interrupted = options.interrupted;
  pump.drain_on_interrupt = true;
  pump.curve = options.curve;
  pump.mode = options.mode;
  pump.color = options.style.color;
  pump.command = "imgq ingest";

  std::string request = options.format;
  for (const std::string& op : pump.ops) request += '\0' + op;
  InboxSource source(options, inbox, *out_dir, *done, *failed, request, err);
  if (Status opened = source.open(); !opened.ok()) {
    err << "imgq: error: " << opened.message() << "\n";
    return 2;
  }
  if (options.mode != ReportMode::kJson) {
    err << "imgq ingest: watching " << inbox.string() << "; results to " << out_dir->string() << ", originals "
        << (options.delete_done ? "deleted" : "to " + done->string()) << ", failures to " << failed->string()
        << "\n";
  }
  auto reporter = make_reporter(options.mode, out, err, "imgq ingest", options.style);
  const int status = run_pump(pump, source, *reporter, out, err);
  ::close(lock);
  return status;
}

}  // namespace imgq::client
