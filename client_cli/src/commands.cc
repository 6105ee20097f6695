#include "imgq/client_cli/commands.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <sstream>

#include "imgq/client_cli/pump.h"
#include "imgq/client_cli/reporter.h"
#include "imgq/common/batch_paths.h"
#include "imgq/common/cli.h"
#include "imgq/common/file_io.h"
#include "imgq/common/text.h"
#include "imgq/schemas/op_catalog.h"

namespace imgq::client {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

// Requests in flight at once when a command names many jobs.
constexpr size_t kWindow = 256;

void print_error(const Connection& c, const std::string& message, std::ostream& err) {
  err << message_line("error", message, c.color, c.columns);
}

// Exit status for a failed request: 3 when the broker did not answer or
// refused this client's key (or is stopping), else 1.
int report(const Connection& c, const Status& status, std::ostream& err) {
  print_error(c, status.message(), err);
  const bool unreachable =
      status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kPermissionDenied;
  return unreachable ? cli::kExitUnavailable : cli::kExitFailed;
}

std::string local_time(double unix_seconds) {
  return unix_seconds <= 0 ? "-" : time_text(unix_seconds, /*utc=*/false);
}

void print_state(const proto::JobState& s, bool json, std::ostream& out) {
  if (json) {
    out << "{\"job\":" << json_quote(s.job) << ",\"file\":" << json_quote(s.name) << ",\"state\":" << json_quote(s.state)
        << ",\"done\":" << s.done << ",\"total\":" << s.total << ",\"position\":" << s.position
        << ",\"group\":" << json_quote(s.group) << ",\"attempts\":" << s.attempts << ",\"code\":" << s.code
        << ",\"message\":" << json_quote(s.message) << "}\n";
    return;
  }
  out << s.job << " " << s.state;
  if (s.state == proto::kQueued && s.position > 0) out << " (position " << s.position << ")";
  if (s.state == proto::kRunning) {
    out << " on " << s.group;
    // Stages exist only for a job run in strips; a whole image has none.
    if (s.total > 0) out << " (stage " << s.done << " of " << s.total << ")";
  }
  if (!s.name.empty()) out << " " << s.name;
  if (!s.message.empty()) out << ": " << s.message;
  out << "\n";
}

// Sends one request per header (their req are 1..n), at most kWindow in
// flight, and returns the replies in the same order. Unavailable when the
// broker does not answer at first (kFirstContact) or goes silent for
// c.timeout later.
Result<std::vector<Frames>> call_all(BrokerClient& broker, const std::vector<std::string>& headers,
                                     const Connection& c) {
  std::vector<Frames> replies(headers.size());
  std::vector<bool> answered(headers.size(), false);
  size_t sent = 0, received = 0;
  auto last_heard = SteadyClock::now();
  bool heard = false;
  while (received < headers.size()) {
    while (sent < headers.size() && sent - received < kWindow && broker.send(headers[sent])) ++sent;
    if (auto refused = broker.refused()) return *refused;
    const Millis limit = heard ? c.timeout : std::min(c.timeout, kFirstContact);
    const auto waited = std::chrono::duration_cast<Millis>(SteadyClock::now() - last_heard);
    if (waited >= limit) return broker.silent_for(limit);
    auto frames = broker.receive(std::min(limit - waited, Millis(100)));
    if (!frames) continue;
    auto header = proto::decode_header(frames->at(0));
    if (!header.ok()) continue;
    auto reply = header->as<proto::AnyReply>();
    if (!reply.ok() || reply->req == 0 || reply->req > headers.size() || answered[reply->req - 1]) continue;
    heard = true;
    last_heard = SteadyClock::now();
    answered[reply->req - 1] = true;
    replies[reply->req - 1] = std::move(*frames);
    ++received;
  }
  return replies;
}

template <typename Request>
std::vector<std::string> requests_for(const std::vector<std::string>& jobs) {
  std::vector<std::string> headers;
  for (size_t i = 0; i < jobs.size(); ++i) {
    Request request;
    request.req = i + 1;
    request.job = jobs[i];
    headers.push_back(proto::encode(request));
  }
  return headers;
}

// status and cancel: both answer with the job's state.
template <typename Request>
int state_of_each(const Connection& c, const std::vector<std::string>& jobs, std::ostream& out, std::ostream& err) {
  zmq::context_t context;
  BrokerClient broker(context, c.broker, c.curve);
  auto replies = call_all(broker, requests_for<Request>(jobs), c);
  if (!replies.ok()) return report(c, replies.status(), err);
  int code = cli::kExitOk;
  for (const Frames& frames : *replies) {
    auto reply = decode_reply<proto::StatusReply>(frames);
    if (!reply.ok()) {
      print_error(c, reply.status().message(), err);
      code = cli::kExitFailed;
      continue;
    }
    print_state(reply->job, c.json, out);
  }
  return code;
}

// Where a fetched result goes: OUT/INPUT-NAME.FORMAT, never over a different file.
Result<fs::path> write_result(const proto::JobResult& result, const SharedBytes& bytes, const fs::path& out_dir,
                              bool overwrite) {
  const fs::path input = result.name.empty() ? fs::path(result.job) : fs::path(result.name).filename();
  fs::path wanted = out_dir / input;
  wanted.replace_extension("." + output_extension(input, result.format, false));
  const fs::path staged = staging_name(wanted);
  Status written = write_file(staged, {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, true);
  if (!written.ok()) return written;
  auto placed = place_file(staged, wanted, overwrite);
  if (placed.ok()) (void)sync_path(out_dir);
  return placed;
}

}  // namespace

Result<std::vector<std::string>> job_ids(const std::vector<std::string>& given, std::istream& in) {
  std::vector<std::string> ids;
  for (const std::string& id : given) {
    if (id != "-") {
      ids.push_back(id);
      continue;
    }
    if (::isatty(STDIN_FILENO)) {
      return Status::InvalidArgument("\"-\" reads job ids from stdin, which is a terminal; pipe them in, e.g. "
                                     "imgq jobs -q --state failed | imgq status -");
    }
    for (std::string word; in >> word;) ids.push_back(word);
  }
  if (ids.empty()) return Status::InvalidArgument("no job id given (imgq jobs lists them)");
  return ids;
}

int run_status(const Connection& c, const std::vector<std::string>& jobs, std::ostream& out, std::ostream& err) {
  return state_of_each<proto::StatusRequest>(c, jobs, out, err);
}

int run_cancel(const Connection& c, const std::vector<std::string>& jobs, std::ostream& out, std::ostream& err) {
  return state_of_each<proto::Cancel>(c, jobs, out, err);
}

int run_fetch(const Connection& c, const std::vector<std::string>& jobs, const std::string& out_dir, bool overwrite,
              std::ostream& out, std::ostream& err) {
  ResultsFolder results_folder;  // removed again if made and nothing is written
  if (Status folder = results_folder.open(out_dir); !folder.ok()) {
    print_error(c, folder.message(), err);
    return cli::kExitUsage;
  }
  zmq::context_t context;
  BrokerClient broker(context, c.broker, c.curve);
  auto replies = call_all(broker, requests_for<proto::Fetch>(jobs), c);
  if (!replies.ok()) return report(c, replies.status(), err);
  int code = cli::kExitOk;
  std::vector<std::string> handled;  // results in hand (written, or a failure reported): acknowledged
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Frames& frames = (*replies)[i];
    auto result = decode_reply<proto::JobResult>(frames);
    if (!result.ok()) {
      print_error(c, result.status().message(), err);
      code = cli::kExitFailed;
      continue;
    }
    if (result->state == proto::kDone && !result->output.empty()) {
      out << result->output << "\n";  // a local-files job: its group wrote the result already
      handled.push_back(jobs[i]);
      continue;
    }
    if (result->state != proto::kDone || frames.size() != 2) {
      err << error_line(result->name.empty() ? jobs[i] : result->name, result->state + ": " + result->message)
          << "\n";
      handled.push_back(jobs[i]);
      code = cli::kExitFailed;
      continue;
    }
    if (Status intact = check_result_bytes(*result, frames[1]); !intact.ok()) {
      print_error(c, intact.message(), err);
      code = cli::kExitFailed;
      continue;
    }
    auto written = write_result(*result, frames[1], out_dir, overwrite);
    if (!written.ok()) {
      print_error(c, written.status().message() + " (the result stays at the broker)", err);
      code = cli::kExitFailed;
      continue;
    }
    out << written->string() << "\n";
    handled.push_back(jobs[i]);
  }
  if (!handled.empty()) {
    proto::ResultAck ack;
    ack.req = jobs.size() + 1;
    ack.job = handled.front();
    ack.jobs.assign(handled.begin() + 1, handled.end());
    broker.linger_on_close(Millis(1000));
    broker.send(proto::encode(ack));
  }
  return code;
}

int run_jobs(const Connection& c, const ListOptions& options, std::ostream& out, std::ostream& err) {
  zmq::context_t context;
  BrokerClient broker(context, c.broker, c.curve);
  proto::ListRequest request;
  request.req = 1;
  request.state = options.state;
  request.limit = options.limit;
  request.before = options.before;
  auto frames = broker.call(proto::encode(request), 1, std::min(c.timeout, kFirstContact));
  if (!frames.ok()) return report(c, frames.status(), err);
  auto reply = decode_reply<proto::ListReply>(*frames);
  if (!reply.ok()) {
    // A broker from before `list` answers with an error naming the type.
    return report(c, reply.status(), err);
  }
  if (options.ids_only) {
    for (const proto::ListedJob& j : reply->jobs) out << j.job.job << "\n";
    return cli::kExitOk;
  }
  if (c.json) {
    for (const proto::ListedJob& j : reply->jobs) {
      out << "{\"job\":" << json_quote(j.job.job) << ",\"state\":" << json_quote(j.job.state)
          << ",\"file\":" << json_quote(j.job.name) << ",\"submitted\":" << j.submitted
          << ",\"finished\":" << j.finished << ",\"kept\":" << (j.kept ? "true" : "false")
          << ",\"group\":" << json_quote(j.job.group) << ",\"position\":" << j.job.position
          << ",\"attempts\":" << j.job.attempts << ",\"code\":" << j.job.code
          << ",\"message\":" << json_quote(j.job.message) << "}\n";
    }
    if (!reply->next.empty()) out << "{\"next\":" << json_quote(reply->next) << "}\n";
    return cli::kExitOk;
  }
  if (reply->jobs.empty()) {
    err << "imgq: no " << (options.state.empty() ? "" : options.state + " ") << "jobs"
        << (reply->every_owner ? "" : " of this key") << " at " << c.broker << "\n";
    return cli::kExitOk;
  }
  out << "JOB               STATE      SUBMITTED            FILE\n";
  for (const proto::ListedJob& j : reply->jobs) {
    std::string state = j.job.state;
    state.resize(std::max<size_t>(state.size(), 9), ' ');
    out << j.job.job << "  " << state << "  " << local_time(j.submitted) << "  " << j.job.name;
    if (j.job.state == proto::kRunning && !j.job.group.empty()) out << " (on " << j.job.group << ")";
    if (j.job.state == proto::kFailed && !j.job.message.empty()) out << ": " << j.job.message;
    out << "\n";
  }
  if (!reply->next.empty()) {
    err << "imgq: " << reply->jobs.size() << " shown; older ones: imgq jobs --before " << reply->next << "\n";
  }
  return cli::kExitOk;
}

int run_watch(const Connection& c, const std::string& job, const volatile std::sig_atomic_t& stop, std::ostream& out,
              std::ostream& err) {
  zmq::context_t context;
  BrokerClient broker(context, c.broker, c.curve);
  auto endpoint = resolve_progress(broker, c.progress, std::min(c.timeout, kFirstContact));
  if (!endpoint.ok()) return report(c, endpoint.status(), err);
  zmq::socket_t sub = connect_progress(context, *endpoint, c.curve);
  sub.set(zmq::sockopt::subscribe, job);
  const std::string session = random_session();
  sub.set(zmq::sockopt::subscribe, session);
  // Pings with a session until its pong arrives on the progress socket: from
  // then on no event is missed. Then the job's state now, which may be final.
  Frames frames;
  uint64_t req = 1;
  bool live = false;
  auto last_pong = SteadyClock::now();
  auto last_ping = SteadyClock::now() - std::chrono::seconds(1);
  auto interval = Millis(5);
  bool asked = false;
  while (!stop) {
    const auto now = SteadyClock::now();
    if (now - last_ping >= (live ? Millis(1000) : interval)) {
      proto::Ping ping;
      ping.req = ++req;
      if (!live) ping.session = session;
      broker.send(proto::encode(ping));
      last_ping = now;
      interval = std::min(interval * 2, Millis(200));
    }
    const Millis silence_limit = live ? c.timeout : std::min(c.timeout, kFirstContact);
    if (now - last_pong > silence_limit) {
      if (live) return report(c, Status::Unavailable("no answer from the broker at " + c.broker + " for " +
                                                    std::to_string(c.timeout.count() / 1000) + " s (--timeout)"),
                              err);
      return report(c, Status::Unavailable("the broker answers at " + c.broker + " but nothing arrives from its "
                                            "progress endpoint " + *endpoint +
                                            "; give the broker's progress address with --progress HOST:PORT"),
                    err);
    }
    if (auto refused = broker.refused()) return report(c, *refused, err);
    if (live && !job.empty() && !asked) {
      asked = true;
      proto::StatusRequest status;
      status.req = ++req;
      status.job = job;
      broker.send(proto::encode(status));
    }
    zmq::pollitem_t items[] = {{sub.handle(), 0, ZMQ_POLLIN, 0}, {broker.socket().handle(), 0, ZMQ_POLLIN, 0}};
    poll_sockets(items, 2, Millis(100));
    while (recv_frames(broker.socket(), frames, 2, /*dontwait=*/true)) {
      auto header = proto::decode_header(frames.at(0));
      if (!header.ok()) continue;
      if (header->type() == proto::Pong::kType) {
        last_pong = SteadyClock::now();
      } else if (header->type() == proto::StatusReply::kType || header->type() == proto::Error::kType) {
        auto state = decode_reply<proto::StatusReply>(frames);
        if (!state.ok()) return report(c, state.status(), err);
        const std::string& s = state->job.state;
        if (s == proto::kDone || s == proto::kFailed || s == proto::kCancelled) {
          print_state(state->job, c.json, out);
          return s == proto::kDone ? cli::kExitOk : cli::kExitFailed;
        }
      }
    }
    while (recv_frames(sub, frames, 2, /*dontwait=*/true)) {
      if (frames.size() != 2) continue;
      if (frames[0] == session) {
        live = true;
        last_pong = SteadyClock::now();
        continue;
      }
      auto header = proto::decode_header(frames[1]);
      if (!header.ok() || header->type() != proto::Event::kType) continue;  // e.g. another client's session pong
      auto event = header->as<proto::Event>();
      if (!event.ok()) continue;
      print_state(event->job, c.json, out);
      out.flush();
      const std::string& state = event->job.state;
      if (!job.empty() && (state == proto::kDone || state == proto::kFailed || state == proto::kCancelled)) {
        return state == proto::kDone ? cli::kExitOk : cli::kExitFailed;
      }
    }
  }
  return cli::kExitInterrupted;
}

int run_ops(const Connection& c, std::ostream& out, std::ostream& err) {
  std::vector<proto::OpInfo> ops;
  std::vector<proto::AliasInfo> aliases;
  int code = cli::kExitOk;
  {
    zmq::context_t context;
    BrokerClient broker(context, c.broker, c.curve);
    proto::OpsRequest request;
    request.req = 1;
    auto reply = broker.call(proto::encode(request), 1, std::min(c.timeout, kFirstContact));
    auto decoded = reply.ok() ? decode_reply<proto::OpsReply>(*reply) : Result<proto::OpsReply>(reply.status());
    if (decoded.ok()) {
      ops = std::move(decoded->ops);
      aliases = std::move(decoded->aliases);
    } else {
      // Still useful offline; the exit status says the broker did not answer.
      code = report(c, decoded.status(), err);
      err << "imgq: the ops built into this imgq follow\n";
      ops = schemas::describe_ops();
      aliases = schemas::describe_aliases();
    }
  }
  if (!c.json) {
    out << schemas::format_op_table(ops, aliases);
    return code;
  }
  out << "[";
  bool first_op = true;
  for (const proto::OpInfo& op : ops) {
    out << (first_op ? "" : ",") << "{\"name\":" << json_quote(op.name) << ",\"summary\":" << json_quote(op.summary)
        << ",\"params\":[";
    first_op = false;
    bool first = true;
    for (const proto::ParamInfo& p : op.params) {
      out << (first ? "" : ",") << "{\"key\":" << json_quote(p.key) << ",\"type\":" << json_quote(p.type)
          << ",\"default\":" << json_quote(p.default_value);
      if (p.type == "int" || p.type == "number") out << ",\"min\":" << p.min << ",\"max\":" << p.max;
      if (!p.choices.empty()) {
        out << ",\"choices\":[";
        for (size_t i = 0; i < p.choices.size(); ++i) out << (i ? "," : "") << json_quote(p.choices[i]);
        out << "]";
      }
      if (p.odd) out << ",\"odd\":true";
      out << "}";
      first = false;
    }
    out << "]}";
  }
  out << "]\n";
  return code;
}

namespace {

// The pong's `journal` state, for a person: what it means and what to do.
std::string journal_trouble(const std::string& state) {
  const std::string then = "; new jobs are refused until then (nothing accepted is lost; see the broker's log)";
  if (state == "full") return "its disk is FULL: free space in its --data-dir" + then;
  if (state == "read_only") return "its data dir is READ-ONLY: remount it read-write or fix its permissions" + then;
  return "its disk FAILS to write (" + state + "): see the broker's log and the kernel's (dmesg)" + then;
}

}  // namespace

int run_ping(const Connection& c, std::ostream& out, std::ostream& err) {
  zmq::context_t context;
  BrokerClient broker(context, c.broker, c.curve);
  proto::Ping ping;
  ping.req = 1;
  auto frames = broker.call(proto::encode(ping), 1, std::min(c.timeout, kFirstContact));
  if (!frames.ok()) return report(c, frames.status(), err);
  auto pong = decode_reply<proto::Pong>(*frames);
  if (!pong.ok()) return report(c, pong.status(), err);
  if (c.json) {
    out << "{\"broker\":" << json_quote(c.broker) << ",\"version\":" << json_quote(pong->version)
        << ",\"groups\":" << pong->groups << ",\"idle\":" << pong->idle << ",\"busy\":" << pong->busy
        << ",\"ranks\":" << pong->ranks << ",\"queued\":" << pong->queued << ",\"running\":" << pong->running
        << ",\"durable\":" << (pong->durable ? "true" : "false") << ",\"journal\":" << json_quote(pong->journal)
        << ",\"progress\":" << json_quote(pong->progress)
        << ",\"group_list\":[";
    for (size_t i = 0; i < pong->group_list.size(); ++i) {
      const proto::GroupInfo& g = pong->group_list[i];
      out << (i ? "," : "") << "{\"name\":" << json_quote(g.name) << ",\"ranks\":" << g.ranks
          << ",\"slots\":" << g.slots << ",\"running\":" << g.running << ",\"idle_seconds\":" << g.idle_seconds
          << "}";
    }
    out << "]}\n";
    return cli::kExitOk;
  }
  // Sentences wrapped at words to the terminal (the table below is not).
  const size_t line = c.columns == 0 ? 0 : c.columns - 1;
  out << wrap_words("broker " + c.broker + " (imgq " + pong->version + ", " +
                        (pong->durable ? "journal on" : "memory only: queued jobs are lost if it stops") + "): " +
                        std::to_string(pong->groups) + " worker group(s), " + std::to_string(pong->ranks) +
                        " ranks; " + std::to_string(pong->queued) + " queued, " + std::to_string(pong->running) +
                        " running",
                    line)
      << "\n";
  if (!pong->journal.empty() && pong->journal != "healthy") {
    out << "  " << wrap_words("journal: " + journal_trouble(pong->journal), line == 0 ? 0 : line - 2, 4) << "\n";
  }
  if (pong->group_list.empty()) {
    out << "  " << wrap_words("no worker group: start one with mpiexec -n N imgq-worker --broker HOST:5556",
                              line == 0 ? 0 : line - 2, 4)
        << "\n";
    return cli::kExitOk;
  }
  std::vector<proto::GroupInfo> groups = pong->group_list;
  std::sort(groups.begin(), groups.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  size_t width = 5;
  for (const auto& g : groups) width = std::max(width, g.name.size());
  auto pad = [](std::string s, size_t n) {
    s.resize(std::max(s.size(), n), ' ');
    return s;
  };
  out << "  " << pad("GROUP", width) << "  RANKS  SLOTS  RUNNING  IDLE\n";
  for (const auto& g : groups) {
    std::ostringstream idle;
    if (g.running == 0) {
      idle << static_cast<long long>(g.idle_seconds) << " s";
    } else {
      idle << "-";
    }
    out << "  " << pad(g.name, width) << "  " << pad(std::to_string(g.ranks), 5) << "  "
        << pad(std::to_string(g.slots), 5) << "  " << pad(std::to_string(g.running), 7) << "  " << idle.str() << "\n";
  }
  return cli::kExitOk;
}

}  // namespace imgq::client
