#include "imgq/client_cli/submit.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>
#include <unordered_set>

#include "imgq/client_cli/pump.h"
#include "imgq/common/batch_paths.h"
#include "imgq/common/cli.h"
#include "imgq/schemas/op_call.h"

namespace imgq::client {
namespace {

namespace fs = std::filesystem;

fs::path canonical_or_normal(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? fs::absolute(p, ec).lexically_normal() : c;
}

// How results are put: where each goes, and which are not made at all.
struct OutputRules {
  bool overwrite = false;
  bool skip_existing = false;
};

// Turns an item whose result should be at `wanted` into one written under a
// staging name and moved there (pump.h): or skips it (--skip-existing: its
// result is there), or fails it (--overwrite would replace an input).
// Returns false when the item is not to be sent at all.
bool route_output(Item& item, const fs::path& wanted, const OutputRules& rules,
                  const std::function<bool(const fs::path&)>& is_input) {
  std::error_code ec;
  const fs::path wanted_abs = canonical_or_normal(wanted);
  const bool is_own_input = wanted_abs == canonical_or_normal(item.source);
  if (rules.skip_existing && !is_own_input && fs::exists(wanted, ec)) return false;
  if (rules.overwrite && (is_own_input || is_input(wanted_abs))) {
    item.problem = Status::InvalidArgument("its result would replace the input " + wanted.string() +
                                           "; imgq never writes over an input, even with --overwrite: give "
                                           "another -o");
  }
  item.shown = wanted;
  item.output = staging_name(wanted);
  return true;
}

// The items of the paths given on the command line (planned up front: the
// paths are in memory already).
class PathsSource : public ItemSource {
 public:
  PathsSource(BatchPlan plan, std::string session, OutputRules rules)
      : items_(std::move(plan.items)), not_images_(plan.not_images), result_folders_(plan.result_folders),
        session_(std::move(session)), rules_(rules) {
    replace_results_ = rules.overwrite;
    if (rules.overwrite) {
      for (const BatchItem& b : items_) inputs_.insert(canonical_or_normal(b.source));
    }
  }
  std::optional<Item> next() override {
    while (next_ < items_.size()) {
      BatchItem& b = items_[next_];
      Item item{std::move(b.source), {}, {}, session_ + ":" + std::to_string(next_), std::move(b.problem)};
      ++next_;
      if (!item.problem.ok()) return item;
      if (route_output(item, b.output, rules_, [this](const fs::path& p) { return inputs_.count(p) != 0; })) {
        return item;
      }
      ++kept_;
    }
    return std::nullopt;
  }
  bool exhausted() const override { return next_ == items_.size(); }
  std::optional<size_t> total() const override { return items_.size() - kept_; }
  size_t kept() const override { return kept_; }
  size_t not_images() const override { return not_images_; }
  size_t result_folders() const override { return result_folders_; }

 private:
  std::vector<BatchItem> items_;
  size_t not_images_, result_folders_;
  std::string session_;
  OutputRules rules_;
  std::set<fs::path> inputs_;  // canonical, for --overwrite
  size_t next_ = 0;
  size_t kept_ = 0;
};

// The items of a list of paths, read from a descriptor without blocking, a
// line at a time as the window has room, so a list streamed from another
// program (`find ... |`) starts at once and is never held whole.
class ListSource : public ItemSource {
 public:
  ListSource(int fd, std::string name, char separator, fs::path out_dir, std::string format, bool edges,
             std::string session, OutputRules rules, std::ostream& err)
      : fd_(fd), name_(std::move(name)), separator_(separator), out_dir_(std::move(out_dir)),
        format_(std::move(format)), edges_(edges), session_(std::move(session)), rules_(rules), err_(err) {
    replace_results_ = rules.overwrite;
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
  size_t kept() const override { return kept_; }

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
    std::optional<Item> item = plan(std::move(line));
    if (!item || !item->problem.ok()) return item;
    const fs::path wanted = item->output;
    // A file listed earlier is an input too (those listed later cannot be
    // known yet; without --overwrite nothing is ever replaced anyway).
    seen_.insert(std::hash<std::string>{}(canonical_or_normal(item->source).string()));
    if (route_output(*item, wanted, rules_, [this](const fs::path& p) {
          return seen_.count(std::hash<std::string>{}(p.string())) != 0;
        })) {
      return item;
    }
    ++kept_;
    return std::nullopt;
  }

  std::optional<Item> plan(std::string line) {
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
    item.output.replace_extension("." + output_extension(source, format_, edges_));
    // Two listed files must never write one output (one whose extension
    // changed keeps its input's too when it meets another: batch_paths.h).
    // Hashes, not names, are kept: a list of millions stays small.
    auto claim = [&](const fs::path& p) {
      return claimed_.insert(std::hash<std::string>{}(p.lexically_normal().string())).second;
    };
    bool fresh = claim(item.output);
    if (!fresh && extension_of(source) != extension_of(item.output) && !extension_of(source).empty()) {
      fs::path renamed = item.output;
      renamed.replace_filename(item.output.stem().string() + "." + extension_of(source) +
                               item.output.extension().string());
      if ((fresh = claim(renamed))) item.output = renamed;
    }
    if (!fresh) {
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
  std::string format_;
  bool edges_;
  std::string session_;
  OutputRules rules_;
  std::ostream& err_;
  std::unordered_set<size_t> seen_;  // hashes of the canonical inputs listed so far
  size_t kept_ = 0;
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
  Status place(Item& item, std::string_view bytes) override { return first_->place(item, bytes); }
  std::vector<Status> sync(const std::vector<Item*>& placed) override { return first_->sync(placed); }
  size_t kept() const override { return first_->kept() + second_->kept(); }
  size_t not_images() const override { return first_->not_images(); }
  size_t result_folders() const override { return first_->result_folders(); }

 private:
  std::unique_ptr<ItemSource> first_, second_;
};

}  // namespace

int run_submit(const SubmitOptions& options, std::ostream& out, std::ostream& err) {
  auto usage = [&](const std::string& message) {
    err << message_line("error", message, options.style.color, cli::stderr_columns());
    return 2;
  };
  if (options.ops.empty()) {
    return usage("no --op given: say what to do with the images, e.g. --op grayscale or --op "
                 "gaussian_blur:ksize=5 (imgq ops lists them), or --op identity to re-encode them as they are");
  }
  auto specs = check_request(options.ops, options.format, options.priority);
  if (!specs.ok()) return usage(specs.status().message());
  if (options.paths.empty() && options.from_file.empty()) {
    return usage("give at least one image file or folder, or --from-file LIST");
  }
  if (options.overwrite && options.skip_existing) return usage("give --overwrite or --skip-existing, not both");
  // Checked before anything is sent, so a typo costs nothing; removed again
  // if this run made it and writes nothing into it.
  ResultsFolder results_folder;
  if (Status folder = results_folder.open(options.out_dir); !folder.ok()) return usage(folder.message());
  const auto pipeline = schemas::parse_pipeline(*specs);  // valid: check_request parsed it
  const bool edges = pipeline.ok() && schemas::makes_edge_map(*pipeline);
  const OutputRules rules{options.overwrite, options.skip_existing};

  std::unique_ptr<ItemSource> source;
  PumpOptions pump;
  pump.session = random_session();
  if (!options.paths.empty()) {
    BatchPlan plan = plan_batch(options.paths, options.out_dir, options.format, edges);
    if (!plan.empty.empty()) {
      std::string names;
      for (const std::string& e : plan.empty) names += (names.empty() ? "" : ", ") + e;
      return usage(names + (plan.empty.size() == 1 ? " holds" : " hold") +
                   " no image (imgq reads " + read_extensions_text() + (plan.not_images != 0 ? "; " + std::to_string(plan.not_images) +
                                                            " other file(s) passed over" : std::string()) + ")");
    }
    source = std::make_unique<PathsSource>(std::move(plan), pump.session, rules);
  }
  if (options.from_file == "-") {
    const char* pipe_it =
        "; pipe the list in (find DIR -type f | imgq submit ... --from-file -) or give --from-file LIST";
    if (cli::stdin_was_closed()) return usage(std::string("--from-file -: stdin is closed") + pipe_it);
    const int flags = ::fcntl(STDIN_FILENO, F_GETFL);
    if (flags < 0 || (flags & O_ACCMODE) == O_WRONLY) {
      return usage(std::string("--from-file -: stdin is not open for reading") + pipe_it);
    }
    if (::isatty(STDIN_FILENO)) {
      err << message_line("", "reading the list of files from the terminal: one path a line, end it with Ctrl-D",
                          false, cli::stderr_columns());
    }
  }
  if (!options.from_file.empty()) {
    const int list_fd =
        options.from_file == "-" ? STDIN_FILENO : ::open(options.from_file.c_str(), O_RDONLY | O_CLOEXEC);
    if (list_fd < 0) return usage("cannot open the list " + options.from_file + ": " + std::strerror(errno));
    auto list = std::make_unique<ListSource>(list_fd, options.from_file == "-" ? "on stdin" : options.from_file,
                                             options.null_separated ? '\0' : '\n', options.out_dir, options.format,
                                             edges, pump.session + "l", rules, err);
    if (source) {
      source = std::make_unique<ChainSource>(std::move(source), std::move(list));
    } else {
      source = std::move(list);
    }
  }

  pump.broker = options.broker;
  pump.progress = options.progress;
  pump.ops = *specs;
  pump.priority = options.priority;
  pump.window = options.window;
  pump.no_wait = options.no_wait;
  pump.detach = options.detach;
  pump.local = options.local;
  pump.job_timeout_ms = options.job_timeout_ms;
  pump.timeout = options.timeout;
  pump.interrupted = options.interrupted;
  pump.curve = options.curve;
  pump.mode = options.mode;
  pump.color = options.style.color;
  ReportStyle style = options.style;
  style.no_wait = options.no_wait;
  auto reporter = make_reporter(options.mode, out, err, "imgq", style);
  const int code = run_pump(pump, *source, *reporter, out, err);
  if (!options.no_wait && options.mode != ReportMode::kJson && !options.style.quiet && (code == 0 || code == 1)) {
    err << "imgq: results are in " << options.out_dir << "/\n";
  }
  return code;
}

}  // namespace imgq::client
