// Broker mode of a worker group's leader: takes jobs from the broker one at
// a time through a BrokerLink, runs each on the whole group and sends back
// progress and the result, until `stop` is set (SIGTERM); then it finishes
// the job in hand and says bye, so the broker forgets the group at once.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "imgq/common/curve.h"
#include "imgq/common/image_header.h"
#include "imgq/mpi_workers/engine.h"

namespace imgq::workers {

struct ServiceOptions {
  std::string broker;  // the broker's workers endpoint
  std::string name;    // the group's name in events and metrics
  uint64_t max_pixels = kDefaultMaxPixels;  // refused before decode; 0 = no limit
  std::chrono::milliseconds heartbeat{1000};
  CurveOptions curve;  // off unless curve.server_public is set
};

void serve_broker(Engine& engine, const ServiceOptions& options, const std::atomic<bool>& stop);

}  // namespace imgq::workers
