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
#include "imgq/common/image_header.h"
#include "imgq/common/status.h"

namespace imgq::workers {

// Decodes encoded image bytes after check_image_header(): InvalidImage for
// empty, unrecognised, truncated or corrupt data, TooLarge for an image
// declaring more than `max_pixels` pixels (0 = no limit), Unsupported for
// pixel kinds imgq does not process.
Result<cv::Mat> decode_image(std::span<const uint8_t> bytes, uint64_t max_pixels = kDefaultMaxPixels);

// Whether the output format `format` stores an image of OpenCV type `type`
// as it is (formats.h's check_can_store()).
bool can_store_type(std::string_view format, int type);

// Encodes `image` as `format` (an output format, case-insensitive); refuses
// what check_can_store() refuses.
Result<std::vector<uint8_t>> encode_image(const cv::Mat& image, std::string_view format);

}  // namespace imgq::workers
