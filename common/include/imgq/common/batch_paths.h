// Which files a batch processes and where each result goes; shared by the
// worker's standalone mode and the imgq client, so both name results alike.
//
// A file is taken as given; a folder is walked recursively for files with
// image extensions, in sorted order, passing over the output folder when it
// lies inside (a run never takes its own results as inputs) and files being
// written (*.imgq-part*). Each result is written under the output folder with
// its path relative to the folder given (photos/a/b.jpg from photos/ becomes
// OUT/a/b.<ext>), the extension, lower-case, being output_extension()'s.
// Which extensions are images, and the default output format: formats.h.
// Pure file-system logic; no image library.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "imgq/common/formats.h"
#include "imgq/common/status.h"

namespace imgq {

// "png" for "photo.PNG"; empty when there is no extension.
std::string extension_of(const std::filesystem::path& path);

// The extension of `input`'s result: `format` when given (lower-case), else
// default_output_format() of the input's (formats.h).
std::string output_extension(const std::filesystem::path& input, const std::string& format, bool edges);

// A file of ours being written (NAME.imgq-partPID.EXT): never an input.
bool is_partial_result(const std::filesystem::path& path);

// The file imgq leaves in an output folder it made; a folder holding it is
// passed over when a folder given as input is walked, so results are never
// taken as inputs by a later run (the folder itself may still be given).
inline constexpr const char* kResultsMarker = ".imgq-results";
// Makes `dir` (and its parents) if it does not exist, marking it as imgq's.
// `made`, when given, says whether this call made it.
Status make_results_folder(const std::filesystem::path& dir, bool* made = nullptr);

// A results folder for one command: made when missing, and removed again
// when the command made it and wrote nothing into it, so that a run that
// failed at once (a broker down, a typo) leaves no empty folder behind.
class ResultsFolder {
 public:
  ResultsFolder() = default;
  ~ResultsFolder();
  ResultsFolder(const ResultsFolder&) = delete;
  ResultsFolder& operator=(const ResultsFolder&) = delete;

  // Makes `dir` if missing; the command must be able to write into it.
  Status open(const std::filesystem::path& dir);

 private:
  std::filesystem::path made_;  // empty unless open() made the folder
};

struct BatchItem {
  std::filesystem::path source;
  std::filesystem::path output;  // empty when `problem` says why there is none
  Status problem;                // set when the item cannot be processed at all
};

struct BatchPlan {
  std::vector<BatchItem> items;
  size_t not_images = 0;             // files in the folders given that are no images
  size_t result_folders = 0;         // folders of earlier results passed over (kResultsMarker)
  std::vector<std::string> empty;    // inputs given that hold no image at all
};

// Expands the inputs. Inputs that do not exist, and outputs that two inputs
// would share, become items with a problem, reported like any other failure;
// a folder with no image in it is listed in `empty` (a usage error for
// the callers). `edges`: see output_extension().
BatchPlan plan_batch(const std::vector<std::string>& inputs, const std::filesystem::path& out_dir,
                     const std::string& format, bool edges = false);

}  // namespace imgq
