// The two ops that are not local, cut into the parts each rank runs on its
// strip and the small global step between them. Together they equal the
// whole-image op byte for byte (see ops.h); tests/mpi_workers checks that
// against cv::equalizeHist and cv::Canny on strips of every size.
//
// equalize_hist: OpenCV builds one 256-bin histogram of the whole image (of Y
//   in YCrCb for 3 channels) and maps every sample through a lookup table made
//   from it. Each rank histograms its rows; the sum over ranks is the whole
//   image's histogram, and the table depends on nothing else.
//
// canny: OpenCV's result is the set of weak candidates (non-maximum
//   suppressed, gradient above low) that are 8-connected through candidates to
//   a strong pixel (candidate with gradient above high). Canny(low, low) marks
//   exactly the candidates and Canny(high, high) exactly the strong pixels,
//   each pointwise, so with enough halo rows a rank classifies its own rows
//   exactly, links edges inside its strip, and a last pass over the merged map
//   links what crosses strip boundaries.
//
// All functions are pure and thread-compatible.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include <opencv2/core.hpp>

#include "imgq/schemas/op_call.h"

namespace imgq::workers {

// ---- equalize_hist ----

using Histogram = std::array<int64_t, 256>;

// A strip on its way through equalize_hist: the plane whose histogram counts
// (the strip itself, or Y of its YCrCb) and, for colour, the YCrCb image.
struct EqualizeStrip {
  cv::Mat plane;
  cv::Mat ycrcb;
};

EqualizeStrip equalize_prepare(const cv::Mat& strip);
Histogram equalize_histogram(const EqualizeStrip& strip);
// The strip's rows of equalize_hist on the whole image whose histogram is
// `whole` (the sum of every strip's histogram).
cv::Mat equalize_finish(EqualizeStrip& strip, const Histogram& whole);

// ---- canny ----

enum CannyMark : uint8_t { kNotEdge = 0, kCandidate = 1, kEdge = 2 };

// kEdge for strong pixels, kCandidate for weak ones, kNotEdge elsewhere; exact
// on rows at least op_traits(canny).halo rows away from a cut edge of `buffer`.
cv::Mat canny_classify(const cv::Mat& buffer, const schemas::OpCall& canny);

// Hysteresis inside `map` (CV_8U, continuous): every kCandidate 8-connected
// through candidates to a kEdge becomes kEdge.
void canny_link(cv::Mat& map);

// On the map of a whole image made of strips each already linked by
// canny_link, links across the boundaries: `boundaries` are the first rows of
// every strip but the first.
void canny_link_across(cv::Mat& map, std::span<const int> boundaries);

// Turns a linked map into Canny's output in place: 255 on kEdge, else 0.
void canny_finish(cv::Mat& map);

}  // namespace imgq::workers
