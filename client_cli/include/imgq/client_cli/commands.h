// The imgq commands other than submit: status, cancel, fetch, watch, ops and
// ping. Each returns the process exit status: 0 success, 1 the request
// failed (unknown job, ...), 2 usage error, 3 broker unreachable.
#pragma once

#include <csignal>
#include <ostream>
#include <string>

#include "imgq/client_cli/client.h"

namespace imgq::client {

struct Connection {
  std::string broker = kDefaultBroker;
  std::string progress;  // empty: default_progress_endpoint(broker)
  Millis timeout{10'000};
  bool json = false;
  CurveOptions curve;
};

int run_status(const Connection& c, const std::string& job, std::ostream& out, std::ostream& err);
int run_cancel(const Connection& c, const std::string& job, std::ostream& out, std::ostream& err);
// Writes a finished job's result into `out_dir` and acknowledges it, so the
// broker may forget it.
int run_fetch(const Connection& c, const std::string& job, const std::string& out_dir, std::ostream& out,
              std::ostream& err);
// Prints progress events as they come: of one job until it finishes, or of
// every job until interrupted (`stop`).
int run_watch(const Connection& c, const std::string& job, const volatile std::sig_atomic_t& stop, std::ostream& out);
// The op catalogue as the broker gives it (`ops`); when the broker does not
// answer within the timeout, the one built into this imgq, said on stderr.
int run_ops(const Connection& c, std::ostream& out, std::ostream& err);
int run_ping(const Connection& c, std::ostream& out, std::ostream& err);

}  // namespace imgq::client
