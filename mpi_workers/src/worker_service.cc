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

proto::Done run_request(Engine& engine, zmq::socket_t& pipe, const Frames& frames, Frames& reply) {
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
  JobOutcome outcome = run_job(
      engine, *pipeline, {reinterpret_cast<const uint8_t*>(image.data()), image.size()},
      request->format.empty() ? "png" : request->format, [&](int step, int total, const std::string& what) {
        proto::Progress progress;
        progress.job = request->job;
        progress.done = step;
        progress.total = total;
        progress.stage = what;
        send_frames(pipe, {proto::encode(progress)});
      });
  done.code = static_cast<int>(outcome.status.code());
  done.message = outcome.status.message();
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
  BrokerLink link(context, {.broker = options.broker, .hello = hello_for(engine, options.name)});
  zmq::socket_t pipe(context, zmq::socket_type::pair);
  pipe.connect(link.pipe_endpoint());

  Frames frames;
  while (!stop.load()) {
    zmq::pollitem_t items[] = {{pipe.handle(), 0, ZMQ_POLLIN, 0}};
    poll_sockets(items, 1, std::chrono::milliseconds(100));
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    recv_frames(pipe, frames, 2, /*dontwait=*/false);
    Frames reply;
    proto::Done done = run_request(engine, pipe, frames, reply);
    reply.insert(reply.begin(), proto::encode(done));
    send_frames(pipe, reply);
  }
  spdlog::info("stopping: saying bye to the broker");
  send_frames(pipe, {proto::encode(proto::Bye{})});
}

}  // namespace imgq::workers
