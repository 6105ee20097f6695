// The imgq commands other than submit and ingest: jobs, status, cancel,
// fetch, watch, ops and ping. Each returns the process exit status
// (common/cli.h): 0 success, 1 a request failed (an unknown job, ...), 2
// usage error, 3 the broker does not answer (within kFirstContact for its
// first answer, --timeout later) or refused this key.
#pragma once

#include <csignal>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "imgq/client_cli/client.h"

namespace imgq::client {

struct Connection {
  std::string broker = kDefaultBroker;
  std::string progress;  // empty: the one the broker announces
  Millis timeout{10'000};
  bool json = false;
  bool color = false;
  size_t columns = 0;  // errors are wrapped at words to this width; 0: not wrapped
  CurveOptions curve;
};

// The job ids to act on: `given`, where "-" stands for the ids read from
// `in` (whitespace-separated, e.g. `imgq jobs -q --state failed | imgq
// status -`). InvalidArgument when there are none.
Result<std::vector<std::string>> job_ids(const std::vector<std::string>& given, std::istream& in);

// One line per job (--json: one object per job), in the order given.
int run_status(const Connection& c, const std::vector<std::string>& jobs, std::ostream& out, std::ostream& err);
int run_cancel(const Connection& c, const std::vector<std::string>& jobs, std::ostream& out, std::ostream& err);
// Writes each finished job's result into `out_dir` (named after its input,
// never replacing a different file unless `overwrite`) and acknowledges it,
// so the broker may forget it.
int run_fetch(const Connection& c, const std::vector<std::string>& jobs, const std::string& out_dir, bool overwrite,
              std::ostream& out, std::ostream& err);

// `imgq jobs`: the caller's jobs (every client's without CURVE or with an
// operator key), newest first. `ids_only`: one id a line, for pipes.
struct ListOptions {
  std::string state;
  uint32_t limit = 20;
  std::string before;
  bool ids_only = false;
};
int run_jobs(const Connection& c, const ListOptions& options, std::ostream& out, std::ostream& err);

// Prints progress events as they come: of one job until it ends (at once
// when it has ended already; exit 0 done, 1 failed or cancelled), or of
// every job until interrupted (`stop`). Exit 3 when the broker is silent for
// c.timeout.
int run_watch(const Connection& c, const std::string& job, const volatile std::sig_atomic_t& stop, std::ostream& out,
              std::ostream& err);
// The op catalogue as the broker gives it (`ops`); when the broker does not
// answer, the one built into this imgq, said on stderr.
int run_ops(const Connection& c, std::ostream& out, std::ostream& err);
// The broker's state and its groups by name.
int run_ping(const Connection& c, std::ostream& out, std::ostream& err);

}  // namespace imgq::client
