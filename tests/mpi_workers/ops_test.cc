// Pins every op to the whole-image OpenCV meaning of the table in issue 2,
// written here directly with OpenCV, and checks what each op refuses.
#include "imgq/mpi_workers/ops.h"

#include <functional>

#include <gtest/gtest.h>
#include <opencv2/imgproc.hpp>

#include "common/test_images.h"

namespace imgq::workers {
namespace {

using imgq::testing::make_image;
using imgq::testing::Pattern;
using imgq::testing::SameImage;

OpCall op(const std::string& spec) {
  auto r = schemas::parse_op(spec);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return *r;
}

cv::Mat run(const std::string& spec, const cv::Mat& in) {
  auto r = apply_op(op(spec), in);
  EXPECT_TRUE(r.ok()) << spec << ": " << r.status().ToString();
  return r.ok() ? *r : cv::Mat();
}

using Reference = std::function<cv::Mat(const cv::Mat&)>;

struct TableRow {
  std::string spec;
  Reference expected;
  bool eight_bit_only = false;
};

cv::Mat rect(int k) { return cv::getStructuringElement(cv::MORPH_RECT, cv::Size(k, k)); }

std::vector<TableRow> table() {
  auto with = [](auto f) {
    return [f](const cv::Mat& in) {
      cv::Mat out;
      f(in, out);
      return out;
    };
  };
  return {
      {"identity", with([](const cv::Mat& in, cv::Mat& out) { in.copyTo(out); })},
      {"invert", with([](const cv::Mat& in, cv::Mat& out) { cv::bitwise_not(in, out); })},
      {"brightness_contrast:alpha=1.7,beta=-12.5",
       with([](const cv::Mat& in, cv::Mat& out) { in.convertTo(out, -1, 1.7, -12.5); })},
      {"gaussian_blur", with([](const cv::Mat& in, cv::Mat& out) { cv::GaussianBlur(in, out, {5, 5}, 0); })},
      {"gaussian_blur:ksize=9,sigma=2.5",
       with([](const cv::Mat& in, cv::Mat& out) { cv::GaussianBlur(in, out, {9, 9}, 2.5); })},
      {"box_blur", with([](const cv::Mat& in, cv::Mat& out) { cv::blur(in, out, {5, 5}); })},
      {"median_blur:ksize=3", with([](const cv::Mat& in, cv::Mat& out) { cv::medianBlur(in, out, 3); })},
      {"median_blur:ksize=9", with([](const cv::Mat& in, cv::Mat& out) { cv::medianBlur(in, out, 9); }),
       true},
      {"sharpen", with([](const cv::Mat& in, cv::Mat& out) {
         const cv::Mat kernel = (cv::Mat_<float>(3, 3) << 0, -1, 0, -1, 5, -1, 0, -1, 0);
         cv::filter2D(in, out, -1, kernel);
       })},
      {"sobel:ksize=5", with([](const cv::Mat& in, cv::Mat& out) {
         cv::Mat dx, dy;
         cv::Sobel(in, dx, CV_16S, 1, 0, 5);
         cv::Sobel(in, dy, CV_16S, 0, 1, 5);
         cv::convertScaleAbs(dx, dx);
         cv::convertScaleAbs(dy, dy);
         cv::addWeighted(dx, 0.5, dy, 0.5, 0, out);
       }),
       true},
      {"canny:low=40,high=120,aperture=5,l2=true",
       with([](const cv::Mat& in, cv::Mat& out) { cv::Canny(in, out, 40, 120, 5, true); }), true},
      {"erode:ksize=5,iterations=2",
       with([](const cv::Mat& in, cv::Mat& out) { cv::erode(in, out, rect(5), {-1, -1}, 2); })},
      {"dilate", with([](const cv::Mat& in, cv::Mat& out) { cv::dilate(in, out, rect(3), {-1, -1}, 1); })},
      {"resize", with([](const cv::Mat& in, cv::Mat& out) {
         cv::resize(in, out, {std::max(1, cvRound(in.cols * 0.5)), std::max(1, cvRound(in.rows * 0.5))}, 0,
                    0, cv::INTER_AREA);
       })},
      {"resize:width=33,height=7,interpolation=cubic",
       with([](const cv::Mat& in, cv::Mat& out) { cv::resize(in, out, {33, 7}, 0, 0, cv::INTER_CUBIC); })},
      {"resize:scale=1.5,interpolation=linear", with([](const cv::Mat& in, cv::Mat& out) {
         cv::resize(in, out, {cvRound(in.cols * 1.5), cvRound(in.rows * 1.5)}, 0, 0, cv::INTER_LINEAR);
       })},
      {"rotate", with([](const cv::Mat& in, cv::Mat& out) { cv::rotate(in, out, cv::ROTATE_90_CLOCKWISE); })},
      {"rotate:angle=180", with([](const cv::Mat& in, cv::Mat& out) { cv::rotate(in, out, cv::ROTATE_180); })},
      {"rotate:angle=270",
       with([](const cv::Mat& in, cv::Mat& out) { cv::rotate(in, out, cv::ROTATE_90_COUNTERCLOCKWISE); })},
      {"flip", with([](const cv::Mat& in, cv::Mat& out) { cv::flip(in, out, 1); })},
      {"flip:axis=v", with([](const cv::Mat& in, cv::Mat& out) { cv::flip(in, out, 0); })},
      {"flip:axis=both", with([](const cv::Mat& in, cv::Mat& out) { cv::flip(in, out, -1); })},
  };
}

class OpsTable : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(OpsTable, EveryOpIsItsOpenCVCall) {
  const auto [depth, channels] = GetParam();
  const cv::Mat in = make_image(37, 64, depth, channels, Pattern::kShapes);
  for (const TableRow& row : table()) {
    if (row.eight_bit_only && depth != CV_8U) continue;
    EXPECT_TRUE(SameImage(row.expected(in), run(row.spec, in))) << row.spec;
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, OpsTable,
                         ::testing::Combine(::testing::Values(CV_8U, CV_16U), ::testing::Values(1, 3, 4)));

TEST(Ops, GrayscaleByChannels) {
  const cv::Mat c1 = make_image(9, 11, CV_16U, 1, Pattern::kNoise);
  const cv::Mat c3 = make_image(9, 11, CV_8U, 3, Pattern::kNoise);
  const cv::Mat c4 = make_image(9, 11, CV_16U, 4, Pattern::kNoise);
  cv::Mat g3, g4;
  cv::cvtColor(c3, g3, cv::COLOR_BGR2GRAY);
  cv::cvtColor(c4, g4, cv::COLOR_BGRA2GRAY);
  EXPECT_TRUE(SameImage(c1, run("grayscale", c1)));
  EXPECT_TRUE(SameImage(g3, run("grayscale", c3)));
  EXPECT_TRUE(SameImage(g4, run("grayscale", c4)));
}

TEST(Ops, ThresholdMaxFollowsDepth) {
  const cv::Mat a = make_image(9, 11, CV_8U, 3, Pattern::kNoise);
  const cv::Mat b = make_image(9, 11, CV_16U, 1, Pattern::kNoise);
  cv::Mat ea, eb, ec;
  cv::threshold(a, ea, 128, 255, cv::THRESH_BINARY);
  cv::threshold(b, eb, 128, 65535, cv::THRESH_BINARY);
  cv::threshold(b, ec, 30000, 1000, cv::THRESH_BINARY);
  EXPECT_TRUE(SameImage(ea, run("threshold", a)));
  EXPECT_TRUE(SameImage(eb, run("threshold", b)));
  EXPECT_TRUE(SameImage(ec, run("threshold:value=30000,max=1000", b)));
}

TEST(Ops, To8bitDividesBy257) {
  const cv::Mat b = make_image(9, 11, CV_16U, 3, Pattern::kNoise);
  cv::Mat e;
  b.convertTo(e, CV_8U, 1 / 257.0);
  EXPECT_TRUE(SameImage(e, run("to_8bit", b)));
  const cv::Mat a = make_image(9, 11, CV_8U, 3, Pattern::kNoise);
  EXPECT_TRUE(SameImage(a, run("to_8bit", a)));
}

TEST(Ops, EqualizeHistOnGrayAndOnLuma) {
  const cv::Mat gray = make_image(40, 30, CV_8U, 1, Pattern::kShapes);
  cv::Mat e1;
  cv::equalizeHist(gray, e1);
  EXPECT_TRUE(SameImage(e1, run("equalize_hist", gray)));

  const cv::Mat bgr = make_image(40, 30, CV_8U, 3, Pattern::kShapes);
  cv::Mat ycrcb, e3;
  cv::cvtColor(bgr, ycrcb, cv::COLOR_BGR2YCrCb);
  std::vector<cv::Mat> planes;
  cv::split(ycrcb, planes);
  cv::equalizeHist(planes[0], planes[0]);
  cv::merge(planes, ycrcb);
  cv::cvtColor(ycrcb, e3, cv::COLOR_YCrCb2BGR);
  EXPECT_TRUE(SameImage(e3, run("equalize_hist", bgr)));
}

TEST(Ops, CannyDefaultsAndMultiChannel) {
  for (int channels : {1, 3, 4}) {
    const cv::Mat in = make_image(50, 60, CV_8U, channels, Pattern::kShapes);
    cv::Mat e;
    cv::Canny(in, e, 100, 200, 3, false);
    EXPECT_TRUE(SameImage(e, run("canny", in))) << channels;
  }
}

std::string refusal(const std::string& spec, const ImageInfo& info) {
  auto r = check_op(op(spec), info);
  EXPECT_FALSE(r.ok()) << spec << " accepted on " << describe(info);
  return r.status().message();
}

TEST(Ops, RefusesUnsupportedImagesClearly) {
  const ImageInfo rgb16{10, 10, CV_16U, 3};
  const ImageInfo rgba8{10, 10, CV_8U, 4};
  EXPECT_EQ(refusal("canny", rgb16),
            "canny: not supported on a 16-bit 3-channel image; it needs 8-bit input (put --op to_8bit "
            "before it)");
  EXPECT_NE(refusal("sobel", rgb16).find("8-bit"), std::string::npos);
  EXPECT_NE(refusal("median_blur:ksize=7", rgb16).find("ksize 1, 3 or 5"), std::string::npos);
  EXPECT_NE(refusal("equalize_hist", rgba8).find("1 or 3 channels"), std::string::npos);
  EXPECT_NE(refusal("equalize_hist", rgb16).find("8-bit"), std::string::npos);
  EXPECT_NE(refusal("threshold:value=300", rgba8).find("at most 255 for a 8-bit"), std::string::npos);
  EXPECT_NE(refusal("resize:width=65535,height=65535", rgba8).find("more than 2^30"), std::string::npos);
  EXPECT_EQ(check_op(op("median_blur:ksize=5"), rgb16).status().code(), StatusCode::kOk);
}

// Sizes from untrusted input (headers, op parameters) in checked arithmetic:
// each case here wrapped, or overflowed an int, before it was refused.
TEST(Ops, ResizeSizesThatWouldOverflowAreRefusedNotWrapped) {
  // 200,000,000 x 1 (200 megapixels, under the default --max-pixels) times
  // 16: 3.2e9 columns, past INT_MAX; cvRound wrapped it to a 1-pixel image.
  const ImageInfo wide{1, 200'000'000, CV_8U, 1};
  const std::string why = refusal("resize:scale=16", wide);
  EXPECT_NE(why.find("3200000000x16"), std::string::npos) << why;
  // 46341^2 > 2^31: the product of two int dimensions would overflow int.
  EXPECT_NE(refusal("resize:width=46341,height=46341", {10, 10, CV_8U, 3}).find("more than 2^30"), std::string::npos);
  EXPECT_EQ(check_op(op("resize:scale=16"), {4096, 4096, CV_16U, 4}).status().code(), StatusCode::kTooLarge)
      << "2^24 x 256 = 2^32 pixels";
  // At the limit: 2^15 x 2^15 = 2^30 pixels is allowed.
  auto at_limit = check_op(op("resize:width=32768,height=32768"), {10, 10, CV_8U, 1});
  ASSERT_TRUE(at_limit.ok()) << at_limit.status().ToString();
  EXPECT_EQ(*at_limit, (ImageInfo{32768, 32768, CV_8U, 1}));
  // A down-scale of a large image stays at least 1 x 1.
  auto tiny = check_op(op("resize:scale=0.000001"), {100, 100, CV_8U, 1});
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(*tiny, (ImageInfo{1, 1, CV_8U, 1}));
}

TEST(Ops, ImagesOfMoreThanAnIntOfPixelsAreRefusedWhateverTheLimit) {
  // 50,000 x 50,000 = 2.5e9 pixels: rows * cols overflows int, the index
  // type of OpenCV's filters and of the Canny pass over a whole image.
  const Status refused = check_image({50'000, 50'000, CV_8U, 1});
  EXPECT_EQ(refused.code(), StatusCode::kTooLarge);
  EXPECT_NE(refused.message().find("2500000000 pixels"), std::string::npos) << refused.message();
  EXPECT_TRUE(check_image({46'340, 46'340, CV_8U, 1}).ok()) << "46340^2 < 2^31";
  auto pipeline = schemas::parse_pipeline({"invert"});
  EXPECT_EQ(check_pipeline(*pipeline, {65'536, 65'536, CV_8U, 3}).status().code(), StatusCode::kTooLarge);
}

TEST(Ops, RefusesImagesImgqDoesNotProcess) {
  EXPECT_EQ(check_image({10, 10, CV_32F, 1}).code(), StatusCode::kUnsupported);
  EXPECT_EQ(check_image({10, 10, CV_8U, 2}).code(), StatusCode::kUnsupported);
  EXPECT_EQ(check_image({0, 10, CV_8U, 1}).code(), StatusCode::kInvalidImage);
}

TEST(Ops, PipelineTracksTheImageKind) {
  auto p = schemas::parse_pipeline({"to_8bit", "grayscale", "canny", "rotate"});
  ASSERT_TRUE(p.ok());
  auto out = check_pipeline(*p, {20, 30, CV_16U, 4});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(*out, (ImageInfo{30, 20, CV_8U, 1}));

  auto bad = schemas::parse_pipeline({"grayscale", "canny"});
  auto refused = check_pipeline(*bad, {20, 30, CV_16U, 3});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message().rfind("op 2: canny:", 0), 0u) << refused.status().message();
}

TEST(Ops, HalosFitTheKernels) {
  EXPECT_EQ(op_traits(op("invert")).halo, 0);
  EXPECT_EQ(op_traits(op("gaussian_blur:ksize=7")).halo, 3);
  EXPECT_EQ(op_traits(op("median_blur:ksize=25")).halo, 12);
  EXPECT_EQ(op_traits(op("sharpen")).halo, 1);
  EXPECT_EQ(op_traits(op("sobel:ksize=1")).halo, 1);
  EXPECT_EQ(op_traits(op("erode:ksize=5,iterations=3")).halo, 6);
  EXPECT_EQ(op_traits(op("canny:aperture=7")).halo, 4);
  EXPECT_EQ(op_traits(op("canny")).distribution, Distribution::kCanny);
  EXPECT_EQ(op_traits(op("equalize_hist")).distribution, Distribution::kEqualizeHist);
  EXPECT_EQ(op_traits(op("flip:axis=h")).distribution, Distribution::kLocal);
  EXPECT_EQ(op_traits(op("flip:axis=v")).distribution, Distribution::kLeaderOnly);
  EXPECT_EQ(op_traits(op("resize")).distribution, Distribution::kLeaderOnly);
}

}  // namespace
}  // namespace imgq::workers
