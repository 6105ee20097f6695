// TIFF's LZW, written by us: libtiff 4.5's encoder is about 60% of a TIFF
// job's CPU (7 ns a byte; 0.7 s for each rank's half of a 64 MP image), and
// it is what every rank runs on its rows. The stream is TIFF 6.0's: codes
// of 9 to 12 bits, most significant bit first, Clear (256) first, the
// width grown one code early (as libtiff and every TIFF reader expect), a
// Clear when the table is full, EOI (257) last. Any TIFF reader decodes it
// to the same bytes; the compressed bytes may differ from libtiff's, which
// also restarts its table when the ratio drops.
//
// Also the horizontal predictor (TIFF's Predictor 2) with OpenCV's BGR(A)
// -> RGB(A) order, in one pass, so a strip is read once before its LZW.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <opencv2/core.hpp>

namespace imgq::workers {

// Appends the LZW stream of `in` (one strip's bytes) to `out`.
void tiff_lzw_encode(std::span<const uint8_t> in, std::string& out);

// Row `y` of `image` (8 or 16 bits, 1, 3 or 4 channels, BGR(A) order) as a
// TIFF strip holds it before compression: RGB(A) order, each sample minus
// the same sample of the pixel before (modulo 2^8 or 2^16), native-endian.
// `dst` has room for the row's bytes.
void tiff_predict_row(const cv::Mat& image, int y, uint8_t* dst);

}  // namespace imgq::workers
