#include "imgq/mpi_workers/job_runner.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <numeric>

#include "imgq/common/file_io.h"
#include "imgq/common/formats.h"
#include "imgq/common/text.h"
#include "imgq/mpi_workers/faults.h"
#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/job_paths.h"
#include "imgq/mpi_workers/png_strips.h"
#include "imgq/mpi_workers/row_decoder.h"
#include "imgq/mpi_workers/tiff_strips.h"
#include "imgq/mpi_workers/strip_plan.h"

namespace imgq::workers {
namespace {

double since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// How much longer the slowest rank computed than the average one.
double imbalance(const std::vector<double>& per_rank) {
  if (per_rank.empty()) return 0;
  const double mean = std::accumulate(per_rank.begin(), per_rank.end(), 0.0) / static_cast<double>(per_rank.size());
  const double slowest = *std::max_element(per_rank.begin(), per_rank.end());
  return mean > 0 ? slowest / mean - 1 : 0;
}

// What decoding a row costs over the first stage's work on it, for
// plan_streamed_strips(). Rough single-core costs in ns per decoded byte,
// measured with OpenCV 4.6 on bench/big.sh's 64 MP image on this project's
// 2-core VM: PNG decode 8 (4 with ISA-L inflating, row_decoder.cc: 3 to 5
// gave the same times, 8 left the leader idle 0.3 s), JPEG decode 3, a
// local op about 2 (gaussian 5x5: 1.9), PNG encode 20, TIFF (LZW) encode
// 12. They only balance the strips; no pixel depends on them. `encoded_by_ranks`: "png", "tif" or empty.
double decode_ratio(const RowDecoder& decoder, const Pipeline& pipeline, EncodePath encode) {
  const std::vector<Stage> stages = plan_stages(pipeline);
  if (stages.empty()) return 0;
  const double decode = std::string_view(decoder.format()) == "PNG" ? 4.0 : 3.0;
  double work = 2.0 * (stages.front().end_op - stages.front().first_op);
  if (stages.size() == 1) {
    work += encode == EncodePath::kPngByRanks ? 20.0 : encode == EncodePath::kTiffByRanks ? 12.0 : 0.0;
  }
  return decode / std::max(work, 1.0);
}

// The job's input opened on its decode path: the engine's source, the
// image's kind, and the decoder a StreamedSource reads from.
struct OpenedInput {
  DecodePath path = DecodePath::kWhole;
  RowSource source;
  ImageInfo info;
  std::unique_ptr<RowDecoder> decoder;
};

// What decode_image() checks, for a file the ranks read themselves: the
// pixel limit from the layout, and a file as long as the header says.
Result<OpenedInput> open_local_rows(const LocalRows& local, uint64_t max_pixels) {
  const PnmLayout& layout = local.layout;
  const ImageHeader header{"PNM", static_cast<uint64_t>(layout.cols), static_cast<uint64_t>(layout.rows)};
  IMGQ_RETURN_IF_ERROR(check_pixel_limit(header, max_pixels));
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(local.path, ec);
  if (ec) return Status::IoError("cannot read the size of " + local.path.string() + ": " + ec.message());
  if (size < layout.file_bytes()) {
    return Status::InvalidImage("PNM: the file is truncated (" + std::to_string(size) + " bytes; the header needs " +
                                std::to_string(layout.file_bytes()) + ")");
  }
  OpenedInput opened;
  opened.path = DecodePath::kLocalRows;
  opened.source = PnmFileSource{local.path.string(), layout};
  opened.info = ImageInfo::of_type(layout.rows, layout.cols, layout.type);
  return opened;
}

// Opens `input` on the path choose_decode() gives, falling back to a whole
// decode when that path does not take this file. Every path applies the
// limits decode_image() applies before any rank works.
Result<OpenedInput> open_input(const Engine& engine, const Pipeline& pipeline, const JobInput& input,
                               uint64_t max_pixels) {
  if (const auto* local = std::get_if<LocalRows>(&input)) return open_local_rows(*local, max_pixels);
  const std::span<const uint8_t> bytes = std::get<EncodedImage>(input).bytes;
  OpenedInput opened;
  opened.path = choose_decode(engine.size(), pipeline, sniff_format(bytes), false);
  if (opened.path == DecodePath::kRankStrips) {
    if (const std::optional<TiffLayout> layout = tiff_layout(bytes)) {
      IMGQ_RETURN_IF_ERROR(check_image_header(bytes, max_pixels).status());
      opened.info = ImageInfo::of_type(layout->rows, layout->cols, layout->type);
      IMGQ_RETURN_IF_ERROR(check_image(opened.info));
      opened.source = TiffSource{bytes, *layout};
      return opened;
    }
  } else if (opened.path == DecodePath::kBandedRows) {
    IMGQ_RETURN_IF_ERROR(check_image_header(bytes, max_pixels).status());
    if ((opened.decoder = open_row_decoder(bytes)) != nullptr) {
      opened.info = opened.decoder->info();
      IMGQ_RETURN_IF_ERROR(check_image(opened.info));
      opened.source = StreamedSource{.decoder = opened.decoder.get()};
      return opened;
    }
  }
  opened.path = DecodePath::kWhole;
  IMGQ_ASSIGN_OR_RETURN(cv::Mat decoded, decode_image(bytes, max_pixels));
  opened.info = ImageInfo::of(decoded);
  opened.source = ImageSource(std::move(decoded));
  return opened;
}

// The result file the ranks write their rows into (EncodePath::kLocalRows):
// a temporary file beside the output, with the result's header and size,
// moved into place by commit() and removed when not committed.
class PartFile {
 public:
  static Result<std::unique_ptr<PartFile>> create(const std::filesystem::path& output, const ImageInfo& result) {
    std::filesystem::path part = output;
    part += ".part" + std::to_string(::getpid());
    auto file = std::unique_ptr<PartFile>(new PartFile(output, part));
    const std::string head = pnm_header(result.rows, result.cols, result.type());
    const uint64_t bytes = pnm_layout_for(result.rows, result.cols, result.type()).file_bytes();
    std::error_code ec;
    std::filesystem::create_directories(output.parent_path(), ec);
    {
      std::ofstream out(part, std::ios::binary | std::ios::trunc);
      out.write(head.data(), static_cast<std::streamsize>(head.size()));
      if (!out.flush()) return Status::IoError("cannot write " + part.string() + ": " + std::strerror(errno));
    }
    std::filesystem::resize_file(part, bytes, ec);
    if (ec) return Status::IoError("cannot size " + part.string() + ": " + ec.message());
    return file;
  }
  ~PartFile() {
    std::error_code ec;
    if (!committed_) std::filesystem::remove(part_, ec);
  }
  PartFile(const PartFile&) = delete;
  PartFile& operator=(const PartFile&) = delete;

  std::string path() const { return part_.string(); }

  // Synced before it is renamed and reported, as write_file(durable) does:
  // the client acknowledges the result once told it is written.
  Status commit() {
    IMGQ_RETURN_IF_ERROR(sync_path(part_));
    std::error_code ec;
    std::filesystem::rename(part_, output_, ec);
    if (ec) return Status::IoError("cannot move the result into place at " + output_.string());
    committed_ = true;
    return sync_path(output_.parent_path());
  }

 private:
  PartFile(std::filesystem::path output, std::filesystem::path part)
      : output_(std::move(output)), part_(std::move(part)) {}
  std::filesystem::path output_, part_;
  bool committed_ = false;
};

// Where the engine puts the result on the encode path chosen, and what
// holds it: the bytes encoded by every rank, or the file they write into.
// Not movable: the sink points into it.
struct Sink {
  Sink() = default;
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;

  Status open(EncodePath encode, const std::filesystem::path& file, const ImageInfo& result) {
    if (encode == EncodePath::kPngByRanks) sink = PngSink{&by_ranks};
    if (encode == EncodePath::kTiffByRanks) sink = TiffSink{&by_ranks};
    if (encode == EncodePath::kLocalRows) {
      IMGQ_ASSIGN_OR_RETURN(part, PartFile::create(file, result));
      sink = PnmFileSink{part->path()};
    }
    return Status::Ok();
  }

  RowSink sink;
  std::vector<uint8_t> by_ranks;  // PNG or TIFF encoded on every rank
  std::unique_ptr<PartFile> part;
};

// The run's times into the job's stats.
void add_run_stats(const RunStats& run, int ranks, JobOutcome& out) {
  out.stats.decode_seconds += run.decode_seconds;
  out.stats.scatter_seconds = run.scatter_seconds;  // reading the rows, when each rank reads its own
  out.stats.compute_seconds = run.compute_seconds;
  out.stats.gather_seconds = run.gather_seconds;  // writing them, when each rank writes its own
  out.stats.imbalance = imbalance(run.rank_compute_seconds);
  out.rank_compute_seconds = run.rank_compute_seconds;
  out.stats.ranks = ranks;
}

JobOutcome run_whole_job_unguarded(const Pipeline& pipeline, std::span<const uint8_t> image,
                                   const std::string& format, int rank, const JobControl& control) {
  JobOutcome out;
  out.stats.ranks = 1;
  auto interrupted = [&] {
    if (control.interrupt) out.status = control.interrupt();
    return !out.status.ok();
  };
  if (interrupted()) return out;

  auto start = std::chrono::steady_clock::now();
  fault_point("decode", rank);
  auto decoded = decode_image(image, control.max_pixels);
  out.stats.decode_seconds = since(start);
  if (!decoded.ok()) {
    out.status = decoded.status();
    return out;
  }
  out.stats.pixels = decoded->total();
  // The same check, and so the same message, as a run over strips.
  if (auto checked = check_pipeline(pipeline, ImageInfo::of(*decoded)); !checked.ok()) {
    out.status = checked.status();
    return out;
  }

  start = std::chrono::steady_clock::now();
  fault_point("compute", rank);
  cv::Mat current = std::move(decoded).value();
  for (size_t i = 0; i < pipeline.size(); ++i) {
    if (i > 0 && interrupted()) return out;
    auto next = apply_op(pipeline[i], current);
    if (!next.ok()) {
      out.status = next.status();
      return out;
    }
    current = std::move(next).value();
  }
  out.stats.compute_seconds = since(start);

  if (interrupted()) return out;
  fault_point("encode", rank);
  start = std::chrono::steady_clock::now();
  auto encoded = encode_image(current, format);
  out.stats.encode_seconds = since(start);
  if (!encoded.ok()) {
    out.status = encoded.status();
    return out;
  }
  out.encoded = std::move(encoded).value();
  return out;
}

}  // namespace

JobOutcome run_job(Engine& engine, const Pipeline& pipeline, const JobInput& input, const JobOutput& output,
                   const ProgressFn& progress, const JobControl& control) {
  JobOutcome out;
  auto fail = [&](Status status) {
    out.status = std::move(status);
    return out;
  };
  auto interrupted = [&] { return control.interrupt ? control.interrupt() : Status::Ok(); };
  if (Status why = interrupted(); !why.ok()) return fail(why);
  const int total = static_cast<int>(plan_stages(pipeline).size()) + 2;
  auto report = [&](int done, const std::string& step) {
    if (progress) progress(done, total, step);
  };

  auto start = std::chrono::steady_clock::now();
  fault_point("decode", engine.rank());
  auto opened = open_input(engine, pipeline, input, control.max_pixels);
  if (!opened.ok()) return fail(opened.status());
  out.stats.decode_seconds = since(start);
  out.stats.pixels = static_cast<uint64_t>(opened->info.rows) * static_cast<uint64_t>(opened->info.cols);
  auto result_info = check_pipeline(pipeline, opened->info);
  if (!result_info.ok()) return fail(result_info.status());
  EncodePath encode = choose_encode(engine.size(), pipeline, *result_info, output.format, opened->path);
  if (encode == EncodePath::kLocalRows && output.file.empty()) encode = EncodePath::kLeader;
  if (auto* streamed = std::get_if<StreamedSource>(&opened->source)) {
    streamed->decode_ratio = decode_ratio(*opened->decoder, pipeline, encode);
  }
  // Decoded in the first stage, "decode" is reported when that stage ends.
  const bool decoded_in_stage = opened->path == DecodePath::kBandedRows || opened->path == DecodePath::kRankStrips;
  if (!decoded_in_stage) report(1, "decode");

  Sink sink;
  if (Status made = sink.open(encode, output.file, *result_info); !made.ok()) return fail(made);

  RunStats run;
  const auto on_stage = [&](int done, int stages) {
    if (done == 1 && decoded_in_stage) report(1, "decode");
    report(1 + done, "stage " + std::to_string(done) + "/" + std::to_string(stages));
  };
  auto result = engine.run(pipeline, opened->source, sink.sink, {on_stage, &run, control.interrupt});
  add_run_stats(run, engine.size(), out);
  if (!result.ok()) return fail(result.status());

  if (sink.part != nullptr) {
    if (Status committed = sink.part->commit(); !committed.ok()) return fail(committed);
    out.written = true;
  } else if (Status why = interrupted(); !why.ok()) {
    return fail(why);
  } else if (encode != EncodePath::kLeader) {
    out.stats.encode_seconds = run.encode_seconds;
    out.encoded = std::move(sink.by_ranks);
  } else {
    fault_point("encode", engine.rank());
    start = std::chrono::steady_clock::now();
    auto encoded = encode_image(*result, output.format);
    out.stats.encode_seconds = since(start);
    if (!encoded.ok()) return fail(encoded.status());
    out.encoded = std::move(encoded).value();
  }
  report(total, "encode");
  return out;
}

JobOutcome run_whole_job(const Pipeline& pipeline, std::span<const uint8_t> image, const std::string& format,
                         int rank, const JobControl& control) {
  // What OpenCV or the allocator throw fails the job, not the rank.
  try {
    return run_whole_job_unguarded(pipeline, image, format, rank, control);
  } catch (const cv::Exception& e) {
    return JobOutcome{.status = Status::Internal(std::string("OpenCV failed: ") + e.what())};
  } catch (const std::bad_alloc&) {
    return JobOutcome{.status = Status::ResourceExhausted("out of memory")};
  }
}

std::optional<PnmLayout> rows_from_file(const Engine& engine, const Pipeline& pipeline,
                                        const std::filesystem::path& input, uint64_t strip_above) {
  if (choose_decode(engine.size(), pipeline, ImageFormat::kPnm, true) != DecodePath::kLocalRows) return std::nullopt;
  std::ifstream in(input, std::ios::binary);
  std::vector<uint8_t> head(64);
  in.read(reinterpret_cast<char*>(head.data()), static_cast<std::streamsize>(head.size()));
  head.resize(static_cast<size_t>(in.gcount()));
  auto layout = pnm_layout(head);
  if (!layout || static_cast<uint64_t>(layout->rows) * static_cast<uint64_t>(layout->cols) <= strip_above) {
    return std::nullopt;
  }
  return layout;
}

}  // namespace imgq::workers
