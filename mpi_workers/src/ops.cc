#include "imgq/mpi_workers/ops.h"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

namespace imgq::workers {
namespace {

using schemas::OpId;

// A resize may not produce more than this many pixels (about 12 GB at 16-bit
// RGBA); larger requests are almost certainly a mistake in width/height/scale.
constexpr double kMaxResizePixels = 1 << 30;

std::string depth_name(int depth) { return depth == CV_16U ? "16-bit" : "8-bit"; }

Status unsupported(const OpCall& op, const ImageInfo& in, std::string_view allowed) {
  return Status::Unsupported(std::string(op.name()) + ": not supported on a " +
                             depth_name(in.depth) + " " + std::to_string(in.channels) +
                             "-channel image; " + std::string(allowed));
}

Status require_8bit(const OpCall& op, const ImageInfo& in) {
  if (in.depth == CV_8U) return Status::Ok();
  return unsupported(op, in, "it needs 8-bit input (put --op to_8bit before it)");
}

// The resize's result width and height in double arithmetic, before any
// conversion to int: a large image times a large scale must be refused, not
// wrapped (cvRound of 200,000,000 x 16 overflows an int, and a wrapped size
// could pass any check). Exact here: both factors are far below 2^53.
std::pair<double, double> resize_extent(const OpCall& op, const ImageInfo& in) {
  if (op.has("width")) return {static_cast<double>(op.get_int("width")), static_cast<double>(op.get_int("height"))};
  const double s = op.get_double("scale");
  return {std::max(1.0, std::nearbyint(in.cols * s)), std::max(1.0, std::nearbyint(in.rows * s))};
}

// The result size; only for sizes check_op() accepted.
cv::Size resize_target(const OpCall& op, const ImageInfo& in) {
  if (op.has("width")) {
    return {static_cast<int>(op.get_int("width")), static_cast<int>(op.get_int("height"))};
  }
  const double s = op.get_double("scale");
  return {std::max(1, cvRound(in.cols * s)), std::max(1, cvRound(in.rows * s))};
}

int interpolation_flag(const std::string& name) {
  if (name == "linear") return cv::INTER_LINEAR;
  if (name == "cubic") return cv::INTER_CUBIC;
  if (name == "nearest") return cv::INTER_NEAREST;
  return cv::INTER_AREA;
}

cv::Mat rect_kernel(const OpCall& op) {
  const int k = static_cast<int>(op.get_int("ksize"));
  return cv::getStructuringElement(cv::MORPH_RECT, cv::Size(k, k));
}

int ksize(const OpCall& op) { return static_cast<int>(op.get_int("ksize")); }

// Applies `op` to `in`; may throw cv::Exception (converted by apply_op).
cv::Mat run_op(const OpCall& op, const cv::Mat& in) {
  cv::Mat out;
  switch (op.id()) {
    case OpId::kIdentity:
      out = in.clone();
      break;
    case OpId::kGrayscale:
      if (in.channels() == 1) out = in.clone();
      else cv::cvtColor(in, out, in.channels() == 3 ? cv::COLOR_BGR2GRAY : cv::COLOR_BGRA2GRAY);
      break;
    case OpId::kInvert:
      cv::bitwise_not(in, out);
      break;
    case OpId::kThreshold: {
      const double max = op.has("max") ? op.get_double("max") : (in.depth() == CV_16U ? 65535 : 255);
      cv::threshold(in, out, op.get_double("value"), max, cv::THRESH_BINARY);
      break;
    }
    case OpId::kBrightnessContrast:
      in.convertTo(out, -1, op.get_double("alpha"), op.get_double("beta"));
      break;
    case OpId::kTo8bit:
      if (in.depth() == CV_16U) in.convertTo(out, CV_8U, 1 / 257.0);
      else out = in.clone();
      break;
    case OpId::kGaussianBlur:
      cv::GaussianBlur(in, out, cv::Size(ksize(op), ksize(op)), op.get_double("sigma"));
      break;
    case OpId::kBoxBlur:
      cv::blur(in, out, cv::Size(ksize(op), ksize(op)));
      break;
    case OpId::kMedianBlur:
      cv::medianBlur(in, out, ksize(op));
      break;
    case OpId::kSharpen: {
      const cv::Mat kernel = (cv::Mat_<float>(3, 3) << 0, -1, 0, -1, 5, -1, 0, -1, 0);
      cv::filter2D(in, out, -1, kernel);
      break;
    }
    case OpId::kSobel: {
      cv::Mat dx, dy, adx, ady;
      cv::Sobel(in, dx, CV_16S, 1, 0, ksize(op));
      cv::Sobel(in, dy, CV_16S, 0, 1, ksize(op));
      cv::convertScaleAbs(dx, adx);
      cv::convertScaleAbs(dy, ady);
      cv::addWeighted(adx, 0.5, ady, 0.5, 0, out);
      break;
    }
    case OpId::kCanny:
      cv::Canny(in, out, op.get_double("low"), op.get_double("high"),
                static_cast<int>(op.get_int("aperture")), op.get_bool("l2"));
      break;
    case OpId::kErode:
      cv::erode(in, out, rect_kernel(op), cv::Point(-1, -1), static_cast<int>(op.get_int("iterations")));
      break;
    case OpId::kDilate:
      cv::dilate(in, out, rect_kernel(op), cv::Point(-1, -1), static_cast<int>(op.get_int("iterations")));
      break;
    case OpId::kEqualizeHist:
      if (in.channels() == 1) {
        cv::equalizeHist(in, out);
      } else {
        cv::Mat ycrcb;
        cv::cvtColor(in, ycrcb, cv::COLOR_BGR2YCrCb);
        std::vector<cv::Mat> planes;
        cv::split(ycrcb, planes);
        cv::equalizeHist(planes[0], planes[0]);
        cv::merge(planes, ycrcb);
        cv::cvtColor(ycrcb, out, cv::COLOR_YCrCb2BGR);
      }
      break;
    case OpId::kResize:
      cv::resize(in, out, resize_target(op, ImageInfo::of(in)), 0, 0,
                 interpolation_flag(op.get_enum("interpolation")));
      break;
    case OpId::kRotate: {
      const int64_t angle = op.get_int("angle");
      cv::rotate(in, out, angle == 90    ? cv::ROTATE_90_CLOCKWISE
                          : angle == 180 ? cv::ROTATE_180
                                         : cv::ROTATE_90_COUNTERCLOCKWISE);
      break;
    }
    case OpId::kFlip: {
      const std::string& axis = op.get_enum("axis");
      cv::flip(in, out, axis == "h" ? 1 : axis == "v" ? 0 : -1);
      break;
    }
  }
  return out;
}

}  // namespace

std::string describe(const ImageInfo& info) {
  return std::to_string(info.cols) + "x" + std::to_string(info.rows) + " " +
         depth_name(info.depth) + " " + std::to_string(info.channels) + "-channel";
}

Status check_image(const ImageInfo& info) {
  if (info.rows <= 0 || info.cols <= 0) return Status::InvalidImage("the image has no pixels");
  const uint64_t pixels = static_cast<uint64_t>(info.rows) * static_cast<uint64_t>(info.cols);  // < 2^62
  if (pixels > kMaxImagePixels) {
    return Status::TooLarge("the image is " + std::to_string(info.cols) + " x " + std::to_string(info.rows) + " (" +
                            std::to_string(pixels) + " pixels); imgq processes at most 2^31 - 1 pixels per image");
  }
  if (info.depth != CV_8U && info.depth != CV_16U) {
    return Status::Unsupported("pixel depth " + std::to_string(info.depth) +
                               " is not supported; imgq processes 8- and 16-bit images");
  }
  if (info.channels != 1 && info.channels != 3 && info.channels != 4) {
    return Status::Unsupported(std::to_string(info.channels) +
                               "-channel images are not supported; imgq processes 1, 3 or 4 channels");
  }
  return Status::Ok();
}

OpTraits op_traits(const OpCall& op) {
  switch (op.id()) {
    case OpId::kGaussianBlur:
    case OpId::kBoxBlur:
    case OpId::kMedianBlur:
      return {Distribution::kLocal, ksize(op) / 2};
    case OpId::kSharpen:
      return {Distribution::kLocal, 1};
    case OpId::kSobel:
      return {Distribution::kLocal, std::max(1, ksize(op) / 2)};
    case OpId::kErode:
    case OpId::kDilate:
      return {Distribution::kLocal, static_cast<int>(op.get_int("iterations")) * (ksize(op) / 2)};
    case OpId::kCanny:
      // Sobel needs aperture/2 rows, non-maximum suppression one more.
      return {Distribution::kCanny, static_cast<int>(op.get_int("aperture")) / 2 + 1};
    case OpId::kEqualizeHist:
      return {Distribution::kEqualizeHist, 0};
    case OpId::kResize:
    case OpId::kRotate:
      return {Distribution::kLeaderOnly, 0};
    case OpId::kFlip:
      // A left-right mirror keeps every row in place; the others move rows.
      return {op.get_enum("axis") == "h" ? Distribution::kLocal : Distribution::kLeaderOnly, 0};
    default:
      return {Distribution::kLocal, 0};
  }
}

Result<ImageInfo> check_op(const OpCall& op, const ImageInfo& in) {
  IMGQ_RETURN_IF_ERROR(check_image(in));
  ImageInfo out = in;
  const double type_max = in.depth == CV_16U ? 65535 : 255;
  switch (op.id()) {
    case OpId::kGrayscale:
      out.channels = 1;
      break;
    case OpId::kThreshold:
      for (const char* key : {"value", "max"}) {
        if (op.has(key) && op.get_double(key) > type_max) {
          return Status::InvalidArgument(
              "threshold: " + std::string(key) + " must be at most " +
              std::to_string(static_cast<int>(type_max)) + " for a " + depth_name(in.depth) +
              " image");
        }
      }
      break;
    case OpId::kTo8bit:
      out.depth = CV_8U;
      break;
    case OpId::kMedianBlur:
      if (in.depth == CV_16U && ksize(op) > 5) {
        return unsupported(op, in, "16-bit images allow ksize 1, 3 or 5 only");
      }
      break;
    case OpId::kSobel:
      IMGQ_RETURN_IF_ERROR(require_8bit(op, in));
      break;
    case OpId::kCanny:
      IMGQ_RETURN_IF_ERROR(require_8bit(op, in));
      out.channels = 1;
      break;
    case OpId::kEqualizeHist:
      IMGQ_RETURN_IF_ERROR(require_8bit(op, in));
      if (in.channels == 4) return unsupported(op, in, "it takes 1 or 3 channels");
      break;
    case OpId::kResize: {
      const auto [width, height] = resize_extent(op, in);
      if (width * height > kMaxResizePixels) {
        return Status::TooLarge("resize: the result would be " + std::to_string(static_cast<uint64_t>(width)) + "x" +
                                std::to_string(static_cast<uint64_t>(height)) + ", more than 2^30 pixels");
      }
      const cv::Size size = resize_target(op, in);
      out.cols = size.width;
      out.rows = size.height;
      break;
    }
    case OpId::kRotate:
      if (op.get_int("angle") != 180) std::swap(out.rows, out.cols);
      break;
    default:
      break;
  }
  return out;
}

Result<ImageInfo> check_pipeline(const Pipeline& pipeline, ImageInfo in) {
  IMGQ_RETURN_IF_ERROR(check_image(in));
  for (size_t i = 0; i < pipeline.size(); ++i) {
    auto next = check_op(pipeline[i], in);
    if (!next.ok()) return next.status().WithContext("op " + std::to_string(i + 1));
    in = *next;
  }
  return in;
}

Result<cv::Mat> apply_op(const OpCall& op, const cv::Mat& in) {
  try {
    return run_op(op, in);
  } catch (const cv::Exception& e) {
    return Status::Internal(std::string(op.name()) + ": OpenCV failed: " + e.what());
  }
}

Result<cv::Mat> apply_pipeline(const Pipeline& pipeline, cv::Mat image) {
  IMGQ_RETURN_IF_ERROR(check_pipeline(pipeline, ImageInfo::of(image)).status());
  for (const OpCall& op : pipeline) {
    IMGQ_ASSIGN_OR_RETURN(image, apply_op(op, image));
  }
  return image;
}

}  // namespace imgq::workers
