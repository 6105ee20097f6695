#include "imgq/mpi_workers/engine.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <cstdint>
#include <thread>
#include <sstream>
#include <string>

#include <opencv2/core/utility.hpp>

#include "imgq/common/text.h"
#include "imgq/mpi_workers/faults.h"
#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/png_strips.h"
#include "imgq/mpi_workers/split_ops.h"
#include "imgq/mpi_workers/strip_plan.h"

namespace imgq::workers {
namespace {

enum Command : int32_t { kRunJob = 1, kShutdown = 2 };

// What the leader broadcasts before each job. Followers work out everything
// else (types after each op, stage and strip plans) from it, the same way.
struct JobHeader {
  int32_t command = kShutdown;
  int32_t rows = 0;
  int32_t cols = 0;
  int32_t type = 0;
  int64_t spec_bytes = 0;
  int32_t source = 0;  // RowSource's index; its paths follow the specs in the same broadcast
  int32_t sink = 0;    // RowSink's index
  int64_t input_path_bytes = 0;
  int64_t output_path_bytes = 0;
  uint64_t input_offset = 0;  // PnmFileSource
  double decode_ratio = 0;    // StreamedSource
  uint64_t band_bytes = 0;
  uint64_t tiff_input_bytes = 0;    // TiffSource: its bytes are broadcast after the specs
  int32_t tiff_rows_per_strip = 0;  // or the tiles' height
  int32_t tiff_tile_cols = 0;       // a tiled input
};

constexpr int kStreamTag = 202;  // apart from whole_jobs.h's tags and the PNG segments

// One image row as an MPI datatype: counts are in rows, so images of more
// than 2^31 bytes still fit MPI's int counts.
class RowType {
 public:
  RowType(int cols, int type) {
    const size_t bytes = static_cast<size_t>(cols) * CV_ELEM_SIZE(type);
    MPI_Type_contiguous(static_cast<int>(bytes), MPI_BYTE, &type_);
    MPI_Type_commit(&type_);
  }
  ~RowType() { MPI_Type_free(&type_); }
  RowType(const RowType&) = delete;
  RowType& operator=(const RowType&) = delete;
  MPI_Datatype get() const { return type_; }

 private:
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
};

// Broadcasts the job header. Followers wait for it without spinning: an idle
// group must not keep every core busy in MPI's polling, so they test a
// non-blocking broadcast and sleep between tests (50 us doubling to 1 ms,
// which bounds the added start-up latency of a job). Between tests they do
// `idle` work (a whole image sent point to point) when there is some.
void broadcast_header(JobHeader& header, MPI_Comm comm, bool leader, const IdleWork& idle = {}) {
  MPI_Request request;
  MPI_Ibcast(&header, sizeof header, MPI_BYTE, 0, comm, &request);
  if (leader) {
    MPI_Wait(&request, MPI_STATUS_IGNORE);
    return;
  }
  int done = 0;
  auto pause = std::chrono::microseconds(50);
  while (MPI_Test(&request, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) {
    if (idle && idle()) {
      pause = std::chrono::microseconds(50);
      continue;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(1000));
  }
}

std::string join_specs(const Pipeline& pipeline) {
  std::string out;
  for (const std::string& spec : schemas::pipeline_to_specs(pipeline)) out += spec + '\n';
  return out;
}

// Converts what OpenCV and the allocator throw into a Status (or a Result
// holding one, as `f` returns).
template <typename F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const cv::Exception& e) {
    return Status::Internal(std::string("OpenCV failed: ") + e.what());
  } catch (const std::bad_alloc&) {
    return Status::ResourceExhausted("out of memory");
  }
}

// The image's kind before each op: infos[k] is the input of op k and
// infos[pipeline.size()] the result.
Result<std::vector<ImageInfo>> infos_along(const Pipeline& pipeline, const ImageInfo& input) {
  std::vector<ImageInfo> infos{input};
  for (size_t i = 0; i < pipeline.size(); ++i) {
    auto next = check_op(pipeline[i], infos.back());
    if (!next.ok()) return next.status().WithContext("op " + std::to_string(i + 1));
    infos.push_back(*next);
  }
  return infos;
}

}  // namespace

FilesFit files_fit(const Pipeline& pipeline) {
  const std::vector<Stage> stages = plan_stages(pipeline);
  if (stages.empty()) return {};
  return {.input = !stages.front().on_leader,
          .output = !stages.back().on_leader && stages.back().finish != Distribution::kCanny};
}

Engine::Engine(MPI_Comm comm) {
  MPI_Comm_dup(comm, &comm_);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  // The ranks are the parallelism; OpenCV's own threads would oversubscribe.
  cv::setNumThreads(1);
}

Engine::~Engine() {
  if (is_leader()) shutdown();
  MPI_Comm_free(&comm_);
}

void Engine::shutdown() {
  if (!is_leader() || shut_down_) return;
  JobHeader header;
  header.command = kShutdown;
  broadcast_header(header, comm_, true);
  shut_down_ = true;
}

Status Engine::agree(const Status& local) {
  int mine = local.ok() ? size_ : rank_;
  int first = size_;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm_);
  if (first == size_) return Status::Ok();
  // The first failing rank tells everyone what went wrong.
  int code = static_cast<int>(local.code());
  std::string message = local.message();
  int length = static_cast<int>(message.size());
  MPI_Bcast(&code, 1, MPI_INT, first, comm_);
  MPI_Bcast(&length, 1, MPI_INT, first, comm_);
  message.resize(static_cast<size_t>(length));
  MPI_Bcast(message.data(), length, MPI_CHAR, first, comm_);
  Status status(static_cast<StatusCode>(code), message);
  return first == 0 ? status : status.WithContext("rank " + std::to_string(first));
}

namespace {

ImageInfo info_of(const RowSource& source) {
  if (const auto* streamed = std::get_if<StreamedSource>(&source)) return streamed->decoder->info();
  if (const auto* tiff = std::get_if<TiffSource>(&source)) {
    return ImageInfo::of_type(tiff->layout.rows, tiff->layout.cols, tiff->layout.type);
  }
  if (const auto* pnm = std::get_if<PnmFileSource>(&source)) {
    return ImageInfo::of_type(pnm->layout.rows, pnm->layout.cols, pnm->layout.type);
  }
  return ImageInfo::of(std::get<ImageSource>(source).image);
}

// A follower's copy of the leader's source and sink, from the job header
// and the paths after the specs.
struct FollowerRun {
  RowSource source;
  RowSink sink;
  std::vector<uint8_t> unused;  // a follower's segment or strips go to the leader
};

}  // namespace

Result<cv::Mat> Engine::run(const Pipeline& pipeline, const RowSource& source, const RowSink& sink,
                            const RunHooks& hooks) {
  if (!is_leader() || shut_down_) return Status::Internal("Engine::run called off the leader");
  if (const auto* s = std::get_if<StreamedSource>(&source); s != nullptr && s->decoder == nullptr) {
    return Status::Internal("Engine::run: a streamed source without a decoder");
  }
  const ImageInfo info = info_of(source);
  IMGQ_ASSIGN_OR_RETURN(const ImageInfo result, check_pipeline(pipeline, info));
  const FilesFit fit = files_fit(pipeline);
  if ((!std::holds_alternative<ImageSource>(source) && !fit.input) ||
      (!std::holds_alternative<GatherSink>(sink) && !fit.output)) {
    return Status::Internal("Engine::run: this pipeline cannot take its rows from this source or give them "
                            "to this sink");
  }
  if ((std::holds_alternative<PngSink>(sink) && !can_store_type("png", result.type())) ||
      (std::holds_alternative<TiffSink>(sink) && !can_store_type("tif", result.type()))) {
    return Status::Internal("Engine::run: the sink's format cannot hold this result");
  }

  std::string specs = join_specs(pipeline);
  JobHeader header{.command = kRunJob,
                   .rows = info.rows,
                   .cols = info.cols,
                   .type = info.type(),
                   .spec_bytes = static_cast<int64_t>(specs.size()),
                   .source = static_cast<int32_t>(source.index()),
                   .sink = static_cast<int32_t>(sink.index())};
  std::string paths;
  if (const auto* streamed = std::get_if<StreamedSource>(&source)) {
    header.decode_ratio = streamed->decode_ratio;
    header.band_bytes = streamed->band_bytes;
  } else if (const auto* tiff = std::get_if<TiffSource>(&source)) {
    header.tiff_input_bytes = tiff->bytes.size();
    header.tiff_rows_per_strip = tiff->layout.rows_per_strip;
    header.tiff_tile_cols = tiff->layout.tile_cols;
  } else if (const auto* pnm = std::get_if<PnmFileSource>(&source)) {
    header.input_offset = pnm->layout.data_offset;
    header.input_path_bytes = static_cast<int64_t>(pnm->path.size());
    paths += pnm->path;
  }
  if (const auto* pnm = std::get_if<PnmFileSink>(&sink)) {
    header.output_path_bytes = static_cast<int64_t>(pnm->path.size());
    paths += pnm->path;
  }
  broadcast_header(header, comm_, true);
  specs += paths;
  MPI_Bcast(specs.data(), static_cast<int>(specs.size()), MPI_CHAR, 0, comm_);
  IMGQ_RETURN_IF_ERROR(agree(Status::Ok()));  // every follower parsed the pipeline
  if (const auto* tiff = std::get_if<TiffSource>(&source)) {
    broadcast_bytes(const_cast<uint8_t*>(tiff->bytes.data()), tiff->bytes.size());
  }

  const cv::Mat& image = std::holds_alternative<ImageSource>(source) ? std::get<ImageSource>(source).image : cv::Mat();
  const cv::Mat input = image.isContinuous() ? image : image.clone();
  if (hooks.stats != nullptr) *hooks.stats = RunStats{.rank_compute_seconds = std::vector<double>(size_, 0.0)};
  source_ = &source;
  sink_ = &sink;
  auto ran = execute(pipeline, info, input, hooks);
  source_ = nullptr;
  sink_ = nullptr;
  return ran;
}

void Engine::serve(const IdleWork& idle) {
  while (!is_leader()) {
    JobHeader header;
    broadcast_header(header, comm_, false, idle);
    if (header.command != kRunJob) return;
    std::string specs(static_cast<size_t>(header.spec_bytes + header.input_path_bytes + header.output_path_bytes),
                      '\0');
    MPI_Bcast(specs.data(), static_cast<int>(specs.size()), MPI_CHAR, 0, comm_);
    const std::string input = specs.substr(static_cast<size_t>(header.spec_bytes),
                                           static_cast<size_t>(header.input_path_bytes));
    const std::string output = specs.substr(static_cast<size_t>(header.spec_bytes + header.input_path_bytes));
    specs.resize(static_cast<size_t>(header.spec_bytes));
    auto pipeline = schemas::parse_pipeline(split_lines(specs));
    if (!agree(pipeline.status()).ok()) continue;
    const ImageInfo info = ImageInfo::of_type(header.rows, header.cols, header.type);
    FollowerRun run;
    switch (header.source) {
      case 1:
        run.source = StreamedSource{.decoder = nullptr, .decode_ratio = header.decode_ratio,
                                    .band_bytes = header.band_bytes};
        break;
      case 2:
        tiff_copy_.resize(header.tiff_input_bytes);
        broadcast_bytes(tiff_copy_.data(), tiff_copy_.size());
        run.source = TiffSource{tiff_copy_, {header.rows, header.cols, header.type, header.tiff_rows_per_strip,
                                             header.tiff_tile_cols}};
        break;
      case 3:
        run.source = PnmFileSource{input, {header.rows, header.cols, header.type, header.input_offset}};
        break;
      default:
        break;
    }
    switch (header.sink) {
      case 1:
        run.sink = PngSink{&run.unused};
        break;
      case 2:
        run.sink = TiffSink{&run.unused};
        break;
      case 3:
        run.sink = PnmFileSink{output};
        break;
      default:
        break;
    }
    source_ = &run.source;
    sink_ = &run.sink;
    (void)execute(*pipeline, info, cv::Mat(), {});
    source_ = nullptr;
    sink_ = nullptr;
    tiff_copy_ = {};
    tiff_copy_.shrink_to_fit();
  }
}

Result<cv::Mat> Engine::execute(const Pipeline& pipeline, ImageInfo info, cv::Mat current, const RunHooks& hooks) {
  RunStats* stats = hooks.stats;
  auto infos = infos_along(pipeline, info);
  IMGQ_RETURN_IF_ERROR(agree(infos.status()));

  const std::vector<Stage> stages = plan_stages(pipeline);
  for (size_t s = 0; s < stages.size(); ++s) {
    const Stage& stage = stages[s];
    // A stage boundary: the leader may stop the job here (cancel, deadline).
    IMGQ_RETURN_IF_ERROR(agree(is_leader() && hooks.interrupt ? hooks.interrupt() : Status::Ok()));
    if (stage.on_leader) {
      Status status;
      if (is_leader()) {
        const double t0 = MPI_Wtime();
        auto next = apply_op(pipeline[static_cast<size_t>(stage.first_op)], current);
        if (next.ok()) current = std::move(next).value();
        status = next.status();
        if (stats != nullptr) stats->compute_seconds += MPI_Wtime() - t0;
      }
      IMGQ_RETURN_IF_ERROR(agree(status));
    } else {
      const bool from_source = s == 0 && !std::holds_alternative<ImageSource>(*source_);
      const bool to_sink = s + 1 == stages.size() && !std::holds_alternative<GatherSink>(*sink_);
      IMGQ_ASSIGN_OR_RETURN(current, run_strip_stage(pipeline, stage, *infos, current, stats, from_source, to_sink));
    }
    if (stats != nullptr) stats->stages = static_cast<int>(s + 1);
    if (hooks.on_stage && is_leader()) hooks.on_stage(static_cast<int>(s + 1), static_cast<int>(stages.size()));
  }
  if (!is_leader()) return cv::Mat();
  return stages.empty() ? current.clone() : current;
}

// One stage in strips: scatter each rank its rows and halo, compute the
// stage on them, gather the rows each rank owns; collective, every step
// agreed by all ranks before the next.
Result<cv::Mat> Engine::run_strip_stage(const Pipeline& pipeline, const Stage& stage,
                                        const std::vector<ImageInfo>& infos, const cv::Mat& current,
                                        RunStats* stats, bool from_source, bool to_sink) {
  const ImageInfo& in = infos[static_cast<size_t>(stage.first_op)];
  const ImageInfo& out = infos[static_cast<size_t>(stage.end_op)];
  const auto* streamed_from = from_source ? std::get_if<StreamedSource>(source_) : nullptr;
  const bool streamed = streamed_from != nullptr;
  // Streamed, a stage of local ops is computed as its rows arrive.
  const bool pipelined = streamed && stage.finish == Distribution::kLocal;
  std::vector<Strip> strips =
      streamed ? plan_streamed_strips(in.rows, size_, stage.halo, streamed_from->decode_ratio, pipelined)
               : plan_strips(in.rows, size_, stage.halo);
  // TIFF on every rank: each rank's rows are whole strips of the file.
  if (to_sink && std::holds_alternative<TiffSink>(*sink_)) {
    align_strips(strips, in.rows, stage.halo, tiff_rows_per_strip(out.rows, out.cols, out.type()));
  }

  const double t0 = MPI_Wtime();
  const double decoded_before = stats != nullptr ? stats->decode_seconds : 0;
  Status pending;
  cv::Mat own;
  std::unique_ptr<PngDeflater> deflater;
  double t1 = 0, compute = 0;
  if (pipelined) {
    // Scatter and compute at once, a chunk at a time.
    if (to_sink && std::holds_alternative<PngSink>(*sink_)) deflater = std::make_unique<PngDeflater>();
    const Status computed =
        stream_local_stage(pipeline, stage, strips, in, out, deflater.get(), own, pending, compute, stats);
    t1 = MPI_Wtime();
    IMGQ_RETURN_IF_ERROR(agree(pending.ok() ? computed : pending));
  } else {
    IMGQ_ASSIGN_OR_RETURN(cv::Mat buffer, scatter_strips(strips, in, current, from_source, pending, stats));
    t1 = MPI_Wtime();
    IMGQ_ASSIGN_OR_RETURN(own, compute_strip(pipeline, stage, strips, out, std::move(buffer), pending));
    compute = MPI_Wtime() - t1;
  }
  const double decoding = stats != nullptr ? stats->decode_seconds - decoded_before : 0;
  const double t2 = MPI_Wtime();
  const double encoded_before = stats != nullptr ? stats->encode_seconds : 0;
  IMGQ_ASSIGN_OR_RETURN(cv::Mat result, gather_strips(strips, out, std::move(own), to_sink, stats, deflater.get()));
  const double t3 = MPI_Wtime();
  // PNG on every rank: the encoding is counted as encode, not gather.
  const double encoding = stats != nullptr ? stats->encode_seconds - encoded_before : 0;

  if (is_leader() && stage.finish == Distribution::kCanny) {
    std::vector<int> boundaries;
    for (const int r : row_order(strips)) boundaries.push_back(strips[static_cast<size_t>(r)].begin);
    boundaries.erase(boundaries.begin());  // row 0
    canny_link_across(result, boundaries);
    canny_finish(result);
  }

  std::vector<double> per_rank(is_leader() ? strips.size() : 0);
  MPI_Gather(&compute, 1, MPI_DOUBLE, per_rank.data(), 1, MPI_DOUBLE, 0, comm_);
  if (stats != nullptr) {
    // Pipelined, the leader's compute falls within the scatter's time.
    stats->scatter_seconds += std::max(0.0, t1 - t0 - decoding - (pipelined ? compute : 0));
    stats->compute_seconds += compute + (MPI_Wtime() - t3);
    stats->gather_seconds += t3 - t2 - encoding;
    for (size_t i = 0; i < per_rank.size(); ++i) stats->rank_compute_seconds[i] += per_rank[i];
  }
  return result;
}

// Scatter: each rank gets its rows and their halo, from the leader's image
// or read from the file by itself. Halos overlap, so some rows are sent to
// two ranks; MPICH's Scatterv sends each rank its range independently, and
// the tests check the result at every boundary.
Result<cv::Mat> Engine::scatter_strips(const std::vector<Strip>& strips, const ImageInfo& in, const cv::Mat& current,
                                       bool from_source, Status& pending, RunStats* stats) {
  const Strip& mine = strips[static_cast<size_t>(rank_)];
  fault_point("scatter", rank_);
  if (from_source && std::holds_alternative<StreamedSource>(*source_)) {
    cv::Mat buffer;
    stream_rows(strips, in, buffer, pending, stats, {});
    return buffer;
  }
  cv::Mat buffer(mine.buf_rows(), in.cols, in.type());
  if (const auto* tiff = from_source ? std::get_if<TiffSource>(source_) : nullptr) {
    // Each rank decodes the strips holding its rows (and halo).
    auto rows = guarded([&] { return read_tiff_rows(tiff->bytes, tiff->layout, mine.buf_begin, mine.buf_rows()); });
    if (rows.ok()) buffer = std::move(rows).value();
    IMGQ_RETURN_IF_ERROR(agree(rows.status()));
    return buffer;
  }
  if (const auto* pnm = from_source ? std::get_if<PnmFileSource>(source_) : nullptr) {
    auto rows = read_pnm_rows(pnm->path, pnm->layout, mine.buf_begin, mine.buf_rows());
    if (rows.ok()) buffer = std::move(rows).value();
    IMGQ_RETURN_IF_ERROR(agree(rows.status()));
    return buffer;
  }
  std::vector<int> counts(strips.size()), displs(strips.size());
  for (size_t i = 0; i < strips.size(); ++i) {
    counts[i] = strips[i].buf_rows();
    displs[i] = strips[i].buf_begin;
  }
  const RowType in_row(in.cols, in.type());
  MPI_Scatterv(is_leader() ? current.data : nullptr, counts.data(), displs.data(), in_row.get(), buffer.data,
               mine.buf_rows(), in_row.get(), 0, comm_);
  return buffer;
}

// A streamed first stage's rows: the leader decodes band after band and
// sends each follower the rows of its buffer within the band (followers
// hold the first rows, plan_streamed_strips()). Every rank knows the bands
// from the image's size alone. Followers post every band's receive at once
// and the leader's sends do not wait, so the leader never stops decoding
// for a follower busy with its rows; `on_rows(to)` runs on each rank as its
// buffer's rows up to `to` (exclusive, in image rows) arrive. After a decode
// error the leader stops decoding but still sends every band, so no rank
// waits for rows that never come; `pending` holds the error, to be agreed
// after the compute.
void Engine::stream_rows(const std::vector<Strip>& strips, const ImageInfo& in, cv::Mat& buffer, Status& pending,
                         RunStats* stats, const std::function<void(int)>& on_rows) {
  const Strip& mine = strips[static_cast<size_t>(rank_)];
  const StreamedSource& source = std::get<StreamedSource>(*source_);
  buffer.create(mine.buf_rows(), in.cols, in.type());
  const size_t row_bytes = static_cast<size_t>(in.cols) * CV_ELEM_SIZE(in.type());
  const int band = static_cast<int>(std::clamp<size_t>(source.band_bytes / std::max<size_t>(row_bytes, 1), 1,
                                                       static_cast<size_t>(std::max(in.rows, 1))));
  const RowType row(in.cols, in.type());
  // The rows [y, y + n) of the band that rank r's buffer holds.
  auto overlap = [&](int r, int y, int n) {
    const Strip& s = strips[static_cast<size_t>(r)];
    return std::make_pair(std::max(y, s.buf_begin), std::min(y + n, s.buf_end));
  };
  if (!is_leader()) {
    std::vector<MPI_Request> requests;
    std::vector<int> ends;
    for (int y = 0; y < in.rows; y += band) {
      const auto [lo, hi] = overlap(rank_, y, std::min(band, in.rows - y));
      if (lo >= hi) continue;
      requests.emplace_back();
      ends.push_back(hi);
      MPI_Irecv(buffer.ptr(lo - mine.buf_begin), hi - lo, row.get(), 0, kStreamTag, comm_, &requests.back());
    }
    for (size_t i = 0; i < requests.size(); ++i) {
      MPI_Wait(&requests[i], MPI_STATUS_IGNORE);
      if (on_rows) on_rows(ends[i]);
    }
    if (requests.empty() && on_rows) on_rows(mine.buf_end);
    return;
  }
  // Bands on their way to followers, kept until MPI is done with them.
  struct InFlight {
    cv::Mat rows;
    std::vector<MPI_Request> requests;
  };
  std::deque<InFlight> in_flight;
  double decoding = 0;
  for (int y = 0; y < in.rows; y += band) {
    const int n = std::min(band, in.rows - y);
    // Straight into the leader's own buffer when the band lies within it.
    const bool inside = y >= mine.buf_begin && y + n <= mine.buf_end;
    InFlight sending;
    sending.rows = inside ? buffer.rowRange(y - mine.buf_begin, y - mine.buf_begin + n)
                          : cv::Mat(n, in.cols, in.type());
    if (pending.ok()) {
      const double t0 = MPI_Wtime();
      pending = guarded([&] { return source.decoder->read(sending.rows); });
      decoding += MPI_Wtime() - t0;
    }
    for (int r = 1; r < size_; ++r) {
      const auto [lo, hi] = overlap(r, y, n);
      if (lo >= hi) continue;
      sending.requests.emplace_back();
      MPI_Isend(sending.rows.ptr(lo - y), hi - lo, row.get(), r, kStreamTag, comm_, &sending.requests.back());
    }
    if (!inside) {
      const auto [lo, hi] = overlap(0, y, n);
      if (lo < hi) {
        sending.rows.rowRange(lo - y, hi - y).copyTo(buffer.rowRange(lo - mine.buf_begin, hi - mine.buf_begin));
      }
    }
    if (!sending.requests.empty()) in_flight.push_back(std::move(sending));
    while (!in_flight.empty()) {
      int sent = 0;
      auto& front = in_flight.front().requests;
      MPI_Testall(static_cast<int>(front.size()), front.data(), &sent, MPI_STATUSES_IGNORE);
      if (sent == 0) break;
      in_flight.pop_front();
    }
    if (on_rows && y + n > mine.buf_begin) on_rows(std::min(y + n, mine.buf_end));
  }
  for (InFlight& f : in_flight) {
    MPI_Waitall(static_cast<int>(f.requests.size()), f.requests.data(), MPI_STATUSES_IGNORE);
  }
  if (mine.buf_rows() == 0 && on_rows) on_rows(mine.buf_end);
  if (stats != nullptr) stats->decode_seconds += decoding;
}

// A streamed first stage of local ops only, pipelined: each rank computes
// its rows a chunk at a time, as soon as the chunk's input (its rows and
// `halo` rows each side, within the strip's buffer) has arrived, so a
// follower works while the leader still decodes the rows after its own.
// Chunks are cut where the rows run out, and each is computed on a copy of
// its input (never a submatrix, whose parent OpenCV would read past the
// border): a chunk is a strip, and gives the rows the whole image gives.
// The rows go into `own`, or with `deflater` straight into this rank's PNG
// segment. Returns this rank's compute status (not yet agreed).
Status Engine::stream_local_stage(const Pipeline& pipeline, const Stage& stage, const std::vector<Strip>& strips,
                                  const ImageInfo& in, const ImageInfo& out, PngDeflater* deflater, cv::Mat& own,
                                  Status& pending, double& computing, RunStats* stats) {
  const Strip& mine = strips[static_cast<size_t>(rank_)];
  if (deflater == nullptr) own = cv::Mat(mine.rows(), out.cols, out.type());
  fault_point("scatter", rank_);
  fault_point("compute", rank_);
  cv::Mat buffer;
  int done = mine.begin;  // own rows computed so far
  Status status;
  auto compute_ready = [&](int ready_to) {
    while (status.ok() && pending.ok() && done < mine.end) {
      const int end = ready_to >= mine.buf_end ? mine.end : std::min(mine.end, ready_to - stage.halo);
      if (end <= done) return;
      const double t0 = MPI_Wtime();
      status = guarded([&]() -> Status {
        const int from = std::max(mine.buf_begin, done - stage.halo);
        const int to = std::min(mine.buf_end, end + stage.halo);
        cv::Mat chunk = buffer.rowRange(from - mine.buf_begin, to - mine.buf_begin).clone();
        for (int k = stage.first_op; k < stage.end_op; ++k) {
          IMGQ_ASSIGN_OR_RETURN(chunk, apply_op(pipeline[static_cast<size_t>(k)], chunk));
        }
        const cv::Mat rows = chunk.rowRange(done - from, end - from);
        if (deflater != nullptr) return deflater->add(rows);
        rows.copyTo(own.rowRange(done - mine.begin, end - mine.begin));
        return Status::Ok();
      });
      computing += MPI_Wtime() - t0;
      done = end;
    }
  };
  stream_rows(strips, in, buffer, pending, stats, compute_ready);
  return status;
}

// Compute: the stage's local ops on the whole buffer (a fresh Mat, never a
// submatrix), then this strip's part of the stage's global op (for
// equalisation, with the histogram of every strip). The rows this rank owns.
Result<cv::Mat> Engine::compute_strip(const Pipeline& pipeline, const Stage& stage, const std::vector<Strip>& strips,
                                      const ImageInfo& out, cv::Mat buffer, const Status& pending) {
  const Strip& mine = strips[static_cast<size_t>(rank_)];
  cv::Mat own;
  EqualizeStrip equalize;
  const int last_local = stage.finish == Distribution::kLocal ? stage.end_op : stage.end_op - 1;
  fault_point("compute", rank_);
  Status status = guarded([&]() -> Status {
    if (!pending.ok()) return pending;  // the leader's decode failed: nothing to compute
    if (mine.rows() == 0) {
      own = cv::Mat(0, out.cols, out.type());
      return Status::Ok();
    }
    for (int k = stage.first_op; k < last_local; ++k) {
      IMGQ_ASSIGN_OR_RETURN(buffer, apply_op(pipeline[static_cast<size_t>(k)], buffer));
    }
    const cv::Range own_rows(mine.begin - mine.buf_begin, mine.end - mine.buf_begin);
    switch (stage.finish) {
      case Distribution::kEqualizeHist:
        equalize = equalize_prepare(buffer.rowRange(own_rows));
        break;
      case Distribution::kCanny:
        own = canny_classify(buffer, pipeline[static_cast<size_t>(last_local)]).rowRange(own_rows).clone();
        canny_link(own);
        break;
      default:
        own = buffer.rowRange(own_rows);
        break;
    }
    return Status::Ok();
  });
  IMGQ_RETURN_IF_ERROR(agree(status));
  if (stage.finish != Distribution::kEqualizeHist) return own;

  const Histogram local = mine.rows() > 0 ? equalize_histogram(equalize) : Histogram{};
  Histogram whole{};
  MPI_Allreduce(local.data(), whole.data(), 256, MPI_INT64_T, MPI_SUM, comm_);
  if (mine.rows() > 0) {
    status = guarded([&]() -> Status {
      own = equalize_finish(equalize, whole);
      return Status::Ok();
    });
  }
  IMGQ_RETURN_IF_ERROR(agree(status));
  return own;
}

// Gather: the strips' own rows into the leader's result, or each rank
// writing its own rows into the output file (then nothing is gathered).
Result<cv::Mat> Engine::gather_strips(const std::vector<Strip>& strips, const ImageInfo& out, cv::Mat own,
                                      bool to_sink, RunStats* stats, PngDeflater* fed) {
  const Strip& mine = strips[static_cast<size_t>(rank_)];
  cv::Mat result;
  fault_point("gather", rank_);
  if (const auto* tiff = to_sink ? std::get_if<TiffSink>(sink_) : nullptr) {
    IMGQ_RETURN_IF_ERROR(encode_tiff_strips(strips, out, own, tiff->bytes, stats));
    return result;
  }
  if (const auto* png = to_sink ? std::get_if<PngSink>(sink_) : nullptr) {
    IMGQ_RETURN_IF_ERROR(encode_png_strips(strips, out, own, png->bytes, stats, fed));
    return result;
  }
  if (!own.isContinuous()) own = own.clone();
  if (const auto* pnm = to_sink ? std::get_if<PnmFileSink>(sink_) : nullptr) {
    const Status written = write_pnm_rows(pnm->path, pnm_layout_for(out.rows, out.cols, out.type()), mine.begin, own);
    IMGQ_RETURN_IF_ERROR(agree(written));
    return result;
  }
  std::vector<int> counts(strips.size()), displs(strips.size());
  for (size_t i = 0; i < strips.size(); ++i) {
    counts[i] = strips[i].rows();
    displs[i] = strips[i].begin;
  }
  if (is_leader()) result.create(out.rows, out.cols, out.type());
  const RowType out_row(out.cols, out.type());
  MPI_Gatherv(own.data, mine.rows(), out_row.get(), result.data, counts.data(), displs.data(), out_row.get(), 0,
              comm_);
  return result;
}

// Each rank deflates its own rows into one segment of the stream (the
// last rank's ends it); the leader receives the segments in rank order,
// point to point and in pieces (a segment may pass MPI's int counts), and
// stitches the file.
Status Engine::encode_png_strips(const std::vector<Strip>& strips, const ImageInfo& out, const cv::Mat& own,
                                 std::vector<uint8_t>* into, RunStats* stats, PngDeflater* fed) {
  const double t0 = MPI_Wtime();
  const std::vector<int> order = row_order(strips);  // the segments' order in the stream
  fault_point("encode", rank_);
  Result<PngSegment> segment = Status::Internal("not encoded");
  const Status deflated = guarded([&]() -> Status {
    segment = fed != nullptr ? fed->finish(rank_ == order.back()) : deflate_png_rows(own, rank_ == order.back());
    return segment.status();
  });
  IMGQ_RETURN_IF_ERROR(agree(deflated));
  constexpr int kSegmentTag = 201;  // apart from whole_jobs.h's tags
  constexpr size_t kPiece = size_t{1} << 30;
  uint64_t meta[3] = {segment->deflated.size(), segment->adler, segment->raw_bytes};
  std::vector<uint64_t> all(is_leader() ? 3 * static_cast<size_t>(size_) : 0);
  MPI_Gather(meta, 3, MPI_UINT64_T, all.data(), 3, MPI_UINT64_T, 0, comm_);
  if (!is_leader()) {
    const std::string& bytes = segment->deflated;
    for (size_t at = 0; at < bytes.size(); at += kPiece) {
      MPI_Send(bytes.data() + at, static_cast<int>(std::min(kPiece, bytes.size() - at)), MPI_BYTE, 0, kSegmentTag,
               comm_);
    }
    return Status::Ok();
  }
  std::vector<PngSegment> segments(static_cast<size_t>(size_));
  segments[0] = std::move(segment).value();
  for (int r = 1; r < size_; ++r) {
    PngSegment& s = segments[static_cast<size_t>(r)];
    const size_t i = 3 * static_cast<size_t>(r);
    s.deflated.resize(all[i]);
    s.adler = static_cast<uint32_t>(all[i + 1]);
    s.raw_bytes = all[i + 2];
    for (size_t at = 0; at < s.deflated.size(); at += kPiece) {
      MPI_Recv(s.deflated.data() + at, static_cast<int>(std::min(kPiece, s.deflated.size() - at)), MPI_BYTE, r,
               kSegmentTag, comm_, MPI_STATUS_IGNORE);
    }
  }
  std::vector<PngSegment> in_order;
  for (const int r : order) in_order.push_back(std::move(segments[static_cast<size_t>(r)]));
  *into = assemble_png(out.rows, out.cols, out.type(), in_order);
  if (stats != nullptr) stats->encode_seconds += MPI_Wtime() - t0;
  return Status::Ok();
}

}  // namespace imgq::workers

namespace imgq::workers {

void Engine::broadcast_bytes(uint8_t* data, uint64_t size) {
  constexpr uint64_t kPiece = uint64_t{1} << 30;
  for (uint64_t at = 0; at < size; at += kPiece) {
    MPI_Bcast(data + at, static_cast<int>(std::min(kPiece, size - at)), MPI_BYTE, 0, comm_);
  }
}

// Each rank encodes its rows (whole strips of the file, align_strips()) as
// TIFF strips; the leader receives each rank's strips in the rows' order,
// point to point and in pieces, and lays out the file.
Status Engine::encode_tiff_strips(const std::vector<Strip>& strips, const ImageInfo& out, const cv::Mat& own,
                                  std::vector<uint8_t>* into, RunStats* stats) {
  const double t0 = MPI_Wtime();
  fault_point("encode", rank_);
  const int per_strip = tiff_rows_per_strip(out.rows, out.cols, out.type());
  Result<TiffStrips> mine = Status::Internal("not encoded");
  const Status encoded = guarded([&]() -> Status {
    mine = encode_tiff_rows(own.isContinuous() ? own : own.clone(), per_strip);
    return mine.status();
  });
  IMGQ_RETURN_IF_ERROR(agree(encoded));
  constexpr int kStripsTag = 203;  // apart from whole_jobs.h's tags and the PNG segments
  constexpr size_t kPiece = size_t{1} << 30;
  uint64_t meta[2] = {mine->sizes.size(), mine->data.size()};
  std::vector<uint64_t> all(is_leader() ? 2 * static_cast<size_t>(size_) : 0);
  MPI_Gather(meta, 2, MPI_UINT64_T, all.data(), 2, MPI_UINT64_T, 0, comm_);
  if (!is_leader()) {
    MPI_Send(mine->sizes.data(), static_cast<int>(mine->sizes.size()), MPI_UINT64_T, 0, kStripsTag, comm_);
    for (size_t at = 0; at < mine->data.size(); at += kPiece) {
      MPI_Send(mine->data.data() + at, static_cast<int>(std::min(kPiece, mine->data.size() - at)), MPI_BYTE, 0,
               kStripsTag, comm_);
    }
    return Status::Ok();
  }
  std::vector<TiffStrips> parts(static_cast<size_t>(size_));
  parts[0] = std::move(mine).value();
  for (int r = 1; r < size_; ++r) {
    TiffStrips& p = parts[static_cast<size_t>(r)];
    p.sizes.resize(all[2 * static_cast<size_t>(r)]);
    p.data.resize(all[2 * static_cast<size_t>(r) + 1]);
    MPI_Recv(p.sizes.data(), static_cast<int>(p.sizes.size()), MPI_UINT64_T, r, kStripsTag, comm_, MPI_STATUS_IGNORE);
    for (size_t at = 0; at < p.data.size(); at += kPiece) {
      MPI_Recv(p.data.data() + at, static_cast<int>(std::min(kPiece, p.data.size() - at)), MPI_BYTE, r, kStripsTag,
               comm_, MPI_STATUS_IGNORE);
    }
  }
  std::vector<TiffStrips> in_order;
  for (const int r : row_order(strips)) in_order.push_back(std::move(parts[static_cast<size_t>(r)]));
  auto file = assemble_tiff(out.rows, out.cols, out.type(), per_strip, in_order);
  if (!file.ok()) return file.status();
  *into = std::move(file).value();
  if (stats != nullptr) stats->encode_seconds += MPI_Wtime() - t0;
  return Status::Ok();
}

}  // namespace imgq::workers
