#include "imgq/client_cli/submit.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <unordered_set>

#include "imgq/client_cli/pump.h"
#include "imgq/common/batch_paths.h"

namespace imgq::client {
namespace {

namespace fs = std::filesystem;

// The items of the paths given on the command line (planned up front: the
// paths are in memory already).
class PathsSource : public ItemSource {
 public:
  PathsSource(std::vector<BatchItem> items, std::string session)
      : items_(std::move(items)), session_(std::move(session)) {}
  std::optional<Item> next() override {
    if (next_ == items_.size()) return std::nullopt;
    BatchItem& b = items_[next_];
    Item item{std::move(b.source), std::move(b.output), {}, session_ + ":" + std::to_string(next_), std::move(b.problem)};
    ++next_;
    return item;
  }
  bool exhausted() const override { return next_ == items_.size(); }
  std::optional<size_t> total() const override { return items_.size(); }

 private:
  std::vector<BatchItem> items_;
  std::string session_;
  size_t next_ = 0;
};

// The items of a list of paths, read from a descriptor without blocking, a
// line at a time as the window has room, so a list streamed from another
// program (`find ... |`) starts at once and is never held whole.
class ListSource : public ItemSource {
 public:
  ListSource(int fd, std::string name, char separator, fs::path out_dir, std::string format, std::string session,
             std::ostream& err)
      : fd_(fd), name_(std::move(name)), separator_(separator), out_dir_(std::move(out_dir)),
        format_(std::move(format)), session_(std::move(session)), err_(err) {
    std::error_code ec;
    cwd_ = fs::current_path(ec);
    // Non-blocking, so a list that comes slowly never stalls results; the
    // flags are put back at the end (stdin may be a terminal the shell shares).
    flags_ = ::fcntl(fd_, F_GETFL);
    ::fcntl(fd_, F_SETFL, flags_ | O_NONBLOCK);
  }
  ~ListSource() override {
    ::fcntl(fd_, F_SETFL, flags_);
    if (fd_ != STDIN_FILENO) ::close(fd_);
  }

  std::optional<Item> next() override {
    while (true) {
      const size_t end = buffer_.find(separator_, scanned_);
      if (end == std::string::npos) {
        scanned_ = buffer_.size();
        if (eof_) {
          if (buffer_.empty()) {
            if (folders_ != 0 && !told_folders_) {
              told_folders_ = true;
              err_ << "imgq: skipped " << folders_
                   << " folder(s) named in the list (it takes files: find DIR -type f)\n";
            }
            return std::nullopt;
          }
          end_of_input_line();  // the last line had no separator
          continue;
        }
        if (!fill()) return std::nullopt;
        continue;
      }
      std::string line = buffer_.substr(0, end);
      buffer_.erase(0, end + 1);
      scanned_ = 0;
      if (auto item = take(std::move(line))) return item;
    }
  }
  bool exhausted() const override { return eof_ && buffer_.empty(); }
  int fd() const override { return eof_ ? -1 : fd_; }
  void on_readable() override { fill(); }

 private:
  void end_of_input_line() { buffer_ += separator_; }

  // Reads what is there; false when nothing more is there now.
  bool fill() {
    char chunk[65536];
    const ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return false;
    if (n < 0) err_ << "imgq: error: cannot read the list " << name_ << ": " << std::strerror(errno) << "\n";
    eof_ = true;
    return true;
  }

  std::optional<Item> take(std::string line) {
    if (separator_ == '\n' && !line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) return std::nullopt;
    const fs::path source(line);
    std::error_code ec;
    Item item;
    item.source = source;
    item.key = session_ + ":" + std::to_string(count_++);
    if (fs::is_directory(source, ec)) {
      ++folders_;
      return std::nullopt;
    }
    if (!fs::exists(source, ec)) {
      item.problem = Status::NotFound("no such file");
      return item;
    }
    // Under the current folder: its relative path is kept; else its name.
    const fs::path relative = fs::absolute(source, ec).lexically_normal().lexically_relative(cwd_);
    const bool below = !relative.empty() && *relative.begin() != "..";
    item.output = out_dir_ / (below ? relative : source.filename());
    if (!format_.empty()) item.output.replace_extension("." + format_);
    // Two listed files must never write one output. Hashes, not names, are
    // kept: a list of millions stays small.
    if (!claimed_.insert(std::hash<std::string>{}(item.output.lexically_normal().string())).second) {
      item.problem = Status::InvalidArgument("its output " + item.output.string() +
                                             " would overwrite the result of a file listed earlier");
    }
    return item;
  }

  int fd_;
  int flags_ = 0;
  std::string name_;
  char separator_;
  fs::path out_dir_, cwd_;
  std::string format_, session_;
  std::ostream& err_;
  std::string buffer_;
  size_t scanned_ = 0;
  bool eof_ = false, told_folders_ = false;
  size_t count_ = 0, folders_ = 0;
  std::unordered_set<size_t> claimed_;
};

// Both sources, one after the other: the paths given, then the list.
class ChainSource : public ItemSource {
 public:
  ChainSource(std::unique_ptr<ItemSource> first, std::unique_ptr<ItemSource> second)
      : first_(std::move(first)), second_(std::move(second)) {}
  std::optional<Item> next() override {
    if (!first_->exhausted()) return first_->next();
    return second_->next();
  }
  bool exhausted() const override { return first_->exhausted() && second_->exhausted(); }
  int fd() const override { return first_->exhausted() ? second_->fd() : -1; }
  void on_readable() override { second_->on_readable(); }

 private:
  std::unique_ptr<ItemSource> first_, second_;
};

}  // namespace

int run_submit(const SubmitOptions& options, std::ostream& out, std::ostream& err) {
  auto specs = check_request(options.ops, options.format, options.priority);
  if (!specs.ok()) {
    err << "imgq: error: " << specs.status().message() << "\n";
    return 2;
  }
  if (options.paths.empty() && options.from_file.empty()) {
    err << "imgq: error: give at least one image file or folder, or --from-file LIST\n";
    return 2;
  }
  int list_fd = -1;
  if (!options.from_file.empty()) {
    list_fd = options.from_file == "-" ? STDIN_FILENO : ::open(options.from_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (list_fd < 0) {
      err << "imgq: error: cannot open the list " << options.from_file << ": " << std::strerror(errno) << "\n";
      return 2;
    }
  }

  PumpOptions pump;
  pump.broker = options.broker;
  pump.progress = options.progress;
  pump.ops = *specs;
  pump.priority = options.priority;
  pump.window = options.window;
  pump.no_wait = options.no_wait;
  pump.local = options.local;
  pump.job_timeout_ms = options.job_timeout_ms;
  pump.timeout = options.timeout;
  pump.interrupted = options.interrupted;
  pump.curve = options.curve;
  pump.mode = options.mode;
  pump.session = random_session();

  std::unique_ptr<ItemSource> source;
  if (!options.paths.empty()) {
    source = std::make_unique<PathsSource>(plan_batch(options.paths, options.out_dir, options.format), pump.session);
  }
  if (list_fd >= 0) {
    auto list = std::make_unique<ListSource>(list_fd, options.from_file == "-" ? "on stdin" : options.from_file,
                                             options.null_separated ? '\0' : '\n', options.out_dir, options.format,
                                             pump.session + "l", err);
    if (source) {
      source = std::make_unique<ChainSource>(std::move(source), std::move(list));
    } else {
      source = std::move(list);
    }
  }
  auto reporter = make_reporter(options.mode, out, err);
  return run_pump(pump, *source, *reporter, out, err);
}

}  // namespace imgq::client
