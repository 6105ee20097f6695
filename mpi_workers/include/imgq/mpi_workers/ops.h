// The ops on pixels: what each op of the catalog (schemas/op_catalog.h) means
// on a whole image with OpenCV, which images it accepts, and how it may be
// split over row strips.
//
// apply_op() is the single-process meaning the distributed engine must equal
// byte for byte (the table of issue 2). It runs the same OpenCV call on a
// strip buffer as on a whole image; the engine makes that exact by giving it
// enough halo rows and never passing a submatrix (some OpenCV filters pick a
// different code path for submatrices). Stateless and thread-compatible.
#pragma once

#include <string>

#include <opencv2/core.hpp>

#include "imgq/common/status.h"
#include "imgq/schemas/op_call.h"

namespace imgq::workers {

using schemas::OpCall;
using schemas::Pipeline;

// What the engine needs to know of an image without its pixels.
struct ImageInfo {
  int rows = 0;
  int cols = 0;
  int depth = CV_8U;  // CV_8U or CV_16U
  int channels = 1;   // 1, 3 or 4

  int type() const { return CV_MAKETYPE(depth, channels); }
  static ImageInfo of(const cv::Mat& m) { return {m.rows, m.cols, m.depth(), m.channels()}; }
  static ImageInfo of_type(int rows, int cols, int type) { return {rows, cols, CV_MAT_DEPTH(type), CV_MAT_CN(type)}; }
  bool operator==(const ImageInfo&) const = default;
};

// "640x480 16-bit 3-channel"
std::string describe(const ImageInfo& info);

// The most pixels of one image, whatever --max-pixels says: pixel indices
// are int in OpenCV's filters and in our own passes over a whole image.
inline constexpr uint64_t kMaxImagePixels = 0x7fff'ffff;

// Checks that imgq can process an image of this kind at all (8/16-bit, 1/3/4
// channels, not empty, at most kMaxImagePixels).
Status check_image(const ImageInfo& info);

// How an op may be distributed over row strips.
enum class Distribution {
  kLocal,         // output row y depends on input rows y-halo..y+halo only
  kEqualizeHist,  // pointwise once a global histogram is known
  kCanny,         // local candidate/strong maps, then a global connectivity pass
  kLeaderOnly,    // changes the geometry; runs on the leader alone
};

struct OpTraits {
  Distribution distribution = Distribution::kLocal;
  int halo = 0;  // rows of context needed above and below each output row
};

OpTraits op_traits(const OpCall& op);

// The image `op` produces from an image described by `in`, or why it cannot
// run on it (Unsupported, naming the op, the image's kind and what is allowed).
Result<ImageInfo> check_op(const OpCall& op, const ImageInfo& in);

// check_op over a whole pipeline; the error names the op's position.
Result<ImageInfo> check_pipeline(const Pipeline& pipeline, ImageInfo in);

// The op's whole-image meaning. `in` must have passed check_op; an OpenCV
// error is returned as Internal, never thrown.
Result<cv::Mat> apply_op(const OpCall& op, const cv::Mat& in);

// The pipeline applied op by op on one process: the reference result.
Result<cv::Mat> apply_pipeline(const Pipeline& pipeline, cv::Mat image);

}  // namespace imgq::workers
