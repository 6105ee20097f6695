// Reading, decoding, encoding and writing images, with errors that name the
// file and say what was wrong. Images are decoded as they are
// (cv::IMREAD_UNCHANGED): 8- or 16-bit, 1, 3 or 4 channels.
//
// Encoding refuses what a format cannot store instead of letting OpenCV
// convert silently (OpenCV writes 16-bit data to JPEG by saturating it to
// 8 bits, and drops alpha for JPEG and BMP). Thread-compatible.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <opencv2/core.hpp>

#include "imgq/common/batch_paths.h"
#include "imgq/common/file_io.h"
#include "imgq/common/status.h"

namespace imgq::workers {

// Decodes encoded image bytes; InvalidImage for empty, unrecognised or
// corrupt data, Unsupported for pixel kinds imgq does not process.
Result<cv::Mat> decode_image(std::span<const uint8_t> bytes);

// Encodes `image` as `format` (an output format, case-insensitive).
Result<std::vector<uint8_t>> encode_image(const cv::Mat& image, std::string_view format);

}  // namespace imgq::workers
