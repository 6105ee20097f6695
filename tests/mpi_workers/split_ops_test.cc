// The split forms of canny and equalize_hist, run strip by strip in one
// process over every way of cutting an image into 1..9 strips, must equal
// OpenCV's whole-image call byte for byte.
#include "imgq/mpi_workers/split_ops.h"

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "common/test_images.h"
#include "imgq/mpi_workers/strip_plan.h"

namespace imgq::workers {
namespace {

using imgq::testing::make_image;
using imgq::testing::Pattern;
using imgq::testing::SameImage;

OpCall op(const std::string& spec) { return *schemas::parse_op(spec); }

// What the engine does for a canny stage, without MPI.
cv::Mat split_canny(const cv::Mat& image, const OpCall& canny, int parts) {
  const auto strips = plan_strips(image.rows, parts, op_traits(canny).halo);
  cv::Mat map(image.rows, image.cols, CV_8U);
  std::vector<int> boundaries;
  for (const Strip& s : strips) {
    if (s.rows() == 0) continue;
    const cv::Mat buffer = image.rowRange(s.buf_begin, s.buf_end).clone();
    cv::Mat own = canny_classify(buffer, canny).rowRange(s.begin - s.buf_begin, s.end - s.buf_begin).clone();
    canny_link(own);
    own.copyTo(map.rowRange(s.begin, s.end));
    if (s.begin > 0) boundaries.push_back(s.begin);
  }
  canny_link_across(map, boundaries);
  canny_finish(map);
  return map;
}

cv::Mat split_equalize(const cv::Mat& image, int parts) {
  const auto strips = plan_strips(image.rows, parts, 0);
  std::vector<EqualizeStrip> work;
  Histogram whole{};
  for (const Strip& s : strips) {
    if (s.rows() == 0) continue;
    work.push_back(equalize_prepare(image.rowRange(s.begin, s.end)));
    const Histogram h = equalize_histogram(work.back());
    for (size_t i = 0; i < h.size(); ++i) whole[i] += h[i];
  }
  std::vector<cv::Mat> parts_out;
  for (EqualizeStrip& w : work) parts_out.push_back(equalize_finish(w, whole));
  cv::Mat out;
  cv::vconcat(parts_out, out);
  return out;
}

TEST(SplitCanny, EqualsOpenCVForEveryCut) {
  const std::vector<std::string> specs = {"canny", "canny:low=20,high=60", "canny:low=50,high=150,l2=true",
                                          "canny:low=200,high=900,aperture=5",
                                          "canny:low=2000,high=9000,aperture=7,l2=true"};
  std::vector<std::pair<std::string, cv::Mat>> images;
  for (int channels : {1, 3, 4}) {
    images.emplace_back("shapes c" + std::to_string(channels), make_image(61, 83, CV_8U, channels, Pattern::kShapes));
  }
  images.emplace_back("noise", make_image(47, 31, CV_8U, 1, Pattern::kNoise));
  images.emplace_back("snake", make_image(90, 40, CV_8U, 1, Pattern::kSnake));
  images.emplace_back("tiny", make_image(3, 5, CV_8U, 1, Pattern::kNoise));
  images.emplace_back("one row", make_image(1, 9, CV_8U, 3, Pattern::kNoise));
  for (const auto& photo : imgq::testing::sample_photographs(2)) {
    if (photo.image.depth() == CV_8U) images.emplace_back(photo.name, photo.image);
  }
  for (const std::string& spec : specs) {
    const OpCall canny = op(spec);
    for (const auto& [name, image] : images) {
      cv::Mat expected;
      cv::Canny(image, expected, canny.get_double("low"), canny.get_double("high"),
                static_cast<int>(canny.get_int("aperture")), canny.get_bool("l2"));
      for (int parts = 1; parts <= 9; ++parts) {
        EXPECT_TRUE(SameImage(expected, split_canny(image, canny, parts)))
            << spec << " on " << name << " in " << parts << " strips";
      }
    }
  }
}

TEST(SplitCanny, FollowsAWeakEdgeAcrossEveryStrip) {
  // The snake is weak everywhere but at its foot: only linking across strip
  // boundaries (and back, as it winds) recovers it.
  const cv::Mat snake = make_image(120, 40, CV_8U, 1, Pattern::kSnake);
  cv::Mat expected;
  cv::Canny(snake, expected, 50, 200);
  ASSERT_GT(cv::countNonZero(expected.rowRange(0, 10)), 0) << "the test image must reach the top";
  const cv::Mat strips_only = split_canny(snake, op("canny:low=50,high=200"), 8);
  EXPECT_TRUE(SameImage(expected, strips_only));
}

TEST(SplitEqualize, EqualsOpenCVForEveryCut) {
  std::vector<cv::Mat> images = {make_image(61, 83, CV_8U, 1, Pattern::kShapes),
                                 make_image(61, 83, CV_8U, 3, Pattern::kShapes),
                                 make_image(5, 3, CV_8U, 3, Pattern::kNoise),
                                 make_image(1, 1, CV_8U, 1, Pattern::kNoise),
                                 cv::Mat(7, 9, CV_8UC1, cv::Scalar(42))};  // one value only
  for (const auto& photo : imgq::testing::sample_photographs(2)) {
    if (photo.image.depth() == CV_8U && photo.image.channels() != 4) images.push_back(photo.image);
  }
  for (const cv::Mat& image : images) {
    cv::Mat expected;
    auto r = schemas::parse_op("equalize_hist");
    if (image.channels() == 1) {
      cv::equalizeHist(image, expected);
    } else {
      cv::Mat ycrcb;
      cv::cvtColor(image, ycrcb, cv::COLOR_BGR2YCrCb);
      std::vector<cv::Mat> planes;
      cv::split(ycrcb, planes);
      cv::equalizeHist(planes[0], planes[0]);
      cv::merge(planes, ycrcb);
      cv::cvtColor(ycrcb, expected, cv::COLOR_YCrCb2BGR);
    }
    for (int parts = 1; parts <= 9; ++parts) {
      EXPECT_TRUE(SameImage(expected, split_equalize(image, parts)))
          << image.cols << "x" << image.rows << "x" << image.channels() << " in " << parts;
    }
  }
}

}  // namespace
}  // namespace imgq::workers
