// Which files a batch processes and where each result goes; shared by the
// worker's standalone mode and the imgq client, so both name results alike.
//
// A file is taken as given; a folder is walked recursively for files with
// image extensions, in sorted order. Each result is written under the output
// folder with its path relative to the folder given (photos/a/b.jpg from
// photos/ becomes OUT/a/b.<ext>), the extension being the requested format or
// the input's own. Pure file-system logic; no image library.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "imgq/common/status.h"

namespace imgq {

// Extensions (any case, no dot) that are read when scanning a folder.
bool is_image_extension(std::string_view extension);

// Formats imgq writes: png, tif, tiff, jpg, jpeg, bmp, webp, ppm, pgm, pnm.
const std::vector<std::string_view>& output_format_names();
bool is_output_format(std::string_view format);
std::string output_formats_text();

// "png" for "photo.PNG"; empty when there is no extension.
std::string extension_of(const std::filesystem::path& path);

struct BatchItem {
  std::filesystem::path source;
  std::filesystem::path output;  // empty when `problem` says why there is none
  Status problem;                // set when the item cannot be processed at all
};

// Expands the inputs. Inputs that do not exist, and outputs that two inputs
// would share, become items with a problem, reported like any other failure.
std::vector<BatchItem> plan_batch(const std::vector<std::string>& inputs,
                                  const std::filesystem::path& out_dir, const std::string& format);

}  // namespace imgq
