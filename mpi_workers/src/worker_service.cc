#include "imgq/mpi_workers/worker_service.h"

#include <spdlog/spdlog.h>

#include "imgq/common/zmq_frames.h"
#include "imgq/mpi_workers/broker_link.h"
#include "imgq/mpi_workers/job_runner.h"
#include "imgq/schemas/codec.h"
#include "imgq/schemas/op_catalog.h"

namespace imgq::workers {
namespace {

proto::Hello hello_for(const Engine& engine, const std::string& name) {
  proto::Hello hello;
  hello.name = name;
  hello.ranks = engine.size();
  for (const schemas::OpDef& def : schemas::all_ops()) hello.ops.emplace_back(def.name);
  hello.version = IMGQ_VERSION;
  return hello;
}

proto::Done run_request(Engine& engine, zmq::socket_t& pipe, const BrokerLink& link, const ServiceOptions& options,
                        const Frames& frames, Frames& reply) {
  proto::Done done;
  auto request = proto::decode_header(frames[0])->as<proto::JobRequest>({"job", "ops"});
  if (!request.ok() || frames.size() != 2) {
    done.code = static_cast<int>(StatusCode::kInvalidArgument);
    done.message = request.ok() ? "job without an image frame" : request.status().message();
    return done;
  }
  done.job = request->job;
  auto pipeline = schemas::parse_pipeline(request->ops);
  if (!pipeline.ok()) {
    done.code = static_cast<int>(pipeline.status().code());
    done.message = pipeline.status().message();
    return done;
  }
  const auto& image = frames[1];
  // Stops at the next boundary when the broker says so, or by itself when
  // the job's own deadline passes (the broker may be unreachable by then).
  const auto started = std::chrono::steady_clock::now();
  const auto timeout = std::chrono::milliseconds(request->timeout_ms);
  JobControl control;
  control.max_pixels = options.max_pixels;
  control.interrupt = [&]() -> Status {
    if (link.aborted(request->job)) return Status::Cancelled("stopped on the broker's request");
    if (timeout.count() > 0 && std::chrono::steady_clock::now() - started > timeout) {
      return Status::DeadlineExceeded("the job ran longer than its timeout of " +
                                      std::to_string(request->timeout_ms) + " ms");
    }
    return Status::Ok();
  };
  JobOutcome outcome = run_job(
      engine, *pipeline, {reinterpret_cast<const uint8_t*>(image.data()), image.size()},
      request->format.empty() ? "png" : request->format, [&](int step, int total, const std::string& what) {
        proto::Progress progress;
        progress.job = request->job;
        progress.done = step;
        progress.total = total;
        progress.stage = what;
        send_frames(pipe, {proto::encode(progress)});
      },
      control);
  done.code = static_cast<int>(outcome.status.code());
  // Errors name the file, as the broker's own refusals do.
  done.message = outcome.status.ok() || request->name.empty() ? outcome.status.message()
                                                              : request->name + ": " + outcome.status.message();
  done.stats = outcome.stats;
  if (outcome.status.ok()) reply.emplace_back(outcome.encoded.begin(), outcome.encoded.end());
  spdlog::info("job {} ({}): {} in {:.3f} s", request->job, request->name,
               outcome.status.ok() ? "done" : outcome.status.ToString(),
               done.stats.decode_seconds + done.stats.scatter_seconds + done.stats.compute_seconds +
                   done.stats.gather_seconds + done.stats.encode_seconds);
  return done;
}

}  // namespace

void serve_broker(Engine& engine, const ServiceOptions& options, const std::atomic<bool>& stop) {
  zmq::context_t context;
  BrokerLink link(context, {.broker = options.broker,
                            .hello = hello_for(engine, options.name),
                            .curve = options.curve,
                            .heartbeat = options.heartbeat});
  zmq::socket_t pipe(context, zmq::socket_type::pair);
  pipe.connect(link.pipe_endpoint());

  Frames frames;
  while (!stop.load()) {
    zmq::pollitem_t items[] = {{pipe.handle(), 0, ZMQ_POLLIN, 0}};
    poll_sockets(items, 1, std::chrono::milliseconds(100));
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    recv_frames(pipe, frames, 2, /*dontwait=*/false);
    Frames reply;
    proto::Done done = run_request(engine, pipe, link, options, frames, reply);
    reply.insert(reply.begin(), proto::encode(done));
    send_frames(pipe, reply);
  }
  spdlog::info("stopping: saying bye to the broker");
  send_frames(pipe, {proto::encode(proto::Bye{})});
}

}  // namespace imgq::workers
