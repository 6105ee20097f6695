// The MPI engine: runs a pipeline on one image with every rank of a group.
//
// Rank 0, the leader, holds the image. For each stage (strip_plan.h) it
// scatters row strips with their halo rows (MPI_Scatterv), every rank runs the
// stage's ops on its strip, global ops meet in a collective (a histogram
// MPI_Allreduce for equalize_hist, a link pass on the leader for canny), and
// the leader gathers the strips' own rows (MPI_Gatherv). The result equals
// apply_pipeline() on the whole image byte for byte, for any number of ranks.
//
// Use: the leader calls run() once per image and shutdown() at the end; every
// other rank calls serve(), which takes part in each run() until shutdown().
// An error on any rank fails that image on all of them; nobody is left
// waiting. Not thread-safe: one thread per rank calls it (MPI_THREAD_FUNNELED).
#pragma once

#include <functional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <mpi.h>
#include <opencv2/core.hpp>

#include "imgq/common/status.h"
#include "imgq/mpi_workers/ops.h"
#include "imgq/mpi_workers/png_strips.h"
#include "imgq/mpi_workers/pnm_io.h"
#include "imgq/mpi_workers/row_decoder.h"
#include "imgq/mpi_workers/strip_plan.h"
#include "imgq/mpi_workers/tiff_strips.h"

namespace imgq::workers {

// Where a run spent its time, as the leader saw it.
struct RunStats {
  double decode_seconds = 0;  // StreamedSource: the leader's time in the decoder
  double scatter_seconds = 0;
  double compute_seconds = 0;  // the leader's own strip work plus leader-only ops
  double gather_seconds = 0;
  double encode_seconds = 0;  // PNG on every rank: the leader's own part and the stitching
  std::vector<double> rank_compute_seconds;  // per rank, summed over stages
  int stages = 0;
};

// Called on the leader after each stage with (stages done, stages in all).
using StageCallback = std::function<void(int done, int total)>;

// Called on the leader before each stage; a non-OK status (cancelled, past
// the deadline) stops the run there, on every rank, with that status.
using Interrupt = std::function<Status()>;

// Where a run's first stage takes its rows from: one of these types, so a
// run has exactly one source. All but ImageSource need files_fit().input.
//
// The leader's decoded image, scattered (MPI_Scatterv). Implicit from a
// cv::Mat, so run(pipeline, image) reads as it should.
struct ImageSource {
  ImageSource(cv::Mat decoded = {}) : image(std::move(decoded)) {}  // NOLINT: implicit on purpose
  cv::Mat image;
};
// Decoded by the leader band by band while the first stage runs, each rank
// sent its rows as soon as they are decoded (followers take the first rows,
// the leader the last; plan_streamed_strips() with `decode_ratio`, the cost
// of decoding a row over the stage's work on it).
struct StreamedSource {
  RowDecoder* decoder = nullptr;
  double decode_ratio = 0;
  // The rows decoded and sent at a time, in bytes (at least one row): small
  // enough that a follower's rows follow their decode closely, large enough
  // that MPI's cost per message is noise. Tests make it tiny.
  size_t band_bytes = size_t{4} << 20;
};
// A TIFF (tiff_strips.h): every rank gets its bytes and decodes the strips
// or tiles holding its own rows.
struct TiffSource {
  std::span<const uint8_t> bytes;
  TiffLayout layout;
};
// A binary PGM/PPM (pnm_io.h) on a file system every rank sees: each rank
// reads its own rows.
struct PnmFileSource {
  std::string path;
  PnmLayout layout;
};
using RowSource = std::variant<ImageSource, StreamedSource, TiffSource, PnmFileSource>;

// Where a run's last stage puts its rows: one of these types. All but
// GatherSink need files_fit().output; run() then returns an empty Mat.
//
// Gathered on the leader (MPI_Gatherv) and returned by run().
struct GatherSink {};
// PNG-encoded on every rank, each its own rows (png_strips.h); the leader
// stitches the file into `*bytes`. The result must be one PNG can store.
struct PngSink {
  std::vector<uint8_t>* bytes = nullptr;
};
// TIFF-encoded on every rank as whole strips (the strips are cut at
// multiples of the file's strip height); the leader lays the file out into
// `*bytes`. The result must be one TIFF can store.
struct TiffSink {
  std::vector<uint8_t>* bytes = nullptr;
};
// Written by every rank, its own rows, into `path`: a binary PGM/PPM of the
// result's full size with its header written (pnm_io.h).
struct PnmFileSink {
  std::string path;
};
using RowSink = std::variant<GatherSink, PngSink, TiffSink, PnmFileSink>;

// What a run reports as it goes, and how it is stopped.
struct RunHooks {
  StageCallback on_stage;
  RunStats* stats = nullptr;
  Interrupt interrupt;
};

// Whether `pipeline` can read its input from a file (its first stage runs on
// strips) and write its result to one (its last stage ends on every rank:
// no leader op, no canny, whose final pass runs on the whole image).
struct FilesFit {
  bool input = false;
  bool output = false;
};
FilesFit files_fit(const Pipeline& pipeline);

// Work a follower does while it waits for the leader's next run(); true
// when it did some (see whole_jobs.h).
using IdleWork = std::function<bool()>;

class Engine {
 public:
  // Works on a duplicate of `comm`, so it never mixes with other traffic.
  explicit Engine(MPI_Comm comm);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_leader() const { return rank_ == 0; }

  // Leader only. Checks the pipeline against the image before any rank
  // works. Returns the result, or an empty Mat when `sink` took it.
  Result<cv::Mat> run(const Pipeline& pipeline, const RowSource& source, const RowSink& sink = GatherSink{},
                      const RunHooks& hooks = {});

  // Followers only: serves run() calls until the leader's shutdown(), doing
  // `idle` work in between.
  void serve(const IdleWork& idle = {});

  // The engine's own communicator, for point-to-point work between runs.
  MPI_Comm comm() const { return comm_; }

  // Leader only: releases the followers. Idempotent; the destructor calls it.
  void shutdown();

 private:
  Result<cv::Mat> execute(const Pipeline& pipeline, ImageInfo info, cv::Mat image, const RunHooks& hooks);
  // `from_source`/`to_sink`: the stage's rows come from source_ / go to
  // sink_ (else from the previous stage / to the next).
  Result<cv::Mat> run_strip_stage(const Pipeline& pipeline, const Stage& stage,
                                  const std::vector<ImageInfo>& infos, const cv::Mat& current,
                                  RunStats* stats, bool from_source, bool to_sink);
  // Its three steps, each collective.
  // A streamed scatter leaves the leader's decode status in `pending`, to
  // be agreed after the compute, so no rank waits for the whole decode.
  Result<cv::Mat> scatter_strips(const std::vector<Strip>& strips, const ImageInfo& in, const cv::Mat& current,
                                 bool from_source, Status& pending, RunStats* stats);
  void stream_rows(const std::vector<Strip>& strips, const ImageInfo& in, cv::Mat& buffer, Status& pending,
                   RunStats* stats, const std::function<void(int)>& on_rows);
  Status stream_local_stage(const Pipeline& pipeline, const Stage& stage, const std::vector<Strip>& strips,
                            const ImageInfo& in, const ImageInfo& out, PngDeflater* deflater, cv::Mat& own,
                            Status& pending, double& computing, RunStats* stats);
  Result<cv::Mat> compute_strip(const Pipeline& pipeline, const Stage& stage, const std::vector<Strip>& strips,
                                const ImageInfo& out, cv::Mat buffer, const Status& pending);
  // `fed`: this rank's rows already went into a PNG segment.
  Result<cv::Mat> gather_strips(const std::vector<Strip>& strips, const ImageInfo& out, cv::Mat own, bool to_sink,
                                RunStats* stats, PngDeflater* fed = nullptr);
  // Instead of the gather: every rank deflates its rows, the leader
  // stitches the segments into `*into`.
  Status encode_png_strips(const std::vector<Strip>& strips, const ImageInfo& out, const cv::Mat& own,
                           std::vector<uint8_t>* into, RunStats* stats, PngDeflater* fed);
  // Instead of the gather: every rank encodes its rows as TIFF strips, the
  // leader lays them out into `*into`.
  Status encode_tiff_strips(const std::vector<Strip>& strips, const ImageInfo& out, const cv::Mat& own,
                            std::vector<uint8_t>* into, RunStats* stats);
  // Leader to all, in pieces MPI's int counts hold.
  void broadcast_bytes(uint8_t* data, uint64_t size);
  // Collective: OK when `local` is OK on every rank, else the first failing
  // rank's status, on every rank.
  Status agree(const Status& local);

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  bool shut_down_ = false;
  // The current run's source and sink: the leader's, or on a follower
  // made from the job header (a follower's StreamedSource has no decoder,
  // its sinks no bytes: its rows and segments go to the leader).
  const RowSource* source_ = nullptr;
  const RowSink* sink_ = nullptr;
  std::vector<uint8_t> tiff_copy_;  // a follower's copy of a TiffSource's bytes
};

}  // namespace imgq::workers
