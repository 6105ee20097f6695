#include "imgq/common/batch_paths.h"

#include <algorithm>
#include <map>

#include "imgq/common/text.h"

namespace imgq {
namespace fs = std::filesystem;

namespace {

fs::path output_for(const fs::path& relative, const fs::path& out_dir, const std::string& format) {
  fs::path out = out_dir / relative;
  if (!format.empty()) out.replace_extension("." + format);
  return out;
}

}  // namespace

bool is_image_extension(std::string_view extension) {
  static const std::vector<std::string_view> known = {
      "png", "jpg", "jpeg", "jpe", "tif", "tiff", "bmp", "dib", "webp", "ppm",
      "pgm", "pbm", "pnm",  "jp2", "sr",  "ras",  "exr", "hdr", "pic", "pfm"};
  return std::find(known.begin(), known.end(), ascii_lower(extension)) != known.end();
}

const std::vector<std::string_view>& output_format_names() {
  static const std::vector<std::string_view> names = {"png", "tif", "tiff", "jpg",  "jpeg",
                                                      "bmp", "webp", "ppm", "pgm", "pnm"};
  return names;
}

bool is_output_format(std::string_view format) {
  const auto& names = output_format_names();
  return std::find(names.begin(), names.end(), ascii_lower(format)) != names.end();
}

std::string output_formats_text() {
  std::string out;
  for (std::string_view f : output_format_names()) out += (out.empty() ? "" : ", ") + std::string(f);
  return out;
}

std::string extension_of(const fs::path& p) {
  std::string ext = p.extension().string();
  return ext.empty() ? ext : ascii_lower(ext.substr(1));
}

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
      if (ec) items.push_back({root, {}, Status::IoError("cannot list folder: " + ec.message())});
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

}  // namespace imgq
