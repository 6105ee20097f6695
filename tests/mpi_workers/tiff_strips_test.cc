// TIFF in strips without MPI: rows read from any strips equal
// cv::imdecode's, for every depth and channel count, compression and strip
// height; what the reader does not take it declines; the strips of rows
// encoded apart and laid out into one file decode as OpenCV's own file of
// the image does; our LZW streams are read back by libtiff and by a strict
// reader of the format.
#include "imgq/mpi_workers/tiff_strips.h"

#include <tiffio.h>
#include <unistd.h>

#include <cstdarg>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/test_images.h"
#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/tiff_lzw.h"

namespace imgq::workers {
namespace {

using imgq::testing::make_image;
using imgq::testing::Pattern;
using imgq::testing::SameImage;

cv::Mat decode(const std::vector<uint8_t>& bytes) { return cv::imdecode(bytes, cv::IMREAD_UNCHANGED); }

// Reads the whole image through read_tiff_rows in pieces of `piece` rows.
cv::Mat read_in_pieces(const std::vector<uint8_t>& bytes, const TiffLayout& layout, int piece) {
  cv::Mat image(layout.rows, layout.cols, layout.type);
  for (int y = 0; y < layout.rows; y += piece) {
    const int n = std::min(piece, layout.rows - y);
    auto rows = read_tiff_rows(bytes, layout, y, n);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    if (!rows.ok()) return {};
    rows->copyTo(image.rowRange(y, y + n));
  }
  return image;
}

TEST(TiffStrips, RowsReadAsOpenCvDecodesThem) {
  const std::vector<std::vector<int>> settings = {
      {},                                          // LZW, OpenCV's strips
      {cv::IMWRITE_TIFF_COMPRESSION, 1},           // none
      {cv::IMWRITE_TIFF_COMPRESSION, 8},           // Adobe deflate
      {cv::IMWRITE_TIFF_COMPRESSION, 32773},       // PackBits
      {cv::IMWRITE_TIFF_COMPRESSION, 8, TIFFTAG_ROWSPERSTRIP, 1},
      {cv::IMWRITE_TIFF_COMPRESSION, 5, TIFFTAG_ROWSPERSTRIP, 7},
      {TIFFTAG_ROWSPERSTRIP, 100000},              // one strip
  };
  int read = 0;
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    for (size_t s = 0; s < settings.size(); ++s) {
      std::vector<uint8_t> bytes;
      ASSERT_TRUE(cv::imencode(".tif", image, bytes, settings[s])) << name;
      const cv::Mat expected = decode(bytes);
      auto layout = tiff_layout(bytes);
      ASSERT_TRUE(layout.has_value()) << name << " setting " << s;
      EXPECT_EQ(layout->type, expected.type()) << name;
      for (int piece : {1, 5, 1 << 20}) {
        EXPECT_TRUE(SameImage(expected, read_in_pieces(bytes, *layout, piece)))
            << name << " setting " << s << " in pieces of " << piece;
      }
      // Rows from the middle alone.
      if (layout->rows >= 3) {
        auto middle = read_tiff_rows(bytes, *layout, 1, layout->rows - 2);
        ASSERT_TRUE(middle.ok());
        EXPECT_TRUE(SameImage(expected.rowRange(1, layout->rows - 1), *middle)) << name;
      }
      ++read;
    }
  }
  EXPECT_GT(read, 50);
}

TEST(TiffStrips, PhotographsReadAsOpenCvDecodesThem) {
  for (const auto& [name, image] : imgq::testing::sample_photographs(4)) {
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode(".tif", image, bytes, {cv::IMWRITE_TIFF_COMPRESSION, 8}));
    auto layout = tiff_layout(bytes);
    ASSERT_TRUE(layout.has_value()) << name;
    EXPECT_TRUE(SameImage(decode(bytes), read_in_pieces(bytes, *layout, 97))) << name;
  }
}

// A TIFF written by libtiff itself with `tiled` or planes apart.
std::vector<uint8_t> libtiff_file(bool tiled, bool planar_separate) {
  const std::string path = ::testing::TempDir() + "/imgq_tiff_strips_test.tif";
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  const uint32_t size = 32;
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, size);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, size);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, planar_separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
  std::vector<uint8_t> data(size * size * 3, 77);
  if (tiled) {
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, 16);
    TIFFSetField(tif, TIFFTAG_TILELENGTH, 16);
    for (uint32_t t = 0; t < TIFFNumberOfTiles(tif); ++t) TIFFWriteEncodedTile(tif, t, data.data(), 16 * 16 * 3);
  } else {
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, size);
    for (uint32_t s = 0; s < TIFFNumberOfStrips(tif); ++s) {
      TIFFWriteEncodedStrip(tif, s, data.data(), static_cast<tmsize_t>(TIFFStripSize(tif)));
    }
  }
  TIFFClose(tif);
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Tiled TIFFs, 8 and 16 bits, 1, 3 and 4 channels, odd sizes, edge tiles
// cut at the right and the bottom: rows read in any pieces are OpenCV's.
TEST(TiffStrips, TiledRowsReadAsOpenCvDecodesThem) {
  using imgq::testing::tiled_tiff;
  // Tiles wider or taller than some images, too.
  const std::vector<std::pair<int, int>> tiles = {{16, 16}, {32, 48}, {48, 16}, {256, 256}};
  int read = 0, declined = 0;
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    for (const auto& [tile_cols, tile_rows] : tiles) {
      for (int scheme : {COMPRESSION_NONE, COMPRESSION_LZW, COMPRESSION_ADOBE_DEFLATE}) {
        const auto compression = static_cast<uint16_t>(scheme);
        const std::vector<uint8_t> bytes = tiled_tiff(image, tile_cols, tile_rows, compression);
        const cv::Mat expected = decode(bytes);
        auto layout = tiff_layout(bytes);
        const std::string what = name + " in tiles of " + std::to_string(tile_cols) + "x" +
                                 std::to_string(tile_rows) + ", compression " + std::to_string(compression);
        // What OpenCV cannot decode goes the whole way, to fail as it does
        // there: uncompressed 8-bit tiles not a multiple of 1 KiB (libtiff
        // 4.5's TIFFReadRGBATile refuses them).
        if (expected.empty()) {
          EXPECT_FALSE(layout.has_value()) << what << ": OpenCV cannot decode it";
          ++declined;
          continue;
        }
        ASSERT_TRUE(layout.has_value()) << what;
        EXPECT_EQ(layout->tile_cols, tile_cols);
        EXPECT_EQ(layout->rows_per_strip, tile_rows);
        for (int piece : {1, 7, 1 << 20}) {
          EXPECT_TRUE(SameImage(expected, read_in_pieces(bytes, *layout, piece))) << what << " in pieces of " << piece;
        }
        ++read;
      }
    }
  }
  EXPECT_GT(read, 30);
  EXPECT_GT(declined, 0);
}

TEST(TiffStrips, WhatTheReaderDoesNotTakeItDeclines) {
  EXPECT_FALSE(tiff_layout(libtiff_file(true, false)).has_value()) << "uncompressed 8-bit RGB tiles of 768 bytes";
  EXPECT_FALSE(tiff_layout(libtiff_file(false, true)).has_value()) << "planes apart";
  EXPECT_TRUE(tiff_layout(libtiff_file(false, false)).has_value()) << "the same image in strips";
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(cv::imencode(".tif", cv::Mat(8, 8, CV_32FC1, cv::Scalar(0.5)), bytes));
  EXPECT_FALSE(tiff_layout(bytes).has_value()) << "float samples";
  ASSERT_TRUE(cv::imencode(".png", make_image(8, 8, CV_8U, 3, Pattern::kNoise), bytes));
  EXPECT_FALSE(tiff_layout(bytes).has_value()) << "not a TIFF";
  EXPECT_FALSE(tiff_layout(std::vector<uint8_t>{'I', 'I', 42, 0, 8, 0, 0, 0}).has_value()) << "no directory";
  EXPECT_FALSE(tiff_layout({}).has_value());
}

TEST(TiffStrips, ACorruptStripIsRefusedByName) {
  for (int depth : {CV_8U, CV_16U}) {
    const cv::Mat image = make_image(64, 64, depth, 3, Pattern::kNoise);
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode(".tif", image, bytes, {cv::IMWRITE_TIFF_COMPRESSION, 8}));
    auto layout = tiff_layout(bytes);
    ASSERT_TRUE(layout.has_value());
    // OpenCV writes the strips first, after the 8-byte header: damage the first.
    for (size_t i = 10; i < 40; ++i) bytes[i] ^= 0xA5;
    auto rows = read_tiff_rows(bytes, *layout, 0, layout->rows);
    ASSERT_FALSE(rows.ok());
    EXPECT_EQ(rows.status().code(), StatusCode::kInvalidImage);
    EXPECT_NE(rows.status().message().find("TIFF: the image data is corrupt (strip 0"), std::string::npos)
        << rows.status().message();
  }
}

// Also 8-bit, where OpenCV's TIFFReadRGBATile reads on past the error and
// returns whatever its buffer held: refused instead.
TEST(TiffStrips, ACorruptTileIsRefusedByName) {
  for (int depth : {CV_8U, CV_16U}) {
    std::vector<uint8_t> bytes =
        imgq::testing::tiled_tiff(make_image(64, 64, depth, 3, Pattern::kNoise), 32, 32, COMPRESSION_ADOBE_DEFLATE);
    auto layout = tiff_layout(bytes);
    ASSERT_TRUE(layout.has_value());
    // libtiff writes the tiles first, after the 8-byte header: damage the first.
    for (size_t i = 10; i < 40; ++i) bytes[i] ^= 0xA5;
    auto rows = read_tiff_rows(bytes, *layout, 0, 10);
    ASSERT_FALSE(rows.ok()) << depth;
    EXPECT_EQ(rows.status().code(), StatusCode::kInvalidImage);
    EXPECT_NE(rows.status().message().find("TIFF: the image data is corrupt (tile 0 of rows 0 to 31, columns 0 to 31"),
              std::string::npos)
        << rows.status().message();
    // The rows of other tiles read on.
    EXPECT_TRUE(read_tiff_rows(bytes, *layout, 32, 32).ok()) << depth;
  }
}

// libtiff's decoder as the judge of our LZW: `stream` as the one strip of a
// 1-row 8-bit gray TIFF without predictor, decoded by TIFFReadEncodedStrip.
// `complaints` counts libtiff's errors and warnings (an unterminated strip,
// a bad code) while it reads.
int complaints = 0;
void count_complaint(const char*, const char*, va_list) { ++complaints; }

std::vector<uint8_t> libtiff_decodes(const std::string& stream, size_t length) {
  const std::string path = ::testing::TempDir() + "/imgq_lzw_" + std::to_string(::getpid()) + ".tif";
  TIFF* out = TIFFOpen(path.c_str(), "w");
  TIFFSetField(out, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(length));
  TIFFSetField(out, TIFFTAG_IMAGELENGTH, uint32_t{1});
  TIFFSetField(out, TIFFTAG_BITSPERSAMPLE, uint16_t{8});
  TIFFSetField(out, TIFFTAG_SAMPLESPERPIXEL, uint16_t{1});
  TIFFSetField(out, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
  TIFFSetField(out, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
  TIFFSetField(out, TIFFTAG_ROWSPERSTRIP, uint32_t{1});
  TIFFWriteRawStrip(out, 0, const_cast<char*>(stream.data()), static_cast<tmsize_t>(stream.size()));
  TIFFClose(out);
  TIFF* in = TIFFOpen(path.c_str(), "r");
  std::vector<uint8_t> decoded(length + 64, 0xEE);
  const tmsize_t got = TIFFReadEncodedStrip(in, 0, decoded.data(), static_cast<tmsize_t>(decoded.size()));
  TIFFClose(in);
  std::filesystem::remove(path);
  decoded.resize(got < 0 ? 0 : static_cast<size_t>(got));
  return decoded;
}

// A strict reader of TIFF's LZW, as a second judge: libtiff stops once it has
// a strip's bytes, so it would not see a wrong width or a missing code at
// the stream's end; some readers go on to EOI. This one wants Clear first,
// every code in the width TIFF gives it (grown one code early, back to 9
// after Clear), EOI last and nothing after it but the last byte's padding.
// Nothing when the stream breaks a rule.
std::optional<std::vector<uint8_t>> strict_lzw_decode(const std::string& stream) {
  size_t bit = 0;
  auto read = [&](int width) -> int {
    if (bit + static_cast<size_t>(width) > stream.size() * 8) return -1;
    int code = 0;
    for (int i = 0; i < width; ++i, ++bit) {
      code = code << 1 | ((static_cast<uint8_t>(stream[bit / 8]) >> (7 - bit % 8)) & 1);
    }
    return code;
  };
  std::vector<std::vector<uint8_t>> table;
  int width = 9, previous = -1;
  auto reset = [&] {
    table.assign(258, {});
    for (int c = 0; c < 256; ++c) table[static_cast<size_t>(c)] = {static_cast<uint8_t>(c)};
    width = 9;
    previous = -1;
  };
  if (read(9) != 256) return std::nullopt;
  reset();
  std::vector<uint8_t> out;
  for (;;) {
    const int code = read(width);
    if (code < 0) return std::nullopt;  // ran out before EOI
    if (code == 257) break;
    if (code == 256) {
      reset();
      continue;
    }
    std::vector<uint8_t> entry;
    if (previous < 0) {
      if (code > 255) return std::nullopt;
      entry = table[static_cast<size_t>(code)];
    } else {
      if (static_cast<size_t>(code) > table.size() || table.size() >= 4094) return std::nullopt;
      std::vector<uint8_t> grown = table[static_cast<size_t>(previous)];
      if (static_cast<size_t>(code) < table.size()) {
        entry = table[static_cast<size_t>(code)];
        grown.push_back(entry[0]);
      } else {
        grown.push_back(grown[0]);
        entry = grown;
      }
      table.push_back(grown);
      if (table.size() == (size_t{1} << width) - 1 && width < 12) ++width;
    }
    out.insert(out.end(), entry.begin(), entry.end());
    previous = code;
  }
  if (stream.size() * 8 - bit >= 8) return std::nullopt;  // bytes after EOI
  return out;
}

// Every length up to past the first full table (random bytes make a code
// a byte, so the table fills at about 3,840 bytes: the stream's end meets
// each width change, and a full table, at some length), and long inputs of
// every kind: noise, runs, ramps, a photograph's rows.
TEST(TiffLzw, LibtiffDecodesWhatWeEncode) {
  TIFFErrorHandler old_error = TIFFSetErrorHandler(count_complaint);
  TIFFErrorHandler old_warning = TIFFSetWarningHandler(count_complaint);
  std::mt19937 random(7);
  auto check = [&](const std::vector<uint8_t>& data, const std::string& what) {
    std::string stream = "prefix";  // appends after what is there
    tiff_lzw_encode(data, stream);
    ASSERT_EQ(stream.substr(0, 6), "prefix");
    complaints = 0;
    const std::vector<uint8_t> decoded = libtiff_decodes(stream.substr(6), data.size());
    ASSERT_EQ(complaints, 0) << what << ", " << data.size() << " bytes";
    ASSERT_EQ(decoded, data) << what << ", " << data.size() << " bytes";
    const auto strict = strict_lzw_decode(stream.substr(6));
    ASSERT_TRUE(strict.has_value()) << what << ", " << data.size() << " bytes";
    ASSERT_EQ(*strict, data) << what << ", " << data.size() << " bytes";
  };
  std::vector<uint8_t> noise(5000), few(5000);
  for (auto& b : noise) b = static_cast<uint8_t>(random());
  for (auto& b : few) b = static_cast<uint8_t>(random() % 3);
  for (size_t n = 1; n <= noise.size(); ++n) {
    check({noise.begin(), noise.begin() + static_cast<long>(n)}, "noise");
  }
  for (size_t n = 1; n <= few.size(); n += 7) check({few.begin(), few.begin() + static_cast<long>(n)}, "3 values");
  std::vector<uint8_t> big(1 << 20);
  for (auto& b : big) b = static_cast<uint8_t>(random());
  check(big, "noise");
  std::fill(big.begin(), big.end(), 0);
  check(big, "zeros");
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7 / 13);
  check(big, "ramp");
  for (const auto& [name, photo] : imgq::testing::sample_photographs(2)) {
    if (!can_store_type("tif", photo.type())) continue;
    const size_t row_bytes = static_cast<size_t>(photo.cols) * photo.elemSize();
    std::vector<uint8_t> predicted(row_bytes * static_cast<size_t>(photo.rows));
    for (int y = 0; y < photo.rows; ++y) tiff_predict_row(photo, y, predicted.data() + row_bytes * static_cast<size_t>(y));
    check(predicted, name + ", predicted");
  }
  TIFFSetErrorHandler(old_error);
  TIFFSetWarningHandler(old_warning);
}

// Strips encoded by "ranks" apart, cut at multiples of the strip height,
// laid out into one file: it decodes as OpenCV's own file of the image.
TEST(TiffStrips, StripsEncodedApartMakeOneFile) {
  int files = 0;
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    if (!can_store_type("tif", image.type())) continue;
    const int per_strip = tiff_rows_per_strip(image.rows, image.cols, image.type());
    std::vector<uint8_t> opencv;
    ASSERT_TRUE(cv::imencode(".tif", image, opencv));
    for (int parts : {1, 2, 3}) {
      std::vector<TiffStrips> pieces;
      const int strips = (image.rows + per_strip - 1) / per_strip;
      int next = 0;
      for (int p = 0; p < parts; ++p) {
        const int end = p + 1 == parts ? image.rows : std::min(image.rows, strips * (p + 1) / parts * per_strip);
        auto encoded = encode_tiff_rows(image.rowRange(next, end).clone(), per_strip);
        ASSERT_TRUE(encoded.ok()) << encoded.status().ToString();
        pieces.push_back(std::move(encoded).value());
        next = end;
      }
      auto file = assemble_tiff(image.rows, image.cols, image.type(), per_strip, pieces);
      ASSERT_TRUE(file.ok()) << name << ": " << file.status().ToString();
      EXPECT_TRUE(SameImage(decode(opencv), decode(*file))) << name << " in " << parts << " parts";
      if (image.channels() != 4) {
        EXPECT_TRUE(SameImage(image, decode(*file))) << name;
      }
      // About OpenCV's size: the same LZW and predictor.
      EXPECT_LT(static_cast<double>(file->size()), static_cast<double>(opencv.size()) * 1.05 + 512) << name;
      ++files;
    }
  }
  EXPECT_GT(files, 20);
  // Too few strips for the image is an error, not a short file.
  auto short_file = assemble_tiff(100, 10, CV_8UC1, 10, {});
  EXPECT_FALSE(short_file.ok());
}

}  // namespace
}  // namespace imgq::workers
