// Binary PGM/PPM (P5, P6) read and written by rows at their file offsets,
// so every rank of a group can read its own strip of a large local image and
// write its own rows of the result in parallel, instead of the leader
// decoding, scattering, gathering and encoding everything alone.
//
// Byte for byte what OpenCV's PxM codec reads and writes: rows of RGB (or
// gray), 16-bit samples big-endian, the header "P6\n<cols> <rows>\n<maxval>\n".
// Only maxval 255 (8-bit) and 65535 (16-bit) are taken; anything else goes
// through OpenCV as usual. Thread-compatible.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include <opencv2/core.hpp>

#include "imgq/common/status.h"

namespace imgq::workers {

struct PnmLayout {
  int rows = 0;
  int cols = 0;
  int type = 0;              // CV_8UC1, CV_8UC3, CV_16UC1 or CV_16UC3
  uint64_t data_offset = 0;  // where the first row starts
  uint64_t row_bytes() const { return static_cast<uint64_t>(cols) * CV_ELEM_SIZE(type); }
  uint64_t file_bytes() const { return data_offset + row_bytes() * static_cast<uint64_t>(rows); }
};

// The layout of a binary PGM/PPM from the start of its file, or nothing
// when it is not one this module handles (then decode it whole).
std::optional<PnmLayout> pnm_layout(std::span<const uint8_t> head);

// The header OpenCV writes for an image of `type` (1 or 3 channels, 8 or 16
// bits), and the layout it gives.
std::string pnm_header(int rows, int cols, int type);
PnmLayout pnm_layout_for(int rows, int cols, int type);

// Rows [begin, begin + count) of the image at `path`, as OpenCV decodes
// them (BGR, native-endian samples).
Result<cv::Mat> read_pnm_rows(const std::filesystem::path& path, const PnmLayout& layout, int begin, int count);

// Writes `rows` (BGR, native-endian, continuous) as rows starting at
// `begin` into the file at `path`, which already has the full size.
Status write_pnm_rows(const std::filesystem::path& path, const PnmLayout& layout, int begin, const cv::Mat& rows);

}  // namespace imgq::workers
