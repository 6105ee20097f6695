// The decode and encode paths a job takes (job_paths.h), chosen from the
// formats, the group's size and the pipeline: the table in the header, row
// by row.
#include "imgq/mpi_workers/job_paths.h"

#include <gtest/gtest.h>

#include "imgq/mpi_workers/engine.h"

namespace imgq::workers {
namespace {

Pipeline pipeline(const std::vector<std::string>& specs) {
  auto p = schemas::parse_pipeline(specs);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : Pipeline{};
}

const ImageInfo kRgb8{100, 80, CV_8U, 3};
const ImageInfo kRgb16{100, 80, CV_16U, 3};
const ImageInfo kGray8{100, 80, CV_8U, 1};
const ImageInfo kRgba8{100, 80, CV_8U, 4};

TEST(ChooseDecode, OneRankOrAFirstStageOnTheLeaderDecodesWhole) {
  const Pipeline blur = pipeline({"gaussian_blur"});
  const Pipeline resize_first = pipeline({"resize:width=10,height=10", "gaussian_blur"});
  ASSERT_FALSE(files_fit(resize_first).input);
  for (ImageFormat f : {ImageFormat::kPng, ImageFormat::kJpeg, ImageFormat::kTiff, ImageFormat::kPnm}) {
    EXPECT_EQ(choose_decode(1, blur, f, false), DecodePath::kWhole);
    EXPECT_EQ(choose_decode(4, resize_first, f, false), DecodePath::kWhole);
  }
  EXPECT_EQ(choose_decode(1, blur, ImageFormat::kPnm, true), DecodePath::kWhole);
  EXPECT_EQ(choose_decode(3, resize_first, ImageFormat::kPnm, true), DecodePath::kWhole);
}

TEST(ChooseDecode, EachFormatOnItsOwnPathOnSeveralRanks) {
  const Pipeline blur = pipeline({"gaussian_blur", "canny"});
  EXPECT_EQ(choose_decode(2, blur, ImageFormat::kTiff, false), DecodePath::kRankStrips);
  EXPECT_EQ(choose_decode(2, blur, ImageFormat::kPng, false), DecodePath::kBandedRows);
  EXPECT_EQ(choose_decode(2, blur, ImageFormat::kJpeg, false), DecodePath::kBandedRows);
  EXPECT_EQ(choose_decode(2, blur, ImageFormat::kPnm, true), DecodePath::kLocalRows);
  for (ImageFormat f : {ImageFormat::kBmp, ImageFormat::kWebp, ImageFormat::kPnm, ImageFormat::kJpeg2000,
                        ImageFormat::kSunRaster}) {
    EXPECT_EQ(choose_decode(2, blur, f, false), DecodePath::kWhole) << format_name(f);
  }
}

TEST(ChooseEncode, PngAndTiffOnEveryRankWhenTheLastStageEndsThere) {
  const Pipeline blur = pipeline({"gaussian_blur"});
  for (DecodePath d : {DecodePath::kWhole, DecodePath::kBandedRows, DecodePath::kRankStrips, DecodePath::kLocalRows}) {
    EXPECT_EQ(choose_encode(2, blur, kRgb8, "png", d), EncodePath::kPngByRanks) << path_name(d);
    EXPECT_EQ(choose_encode(2, blur, kRgb16, "PNG", d), EncodePath::kPngByRanks) << path_name(d);
    EXPECT_EQ(choose_encode(3, blur, kRgba8, "tif", d), EncodePath::kTiffByRanks) << path_name(d);
    EXPECT_EQ(choose_encode(3, blur, kGray8, "tiff", d), EncodePath::kTiffByRanks) << path_name(d);
    EXPECT_EQ(choose_encode(2, blur, kRgb8, "jpg", d), EncodePath::kLeader) << path_name(d);
    EXPECT_EQ(choose_encode(2, blur, kRgb8, "webp", d), EncodePath::kLeader) << path_name(d);
  }
  EXPECT_EQ(choose_encode(1, blur, kRgb8, "png", DecodePath::kWhole), EncodePath::kLeader);
  // Canny's last pass, and a last op on the leader, end on the leader.
  EXPECT_EQ(choose_encode(2, pipeline({"canny"}), kGray8, "png", DecodePath::kWhole), EncodePath::kLeader);
  EXPECT_EQ(choose_encode(2, pipeline({"gaussian_blur", "rotate"}), kRgb8, "tif", DecodePath::kBandedRows),
            EncodePath::kLeader);
}

TEST(ChooseEncode, PnmRowsGoStraightIntoTheFileOnlyFromLocalRowsOfTheirKind) {
  const Pipeline blur = pipeline({"gaussian_blur"});
  EXPECT_EQ(choose_encode(2, blur, kRgb8, "ppm", DecodePath::kLocalRows), EncodePath::kLocalRows);
  EXPECT_EQ(choose_encode(2, blur, kRgb16, "pnm", DecodePath::kLocalRows), EncodePath::kLocalRows);
  EXPECT_EQ(choose_encode(2, blur, kGray8, "pgm", DecodePath::kLocalRows), EncodePath::kLocalRows);
  EXPECT_EQ(choose_encode(2, blur, kRgb8, "pgm", DecodePath::kLocalRows), EncodePath::kLeader);
  EXPECT_EQ(choose_encode(2, blur, kRgba8, "pnm", DecodePath::kLocalRows), EncodePath::kLeader);
  EXPECT_EQ(choose_encode(2, blur, kRgb8, "ppm", DecodePath::kBandedRows), EncodePath::kLeader);
  // A local PGM/PPM whose result is asked for as PNG is still encoded by every rank.
  EXPECT_EQ(choose_encode(2, blur, kGray8, "png", DecodePath::kLocalRows), EncodePath::kPngByRanks);
}

}  // namespace
}  // namespace imgq::workers
