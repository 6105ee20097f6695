#include "imgq/mpi_workers/standalone.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "imgq/mpi_workers/image_io.h"

namespace imgq::workers {
namespace fs = std::filesystem;

namespace {

fs::path output_for(const fs::path& relative, const fs::path& out_dir, const std::string& format) {
  fs::path out = out_dir / relative;
  if (!format.empty()) out.replace_extension("." + format);
  return out;
}

std::string extension_of(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext.empty() ? ext : ext.substr(1);
}

}  // namespace

std::vector<BatchItem> plan_batch(const std::vector<std::string>& inputs, const fs::path& out_dir,
                                  const std::string& format) {
  std::vector<BatchItem> items;
  for (const std::string& input : inputs) {
    const fs::path root(input);
    std::error_code ec;
    if (fs::is_directory(root, ec)) {
      std::vector<fs::path> found;
      for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (it->is_regular_file(ec) && is_image_extension(extension_of(it->path()))) {
          found.push_back(it->path());
        }
      }
      if (ec) {
        items.push_back({root, {}, Status::IoError("cannot list folder: " + ec.message())});
      }
      std::sort(found.begin(), found.end());
      for (const fs::path& p : found) {
        items.push_back({p, output_for(p.lexically_relative(root), out_dir, format), {}});
      }
    } else if (fs::exists(root, ec)) {
      items.push_back({root, output_for(root.filename(), out_dir, format), {}});
    } else {
      items.push_back({root, {}, Status::NotFound("no such file or folder")});
    }
  }

  // Two inputs must never write the same output file.
  std::map<fs::path, fs::path> claimed;
  for (BatchItem& item : items) {
    if (!item.problem.ok()) continue;
    auto [it, fresh] = claimed.emplace(item.output.lexically_normal(), item.source);
    if (!fresh) {
      item.problem = Status::InvalidArgument("its output " + item.output.string() +
                                             " would overwrite the result of " + it->second.string());
    }
  }
  return items;
}

namespace {

Status process_one(Engine& engine, const Pipeline& pipeline, const BatchItem& item,
                   double* megapixels) {
  IMGQ_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_file(item.source));
  IMGQ_ASSIGN_OR_RETURN(cv::Mat image, decode_image(bytes));
  *megapixels += static_cast<double>(image.total()) / 1e6;
  IMGQ_ASSIGN_OR_RETURN(cv::Mat result, engine.run(pipeline, image));
  const std::string format = extension_of(item.output);
  if (!is_output_format(format)) {
    return Status::InvalidArgument("cannot write format \"" + format + "\" (the input's own); give --format, one of " +
                                   output_formats_text());
  }
  IMGQ_ASSIGN_OR_RETURN(std::vector<uint8_t> encoded, encode_image(result, format));
  return write_file(item.output, encoded);
}

}  // namespace

BatchSummary run_batch(Engine& engine, const Pipeline& pipeline, const std::vector<BatchItem>& items,
                       std::ostream& errors) {
  BatchSummary summary;
  const auto start = std::chrono::steady_clock::now();
  for (const BatchItem& item : items) {
    Status status = item.problem.ok() ? process_one(engine, pipeline, item, &summary.megapixels)
                                      : item.problem;
    if (status.ok()) {
      ++summary.succeeded;
    } else {
      ++summary.failed;
      errors << item.source.string() << ": error: " << status.message() << "\n" << std::flush;
    }
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace imgq::workers
