// Broker mode of a worker group's leader: takes jobs from the broker through
// a BrokerLink and sends back progress and results, until `stop` is set
// (SIGTERM); then it finishes the jobs in hand and says bye, so the broker
// forgets the group at once.
//
// Two ways to run a job, chosen per image from its header:
//  - small images (at most `strip_above` pixels) run whole, one per rank,
//    several at once: the leader asks the broker for one slot per rank, runs
//    one image itself on a thread of its own and hands one to each idle
//    follower (whole_jobs.h). Decode and encode then run in parallel too,
//    and no rows cross between ranks;
//  - large images run in strips over every rank (engine.h), once the jobs in
//    hand are done, so a single large image still gets the whole group.
// Jobs start in the order they came. Both ways give the reference result.
//
// A local-files job (`path` and `output` in the job message) is read from
// and written to the group's own file system, under --allow-paths only, so
// its pixels never cross a socket.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "imgq/common/curve.h"
#include "imgq/common/image_header.h"
#include "imgq/mpi_workers/engine.h"
#include "imgq/mpi_workers/whole_jobs.h"
#include "imgq/schemas/messages.h"

namespace imgq::workers {

struct ServiceOptions {
  std::string broker;  // the broker's workers endpoint
  std::string name;    // the group's name in events and metrics
  uint64_t max_pixels = kDefaultMaxPixels;  // refused before decode; 0 = no limit
  // Images of more pixels run in strips; 0 = every image in strips, one job at a time.
  uint64_t strip_above = kDefaultStripAbove;
  std::chrono::milliseconds heartbeat = proto::kHeartbeatInterval;
  CurveOptions curve;  // off unless curve.server_public is set
  // Local-files jobs read and write only under these folders (canonical);
  // none: such jobs fail with a reason.
  std::vector<std::filesystem::path> allow_paths;
};

void serve_broker(Engine& engine, const ServiceOptions& options, const std::atomic<bool>& stop);

}  // namespace imgq::workers
