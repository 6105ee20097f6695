#include "imgq/mpi_workers/whole_jobs.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

#include "imgq/common/text.h"
#include "imgq/mpi_workers/rank_scheduler.h"
#include "imgq/schemas/op_call.h"

namespace imgq::workers {
namespace {

// Tags on the engine's communicator; its collectives never match them.
enum Tag : int { kJobHeader = 101, kJobImage = 102, kResultHeader = 103, kResultImage = 104 };

struct JobHeader {
  uint64_t ticket;
  uint64_t max_pixels;
  int64_t timeout_ms;
  uint64_t specs_bytes;
  uint64_t format_bytes;
  uint64_t image_bytes;
};

struct ResultHeader {
  uint64_t ticket;
  int32_t code;
  int32_t ranks;
  uint64_t message_bytes;
  uint64_t encoded_bytes;
  uint64_t pixels;
  double decode_seconds;
  double compute_seconds;
  double encode_seconds;
};

// A fixed header followed by variable parts, as one byte buffer.
template <typename Header>
std::string pack(const Header& header, std::initializer_list<std::string_view> parts) {
  std::string out(reinterpret_cast<const char*>(&header), sizeof header);
  for (std::string_view part : parts) out.append(part);
  return out;
}

std::string receive_bytes(MPI_Comm comm, int source, int tag) {
  MPI_Status status;
  MPI_Probe(source, tag, comm, &status);
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  std::string bytes(static_cast<size_t>(count), '\0');
  MPI_Recv(bytes.data(), count, MPI_BYTE, source, tag, comm, MPI_STATUS_IGNORE);
  return bytes;
}

// Sends without spinning: a blocking MPI_Send of a large buffer polls at
// full speed until the receiver posts its receive, which on a small machine
// takes a core from the ranks that compute. Tests and sleeps instead (10 us
// doubling to 200 us).
void send_bytes(MPI_Comm comm, int dest, int tag, std::string_view bytes) {
  MPI_Request request;
  MPI_Isend(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, dest, tag, comm, &request);
  int done = 0;
  auto pause = std::chrono::microseconds(10);
  while (MPI_Test(&request, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) {
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(200));
  }
}

}  // namespace

void send_whole_job(MPI_Comm comm, int rank, const WholeJob& job) {
  const JobHeader header{job.ticket, job.max_pixels, job.timeout_ms, job.specs.size(), job.format.size(),
                         job.image.size()};
  send_bytes(comm, rank, kJobHeader, pack(header, {job.specs, job.format}));
  send_bytes(comm, rank, kJobImage, job.image);
}

std::optional<WholeResult> receive_whole_result(MPI_Comm comm) {
  int waiting = 0;
  MPI_Status status;
  MPI_Iprobe(MPI_ANY_SOURCE, kResultHeader, comm, &waiting, &status);
  if (!waiting) return std::nullopt;
  const int rank = status.MPI_SOURCE;
  const std::string bytes = receive_bytes(comm, rank, kResultHeader);
  std::string encoded = receive_bytes(comm, rank, kResultImage);
  ResultHeader header;
  std::memcpy(&header, bytes.data(), sizeof header);
  WholeResult result;
  result.rank = rank;
  result.ticket = header.ticket;
  result.outcome.status = Status(static_cast<StatusCode>(header.code), bytes.substr(sizeof header));
  result.outcome.encoded.assign(encoded.begin(), encoded.end());
  result.outcome.stats.ranks = header.ranks;
  result.outcome.stats.pixels = header.pixels;
  result.outcome.stats.decode_seconds = header.decode_seconds;
  result.outcome.stats.compute_seconds = header.compute_seconds;
  result.outcome.stats.encode_seconds = header.encode_seconds;
  return result;
}

bool serve_whole_job(MPI_Comm comm) {
  int waiting = 0;
  MPI_Iprobe(0, kJobHeader, comm, &waiting, MPI_STATUS_IGNORE);
  if (!waiting) return false;
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  const std::string bytes = receive_bytes(comm, 0, kJobHeader);
  const std::string image = receive_bytes(comm, 0, kJobImage);
  JobHeader header;
  std::memcpy(&header, bytes.data(), sizeof header);
  const std::string specs = bytes.substr(sizeof header, header.specs_bytes);
  const std::string format = bytes.substr(sizeof header + header.specs_bytes, header.format_bytes);

  JobOutcome outcome;
  auto pipeline = schemas::parse_pipeline(split_lines(specs));
  if (!pipeline.ok()) {
    outcome.status = pipeline.status();
  } else {
    JobControl control;
    control.max_pixels = header.max_pixels;
    if (header.timeout_ms > 0) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(header.timeout_ms);
      control.interrupt = [deadline, rank]() -> Status {
        if (std::chrono::steady_clock::now() < deadline) return Status::Ok();
        return Status::DeadlineExceeded("the job ran past its timeout (on rank " + std::to_string(rank) + ")");
      };
    }
    outcome = run_whole_job(*pipeline, {reinterpret_cast<const uint8_t*>(image.data()), image.size()}, format,
                            rank, control);
    if (outcome.status.ok() && outcome.encoded.size() > kMaxWholeMessageBytes) {
      outcome.status = Status::ResourceExhausted("the encoded result (" + std::to_string(outcome.encoded.size()) +
                                                 " bytes) is too large for one MPI message; lower --strip-above");
      outcome.encoded.clear();
    }
  }
  const std::string& message = outcome.status.message();
  const ResultHeader result{header.ticket,
                            static_cast<int32_t>(outcome.status.code()),
                            1,
                            message.size(),
                            outcome.encoded.size(),
                            outcome.stats.pixels,
                            outcome.stats.decode_seconds,
                            outcome.stats.compute_seconds,
                            outcome.stats.encode_seconds};
  send_bytes(comm, 0, kResultHeader, pack(result, {message}));
  send_bytes(comm, 0, kResultImage,
             {reinterpret_cast<const char*>(outcome.encoded.data()), outcome.encoded.size()});
  return true;
}

bool runs_whole(const Engine& engine, std::span<const uint8_t> image, uint64_t strip_above) {
  return runs_whole(engine.size(), image.size(), read_image_header(image), strip_above, kMaxWholeMessageBytes);
}

}  // namespace imgq::workers
