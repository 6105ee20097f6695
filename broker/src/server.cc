#include "imgq/broker/server.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "imgq/broker/sqlite_journal.h"
#include "imgq/common/logging.h"
#include "imgq/common/zmq_frames.h"

namespace imgq::broker {
namespace {

// Identity, header and payload are all a message may hold; one more frame is
// kept so that the core sees "too many frames", and the rest is drained.
constexpr size_t kMaxFrames = 4;

// The bytes a message holds, all frames together.
size_t bytes_of(const Frames& frames) {
  size_t n = 0;
  for (const SharedBytes& f : frames) n += f.size();
  return n;
}

// Reads one whole message without blocking; false when none is waiting.
// The frames keep the buffers they arrived in (an image is not copied).
// `user_id`: the peer's ZAP user id (its CURVE key), on the frames it sent;
// `address`: the peer's address (ZeroMQ's Peer-Address).
bool receive(zmq::socket_t& socket, std::string& identity, Frames& frames, std::string* user_id = nullptr,
             std::string* address = nullptr) {
  Messages parts;
  if (!recv_messages(socket, parts, kMaxFrames, /*dontwait=*/true)) return false;
  identity = parts.front().to_string();
  frames.clear();
  if (user_id != nullptr) user_id->clear();
  if (address != nullptr) address->clear();
  for (size_t i = 1; i < parts.size(); ++i) {
    if (user_id != nullptr && user_id->empty()) {
      if (const char* user = zmq_msg_gets(parts[i].handle(), "User-Id")) user_id->assign(user);
    }
    if (address != nullptr && i == 1) {
      if (const char* peer = zmq_msg_gets(parts[i].handle(), "Peer-Address")) address->assign(peer);
    }
    frames.emplace_back(std::move(parts[i]));
  }
  return true;
}

}  // namespace

class Server::SocketOutbox : public Outbox {
 public:
  SocketOutbox(zmq::socket_t& clients, zmq::socket_t& workers, zmq::socket_t& progress,
               monitoring::BrokerMetrics* metrics)
      : clients_(clients), workers_(workers), progress_(progress), metrics_(metrics) {}

  bool to_client(const std::string& identity, Frames frames) override {
    const size_t bytes = bytes_of(frames);
    const bool sent = send(clients_, identity, frames);
    if (sent && metrics_) metrics_->sent(monitoring::Peer::kClients, bytes);
    return sent;
  }
  void to_worker(const std::string& identity, Frames frames) override {
    const size_t bytes = bytes_of(frames);
    if (!send(workers_, identity, frames)) {
      spdlog::debug("worker {} unreachable", identity);
    } else if (metrics_) {
      metrics_->sent(monitoring::Peer::kWorkers, bytes);
    }
  }
  void publish(const std::string& topic, std::string event) override {
    try {
      progress_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      progress_.send(zmq::buffer(event), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      spdlog::warn("publishing an event failed: {}", e.what());
    }
  }

 private:
  // Sends and empties `frames` (large ones as references, not copied).
  static bool send(zmq::socket_t& socket, const std::string& identity, Frames& frames) {
    try {
      // ROUTER_MANDATORY: an unknown identity fails here, before any frame.
      if (!socket.send(zmq::buffer(identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        return false;
      }
      for (size_t i = 0; i < frames.size(); ++i) {
        zmq::message_t message = frames[i].message();
        const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
        (void)socket.send(message, flags);
      }
      return true;
    } catch (const zmq::error_t& e) {
      if (e.num() != EHOSTUNREACH) spdlog::warn("send failed: {}", e.what());
      return false;
    }
  }

  zmq::socket_t& clients_;
  zmq::socket_t& workers_;
  zmq::socket_t& progress_;
  monitoring::BrokerMetrics* metrics_;
};

Server::Server(zmq::context_t& context, ServerOptions options)
    : options_(std::move(options)),
      context_(context),
      clients_(context, zmq::socket_type::router),
      workers_(context, zmq::socket_type::router),
      progress_(context, zmq::socket_type::xpub) {
  for (zmq::socket_t* router : {&clients_, &workers_}) {
    router->set(zmq::sockopt::router_mandatory, 1);
    router->set(zmq::sockopt::maxmsgsize, options_.max_message_bytes);
    // Results are bounded by each client's window of jobs in flight; a full
    // pipe must never make the broker drop or block on one.
    router->set(zmq::sockopt::sndhwm, 0);
    router->set(zmq::sockopt::linger, 0);
  }
  progress_.set(zmq::sockopt::linger, 0);
  // Every subscription comes to the broker, which applies it or not
  // (on_progress_subscriptions): with CURVE, clients follow only their own jobs.
  progress_.set(zmq::sockopt::xpub_manual, 1);
  outbox_ = std::make_unique<SocketOutbox>(clients_, workers_, progress_, options_.metrics);
}

Server::~Server() = default;

Status Server::open_journal() {
  if (options_.data_dir.empty()) {
    core_ = std::make_unique<BrokerCore>(options_.config, *outbox_, Clock::now, options_.metrics);
    spdlog::warn("journal off (memory only): queued jobs and kept results are lost if the broker stops");
    return Status::Ok();
  }
  const auto started = std::chrono::steady_clock::now();
  Recovered recovered;
  auto journal = SqliteJournal::open(options_.data_dir, &recovered);
  if (!journal.ok()) return journal.status();
  for (const std::string& problem : recovered.problems) spdlog::error("journal: {}", problem);
  for (const std::string& note : recovered.notes) spdlog::info("journal: {}", note);
  // The log is synced on a thread of its own while the loop goes on.
  IMGQ_RETURN_IF_ERROR((*journal)->start_background_sync());
  sync_fd_ = (*journal)->notify_fd();
  journal_ = std::move(*journal);
  core_ = std::make_unique<BrokerCore>(options_.config, *outbox_, Clock::now, options_.metrics, journal_.get());
  const RestoreSummary r = core_->restore(std::move(recovered.jobs));
  spdlog::info(
      "journal {}: restored {} queued job(s), {} requeued that were running ({} failed past --max-attempts), {} "
      "result(s) to deliver, {} finished key(s); {} unreferenced payload file(s) removed; {:.3f} s",
      options_.data_dir, r.queued, r.requeued, r.gave_up, r.results, r.tombstones, recovered.orphan_files,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  if (!recovered.problems.empty()) {
    // What the lines above found, in one line an operator cannot miss.
    std::string what = std::to_string(recovered.problems.size()) + " problem(s): " +
                       std::to_string(recovered.damaged_rows) + " damaged row(s) left out, " +
                       std::to_string(recovered.missing_payloads) + " job(s) whose stored file is missing or short, " +
                       std::to_string(recovered.lost_commits) + " synced commit(s) lost (" +
                       std::to_string(recovered.lost_jobs) + " accepted job(s) in them)";
    if (!recovered.quarantine.empty()) {
      what += "; " + std::to_string(recovered.quarantined_files) + " payload file(s) no row names kept in " +
              recovered.quarantine.string();
    }
    if (!recovered.moved_aside.empty()) {
      what += "; the journal was unreadable and is in " + recovered.moved_aside.string() +
              " (imgq-broker --salvage " + recovered.moved_aside.string() + " --data-dir " + options_.data_dir +
              " takes back what can be read, with this broker stopped)";
    }
    log_event(spdlog::level::err, "journal " + options_.data_dir + " is not intact: " + what,
              {field("event", "journal_damaged"), field("problems", static_cast<long long>(recovered.problems.size())),
               field("damaged_rows", static_cast<long long>(recovered.damaged_rows)),
               field("missing_payloads", static_cast<long long>(recovered.missing_payloads)),
               field("lost_commits", static_cast<long long>(recovered.lost_commits)),
               field("lost_jobs", static_cast<long long>(recovered.lost_jobs))});
  }
  return Status::Ok();
}

Status Server::bind() {
  if (!core_) IMGQ_RETURN_IF_ERROR(open_journal());
  if (!options_.curve_secret.empty()) {
    if (!has_curve()) return Status::Unsupported("CURVE is on but this libzmq was built without it");
    zap_ = std::make_unique<ZapHandler>(
        context_, std::map<std::string, std::set<std::string>>{{"clients", options_.allow_clients},
                                                               {"workers", options_.allow_workers}});
    IMGQ_RETURN_IF_ERROR(zap_->start());
    apply_curve_server(clients_, options_.curve_secret, "clients");
    apply_curve_server(progress_, options_.curve_secret, "clients");
    apply_curve_server(workers_, options_.curve_secret, "workers");
  }
  for (auto [socket, endpoint, what] :
       {std::tuple{&clients_, options_.clients, "clients"}, std::tuple{&workers_, options_.workers, "workers"},
        std::tuple{&progress_, options_.progress, "progress"}}) {
    try {
      socket->bind(endpoint);
    } catch (const zmq::error_t& e) {
      const std::string flag = std::string("--") + what;
      return Status::Unavailable(
          std::string("cannot listen for ") + what + " on " + endpoint + ": " +
          (e.num() == EADDRINUSE ? "the port is in use (another imgq-broker? choose another with " + flag + ")"
           : e.num() == EADDRNOTAVAIL || e.num() == ENODEV
               ? "this host has no such address (give one of its own, or * for every interface, with " + flag + ")"
               : std::string(e.what())));
    }
  }
  core_->set_progress_endpoint(progress_endpoint());
  return Status::Ok();
}

std::string Server::clients_endpoint() const { return clients_.get(zmq::sockopt::last_endpoint); }
std::string Server::workers_endpoint() const { return workers_.get(zmq::sockopt::last_endpoint); }
std::string Server::progress_endpoint() const { return progress_.get(zmq::sockopt::last_endpoint); }

void Server::on_progress_subscriptions() {
  for (int i = 0; i < 256; ++i) {
    zmq::message_t message;
    try {
      if (!progress_.recv(message, zmq::recv_flags::dontwait)) return;
    } catch (const zmq::error_t& e) {
      spdlog::warn("reading the progress socket failed: {}", e.what());
      return;
    }
    // A subscription is 1 then the topic, an unsubscription 0 then it; a
    // subscriber sends nothing else that matters here.
    const auto* bytes = static_cast<const unsigned char*>(message.data());
    if (message.size() == 0 || bytes[0] > 1) continue;
    const bool subscribe = bytes[0] == 1;
    const std::string topic(reinterpret_cast<const char*>(bytes) + 1, message.size() - 1);
    const char* user = subscribe ? zmq_msg_gets(message.handle(), "User-Id") : nullptr;
    if (!core_->on_subscription(subscribe, topic, user != nullptr ? user : "")) continue;
    // Applies to the subscriber this message came from (ZMQ_XPUB_MANUAL).
    if (subscribe) {
      progress_.set(zmq::sockopt::subscribe, topic);
    } else {
      progress_.set(zmq::sockopt::unsubscribe, topic);
    }
  }
}

Status Server::run(const std::atomic<bool>& stop) {
  // The journal's sync thread says when a commit is on disk (-1: no journal,
  // and poll ignores the item).
  zmq::pollitem_t items[] = {{clients_.handle(), 0, ZMQ_POLLIN, 0},
                             {workers_.handle(), 0, ZMQ_POLLIN, 0},
                             {progress_.handle(), 0, ZMQ_POLLIN, 0},
                             {nullptr, sync_fd_, ZMQ_POLLIN, 0}};
  std::string identity, owner, address;
  Frames frames;
  while (!stop.load() && core_->failure().ok()) {
    const auto timeout = std::min(core_->time_to_next_tick(), Duration{100});
    poll_sockets(items, sync_fd_ >= 0 ? 4 : 3, timeout);
    if (items[3].revents & ZMQ_POLLIN) {
      uint64_t count;
      (void)!::read(sync_fd_, &count, sizeof count);
    }
    // Subscriptions first: a client subscribes before it pings or submits.
    on_progress_subscriptions();
    // Drain what is waiting, a bounded batch per socket per turn.
    for (int i = 0; i < 256 && receive(workers_, identity, frames, nullptr, &address); ++i) {
      if (options_.metrics) options_.metrics->received(monitoring::Peer::kWorkers, bytes_of(frames));
      core_->on_worker(identity, std::move(frames), address);
    }
    for (int i = 0; i < 256 && receive(clients_, identity, frames, &owner); ++i) {
      if (options_.metrics) options_.metrics->received(monitoring::Peer::kClients, bytes_of(frames));
      core_->on_client(identity, std::move(frames), owner);
    }
    // Group commit: the round's changes in one commit; its submits are
    // answered once the sync thread has it on disk (and wakes the poll).
    core_->commit();
    core_->tick();
  }
  core_->shutdown();
  // The groups' `disconnect` may go out while the sockets close.
  workers_.set(zmq::sockopt::linger, 200);
  return core_->failure();
}

}  // namespace imgq::broker
