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
#include "imgq/common/text.h"
#include "imgq/mpi_workers/faults.h"
#include "imgq/mpi_workers/image_io.h"
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

// Whether the result of `pipeline` on an image like `in` is PNG-encoded by
// every rank (its last stage ends on every rank, PNG holds its type), rather
// than gathered and encoded by the leader alone.
bool png_on_every_rank(const Engine& engine, const Pipeline& pipeline, const ImageInfo& in, const std::string& format) {
  if (engine.size() == 1 || ascii_lower(format) != "png" || !files_fit(pipeline).output) return false;
  auto result = check_pipeline(pipeline, in);
  return result.ok() && png_can_store(result->type());
}

// A row decoder for `image` when the group can use one: several ranks, a
// first stage in strips, and a format that streams (row_decoder.h); the
// limits decode_image() applies are checked first. nullptr: decode whole.
Result<std::unique_ptr<RowDecoder>> open_streamed(const Engine& engine, const Pipeline& pipeline,
                                                 std::span<const uint8_t> image, uint64_t max_pixels) {
  if (engine.size() == 1 || !files_fit(pipeline).input) return std::unique_ptr<RowDecoder>();
  IMGQ_RETURN_IF_ERROR(check_image_header(image, max_pixels).status());
  std::unique_ptr<RowDecoder> decoder = open_row_decoder(image);
  if (decoder != nullptr) IMGQ_RETURN_IF_ERROR(check_image(decoder->info()));
  return decoder;
}

// What decoding a row costs over the first stage's work on it, for
// plan_streamed_strips(). Rough single-core costs in ns per decoded byte,
// measured with OpenCV 4.6 on bench/big.sh's 64 MP image on this project's
// 2-core VM: PNG decode 8 (4 with ISA-L inflating, row_decoder.cc: 3 to 5
// gave the same times, 8 left the leader idle 0.3 s), JPEG decode 3, a
// local op about 2 (gaussian 5x5: 1.9), PNG encode 20, TIFF (LZW) encode
// 12. They only balance the strips; no pixel depends on them. `encoded_by_ranks`: "png", "tif" or empty.
double decode_ratio(const RowDecoder& decoder, const Pipeline& pipeline, std::string_view encoded_by_ranks) {
  const std::vector<Stage> stages = plan_stages(pipeline);
  if (stages.empty()) return 0;
  const double decode = std::string_view(decoder.format()) == "PNG" ? 4.0 : 3.0;
  double work = 2.0 * (stages.front().end_op - stages.front().first_op);
  if (stages.size() == 1) work += encoded_by_ranks == "png" ? 20.0 : encoded_by_ranks == "tif" ? 12.0 : 0.0;
  return decode / std::max(work, 1.0);
}

// The same for TIFF: strips encoded by every rank, laid out by the leader.
bool tiff_on_every_rank(const Engine& engine, const Pipeline& pipeline, const ImageInfo& in, const std::string& format) {
  const std::string f = ascii_lower(format);
  if (engine.size() == 1 || (f != "tif" && f != "tiff") || !files_fit(pipeline).output) return false;
  auto result = check_pipeline(pipeline, in);
  return result.ok() && tiff_can_store(result->type());
}

// A TIFF every rank can read its own rows of, when the group can use that:
// several ranks and a first stage in strips; the limits decode_image()
// applies are checked first.
Result<std::optional<TiffLayout>> open_tiff_rows(const Engine& engine, const Pipeline& pipeline,
                                                 std::span<const uint8_t> image, uint64_t max_pixels) {
  if (engine.size() == 1 || !files_fit(pipeline).input) return std::optional<TiffLayout>();
  std::optional<TiffLayout> layout = tiff_layout(image);
  if (!layout) return layout;
  IMGQ_RETURN_IF_ERROR(check_image_header(image, max_pixels).status());
  IMGQ_RETURN_IF_ERROR(
      check_image(ImageInfo{layout->rows, layout->cols, CV_MAT_DEPTH(layout->type), CV_MAT_CN(layout->type)}));
  return layout;
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

JobOutcome run_job(Engine& engine, const Pipeline& pipeline, std::span<const uint8_t> image,
                   const std::string& format, const ProgressFn& progress, const JobControl& control) {
  JobOutcome out;
  auto interrupted = [&] {
    if (control.interrupt) out.status = control.interrupt();
    return !out.status.ok();
  };
  if (interrupted()) return out;
  const int total = static_cast<int>(plan_stages(pipeline).size()) + 2;
  auto report = [&](int done, const std::string& step) {
    if (progress) progress(done, total, step);
  };

  auto start = std::chrono::steady_clock::now();
  fault_point("decode", engine.rank());
  // A TIFF is decoded by every rank, its own strips; a PNG or JPEG while
  // the first stage runs; anything else whole, here, before any rank works.
  auto tiff = open_tiff_rows(engine, pipeline, image, control.max_pixels);
  if (!tiff.ok()) {
    out.status = tiff.status();
    return out;
  }
  std::unique_ptr<RowDecoder> decoder;
  if (!tiff->has_value()) {
    auto streamed = open_streamed(engine, pipeline, image, control.max_pixels);
    if (!streamed.ok()) {
      out.status = streamed.status();
      return out;
    }
    decoder = std::move(streamed).value();
  }
  const bool in_strips = decoder != nullptr || tiff->has_value();
  cv::Mat decoded;
  if (!in_strips) {
    auto whole = decode_image(image, control.max_pixels);
    if (!whole.ok()) {
      out.status = whole.status();
      return out;
    }
    decoded = std::move(whole).value();
    report(1, "decode");
  }
  out.stats.decode_seconds = since(start);
  const ImageInfo info = decoder != nullptr  ? decoder->info()
                         : tiff->has_value() ? ImageInfo{(*tiff)->rows, (*tiff)->cols, CV_MAT_DEPTH((*tiff)->type),
                                                         CV_MAT_CN((*tiff)->type)}
                                             : ImageInfo::of(decoded);
  out.stats.pixels = static_cast<uint64_t>(info.rows) * static_cast<uint64_t>(info.cols);

  RunStats run;
  StripFiles files;
  std::vector<uint8_t> by_ranks;  // PNG or TIFF encoded on every rank
  if (png_on_every_rank(engine, pipeline, info, format)) files.png = &by_ranks;
  if (tiff_on_every_rank(engine, pipeline, info, format)) files.tiff = &by_ranks;
  if (decoder != nullptr) {
    files.decoder = decoder.get();
    files.decode_ratio = decode_ratio(*decoder, pipeline, files.png != nullptr ? "png" : files.tiff != nullptr ? "tif" : "");
  }
  if (tiff->has_value()) {
    files.tiff_input = image;
    files.tiff_layout = **tiff;
  }
  auto result = engine.run(
      pipeline, decoded,
      [&](int done, int stages) {
        if (done == 1 && in_strips) report(1, "decode");  // it ended within the first stage
        report(1 + done, "stage " + std::to_string(done) + "/" + std::to_string(stages));
      },
      &run, control.interrupt, files);
  out.stats.decode_seconds += run.decode_seconds;
  out.stats.scatter_seconds = run.scatter_seconds;
  out.stats.compute_seconds = run.compute_seconds;
  out.stats.gather_seconds = run.gather_seconds;
  out.stats.imbalance = imbalance(run.rank_compute_seconds);
  out.rank_compute_seconds = run.rank_compute_seconds;
  out.stats.ranks = engine.size();
  if (!result.ok()) {
    out.status = result.status();
    return out;
  }

  if (interrupted()) return out;
  if (files.png != nullptr || files.tiff != nullptr) {
    out.stats.encode_seconds = run.encode_seconds;
    out.encoded = std::move(by_ranks);
    report(total, "encode");
    return out;
  }
  fault_point("encode", engine.rank());
  start = std::chrono::steady_clock::now();
  auto encoded = encode_image(*result, format);
  out.stats.encode_seconds = since(start);
  if (!encoded.ok()) {
    out.status = encoded.status();
    return out;
  }
  out.encoded = std::move(encoded).value();
  report(total, "encode");
  return out;
}

JobOutcome run_job_files(Engine& engine, const Pipeline& pipeline, const std::filesystem::path& input,
                         const PnmLayout& layout, const std::filesystem::path& output, const std::string& format,
                         const ProgressFn& progress, const JobControl& control) {
  JobOutcome out;
  auto fail = [&](Status status) {
    out.status = std::move(status);
    return out;
  };
  if (control.interrupt) {
    if (Status why = control.interrupt(); !why.ok()) return fail(why);
  }
  const int total = static_cast<int>(plan_stages(pipeline).size()) + 2;
  auto report = [&](int done, const std::string& step) {
    if (progress) progress(done, total, step);
  };

  // What decode_image checks, from the layout and the file's size.
  const ImageHeader header{"PNM", static_cast<uint64_t>(layout.cols), static_cast<uint64_t>(layout.rows)};
  if (Status limit = check_pixel_limit(header, control.max_pixels); !limit.ok()) return fail(limit);
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(input, ec);
  if (ec) return fail(Status::IoError("cannot read the size of " + input.string() + ": " + ec.message()));
  if (size < layout.file_bytes()) {
    return fail(Status::InvalidImage("PNM: the file is truncated (" + std::to_string(size) + " bytes; the header needs " +
                                     std::to_string(layout.file_bytes()) + ")"));
  }
  const ImageInfo info{layout.rows, layout.cols, CV_MAT_DEPTH(layout.type), CV_MAT_CN(layout.type)};
  auto result_info = check_pipeline(pipeline, info);
  if (!result_info.ok()) return fail(result_info.status());
  out.stats.pixels = static_cast<uint64_t>(layout.rows) * static_cast<uint64_t>(layout.cols);
  report(1, "decode");

  // Straight into the output when it is a PGM/PPM of the result's kind.
  std::string f = format;
  std::transform(f.begin(), f.end(), f.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const int channels = result_info->channels;
  const bool pnm_out = (f == "pnm" && (channels == 1 || channels == 3)) || (f == "ppm" && channels == 3) ||
                       (f == "pgm" && channels == 1);
  StripFiles files;
  files.input = input.string();
  files.input_layout = layout;
  std::filesystem::path part = output;
  part += ".part" + std::to_string(::getpid());
  if (pnm_out && files_fit(pipeline).output) {
    const std::string head = pnm_header(result_info->rows, result_info->cols, result_info->type());
    const uint64_t bytes = pnm_layout_for(result_info->rows, result_info->cols, result_info->type()).file_bytes();
    std::filesystem::create_directories(output.parent_path(), ec);
    {
      std::ofstream file(part, std::ios::binary | std::ios::trunc);
      file.write(head.data(), static_cast<std::streamsize>(head.size()));
      if (!file.flush()) return fail(Status::IoError("cannot write " + part.string() + ": " + std::strerror(errno)));
    }
    std::filesystem::resize_file(part, bytes, ec);
    if (ec) return fail(Status::IoError("cannot size " + part.string() + ": " + ec.message()));
    files.output = part.string();
  }
  std::vector<uint8_t> by_ranks;  // PNG or TIFF encoded on every rank
  if (files.output.empty() && png_on_every_rank(engine, pipeline, info, format)) files.png = &by_ranks;
  if (files.output.empty() && tiff_on_every_rank(engine, pipeline, info, format)) files.tiff = &by_ranks;

  RunStats run;
  auto result = engine.run(
      pipeline, cv::Mat(),
      [&](int done, int stages) { report(1 + done, "stage " + std::to_string(done) + "/" + std::to_string(stages)); },
      &run, control.interrupt, files);
  out.stats.scatter_seconds = run.scatter_seconds;  // reading the rows, when each rank reads its own
  out.stats.compute_seconds = run.compute_seconds;
  out.stats.gather_seconds = run.gather_seconds;    // writing them, when each rank writes its own
  out.stats.imbalance = imbalance(run.rank_compute_seconds);
  out.rank_compute_seconds = run.rank_compute_seconds;
  out.stats.ranks = engine.size();
  if (!result.ok()) {
    if (!files.output.empty()) std::filesystem::remove(part, ec);
    return fail(result.status());
  }
  if (!files.output.empty()) {
    // Synced before it is renamed and reported, as write_file(durable) does:
    // the client acknowledges the result once told it is written.
    if (Status synced = sync_path(part); !synced.ok()) {
      std::filesystem::remove(part, ec);
      return fail(synced);
    }
    std::filesystem::rename(part, output, ec);
    if (ec) {
      std::filesystem::remove(part, ec);
      return fail(Status::IoError("cannot move the result into place at " + output.string()));
    }
    if (Status synced = sync_path(output.parent_path()); !synced.ok()) return fail(synced);
    out.written = true;
  } else {
    if (control.interrupt) {
      if (Status why = control.interrupt(); !why.ok()) return fail(why);
    }
    if (files.png != nullptr || files.tiff != nullptr) {
      out.stats.encode_seconds = run.encode_seconds;
      out.encoded = std::move(by_ranks);
    } else {
      const auto start = std::chrono::steady_clock::now();
      auto encoded = encode_image(*result, format);
      out.stats.encode_seconds = since(start);
      if (!encoded.ok()) return fail(encoded.status());
      out.encoded = std::move(encoded).value();
    }
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
  if (engine.size() == 1 || !files_fit(pipeline).input) return std::nullopt;
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
