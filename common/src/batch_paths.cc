#include "imgq/common/batch_paths.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <fstream>
#include <map>
#include <tuple>

#include "imgq/common/text.h"

namespace imgq {
namespace fs = std::filesystem;

namespace {

fs::path output_for(const fs::path& relative, const fs::path& out_dir, const std::string& format, bool edges) {
  fs::path out = out_dir / relative;
  out.replace_extension("." + output_extension(relative, format, edges));
  return out;
}

}  // namespace

std::string extension_of(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext.empty() ? ext : ascii_lower(ext.substr(1));
}

std::string output_extension(const fs::path& input, const std::string& format, bool edges) {
  if (!format.empty()) return ascii_lower(format);
  return default_output_format(extension_of(input), edges);
}

bool is_partial_result(const fs::path& path) {
  return path.filename().string().find(".imgq-part") != std::string::npos;
}

Status make_results_folder(const fs::path& dir, bool* made) {
  std::error_code ec;
  if (made != nullptr) *made = false;
  if (fs::exists(dir, ec)) return Status::Ok();
  if (!fs::create_directories(dir, ec) && ec) {
    return Status::IoError("cannot make the folder " + dir.string() + ": " + ec.message());
  }
  if (made != nullptr) *made = true;
  std::ofstream marker(dir / kResultsMarker);
  marker << "Results written by imgq. imgq submit passes over this folder when it walks a folder given as input.\n";
  return Status::Ok();
}

Status ResultsFolder::open(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) {
    return Status::InvalidArgument("-o " + dir.string() + " is a file; give a folder for the results");
  }
  bool made = false;
  if (Status status = make_results_folder(dir, &made); !status.ok()) return Status::InvalidArgument(status.message());
  if (made) made_ = dir;
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return Status::InvalidArgument("cannot write into the output folder " + dir.string() + ": " +
                                   std::strerror(errno) + "; give another with -o DIR");
  }
  return Status::Ok();
}

ResultsFolder::~ResultsFolder() {
  if (made_.empty()) return;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(made_, ec)) {
    if (entry.path().filename() != kResultsMarker) return;  // something was written: keep it
  }
  if (ec) return;
  fs::remove(made_ / kResultsMarker, ec);
  fs::remove(made_, ec);  // only if empty now
}

BatchPlan plan_batch(const std::vector<std::string>& inputs, const fs::path& out_dir, const std::string& format,
                     bool edges) {
  BatchPlan plan;
  std::vector<BatchItem>& items = plan.items;
  std::error_code ec;
  const fs::path out_abs = fs::weakly_canonical(fs::absolute(out_dir, ec), ec);
  for (const std::string& input : inputs) {
    const fs::path root(input);
    if (fs::is_directory(root, ec)) {
      std::vector<fs::path> found;
      size_t others = 0;
      for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        std::error_code e;
        if (it->is_directory(e)) {
          // This run's own output folder, and those of earlier runs, are
          // never walked for inputs.
          if (fs::weakly_canonical(it->path(), e) == out_abs) {
            it.disable_recursion_pending();
          } else if (fs::exists(it->path() / kResultsMarker, e)) {
            it.disable_recursion_pending();
            ++plan.result_folders;
          }
          continue;
        }
        if (!it->is_regular_file(e) || is_partial_result(it->path())) continue;
        if (is_image_extension(extension_of(it->path()))) {
          found.push_back(it->path());
        } else {
          ++others;
        }
      }
      if (ec) items.push_back({root, {}, Status::IoError("cannot list folder: " + ec.message())});
      if (found.empty() && !ec) plan.empty.push_back(input);
      plan.not_images += others;
      std::sort(found.begin(), found.end());
      for (const fs::path& p : found) {
        items.push_back({p, output_for(p.lexically_relative(root), out_dir, format, edges), {}});
      }
    } else if (fs::exists(root, ec)) {
      items.push_back({root, output_for(root.filename(), out_dir, format, edges), {}});
    } else {
      items.push_back({root, {}, Status::NotFound("no such file or folder")});
    }
  }

  // Two inputs must never write the same output file. Results that keep
  // their input's extension claim their names first; one whose extension
  // changed (a.jpg -> a.png) and meets another's keeps its input's
  // extension in its name too (a.jpg.png); what still meets is a problem.
  std::map<fs::path, fs::path> claimed;
  for (const bool kept_extension : {true, false}) {
    for (BatchItem& item : items) {
      if (!item.problem.ok()) continue;
      const std::string own = extension_of(item.source);
      if ((own == extension_of(item.output)) != kept_extension) continue;
      auto [it, fresh] = claimed.emplace(item.output.lexically_normal(), item.source);
      if (!fresh && !kept_extension && !own.empty()) {
        fs::path renamed = item.output;
        renamed.replace_filename(item.output.stem().string() + "." + own + item.output.extension().string());
        std::tie(it, fresh) = claimed.emplace(renamed.lexically_normal(), item.source);
        if (fresh) item.output = renamed;
      }
      if (!fresh) {
        item.problem = Status::InvalidArgument("its output " + item.output.string() +
                                               " would overwrite the result of " + it->second.string());
      }
    }
  }
  return plan;
}

}  // namespace imgq
