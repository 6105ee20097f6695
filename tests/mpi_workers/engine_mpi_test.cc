// The engine on N ranks (ctest runs this under mpiexec with N = 1, 2, 3, 4)
// must equal apply_pipeline() on the whole image byte for byte; ops_test pins
// apply_pipeline() to OpenCV's whole-image calls. Rank 0 runs the tests; the
// other ranks serve its engine, as they do in imgq-worker.
#include "imgq/mpi_workers/engine.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <mpi.h>
#include <tiffio.h>
#include <opencv2/imgcodecs.hpp>

#include "common/test_images.h"
#include "imgq/mpi_workers/image_io.h"
#include "imgq/mpi_workers/row_decoder.h"

namespace imgq::workers {
namespace {

using imgq::testing::SameImage;

Engine* g_engine = nullptr;

Pipeline pipeline(const std::vector<std::string>& specs) {
  auto p = schemas::parse_pipeline(specs);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : Pipeline{};
}

// The engine's outcome against the reference's: the same pixels, or the
// same error.
void ExpectSameOutcome(const Result<cv::Mat>& expected, const Result<cv::Mat>& actual, const std::string& label) {
  if (!expected.ok()) {
    ASSERT_FALSE(actual.ok()) << label << " should fail: " << expected.status().ToString();
    EXPECT_EQ(expected.status().ToString(), actual.status().ToString()) << label;
    return;
  }
  ASSERT_TRUE(actual.ok()) << label << ": " << actual.status().ToString();
  EXPECT_TRUE(SameImage(*expected, *actual)) << label << " on " << g_engine->size() << " ranks";
}

// Runs `specs` on `image` both ways; a pipeline the image does not support
// must fail the same way on both.
void ExpectExact(const std::vector<std::string>& specs, const cv::Mat& image, const std::string& what) {
  const Pipeline p = pipeline(specs);
  std::string label = what + " |";
  for (const auto& s : specs) label += " " + s;
  ExpectSameOutcome(apply_pipeline(p, image), g_engine->run(p, image), label);
}

const std::vector<std::string>& single_ops() {
  static const std::vector<std::string> ops = {
      "identity", "grayscale", "invert", "threshold", "threshold:value=30000,max=1000",
      "brightness_contrast:alpha=1.3,beta=-7", "to_8bit", "gaussian_blur", "blur",
      "gaussian_blur:ksize=7,sigma=3", "box_blur", "box_blur:ksize=9", "median_blur:ksize=3",
      "median_blur", "median_blur:ksize=11", "sharpen", "sobel", "sobel:ksize=1", "sobel:ksize=7",
      "canny", "canny:low=50,high=150", "canny:low=20,high=80,aperture=5,l2=true",
      "canny:low=500,high=2000,aperture=7", "erode", "erode:ksize=5,iterations=3", "dilate",
      "dilation", "equalize_hist", "resize", "resize:width=17,height=9,interpolation=linear",
      "rotate", "rotate:angle=180", "rotate:angle=270", "flip", "flip:axis=v", "flip:axis=both"};
  return ops;
}

TEST(EngineExact, EveryOpOnEveryGeneratedImage) {
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    for (const std::string& op : single_ops()) ExpectExact({op}, image, name);
  }
}

const std::vector<std::vector<std::string>>& pipelines() {
  static const std::vector<std::vector<std::string>> list = {
      {"to_8bit", "grayscale", "gaussian_blur:ksize=5", "canny:low=50,high=150"},
      {"to_8bit", "gaussian_blur", "canny"},
      {"gaussian_blur:ksize=3", "canny", "dilate", "gaussian_blur"},
      {"to_8bit", "equalize_hist", "sharpen"},
      {"to_8bit", "grayscale", "equalize_hist", "canny:low=30,high=90", "dilate:ksize=3"},
      {"resize:scale=0.7", "median_blur", "flip:axis=v", "box_blur", "rotate", "erode:ksize=5"},
      {"invert", "erosion", "flip", "threshold:value=100", "dilate:iterations=2"},
      {"brightness_contrast:alpha=0.8,beta=10", "sobel:ksize=5", "gaussian_blur:ksize=9,sigma=2"},
  };
  return list;
}

TEST(EngineExact, PipelinesOnGeneratedImages) {
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    for (const auto& specs : pipelines()) ExpectExact(specs, image, name);
  }
}

TEST(EngineExact, PipelinesOnPhotographs) {
  const auto photos = imgq::testing::sample_photographs();
  ASSERT_FALSE(photos.empty()) << "install opencv-doc (scripts/setup.sh) for the sample photographs";
  for (const auto& [name, image] : photos) {
    for (const auto& specs : pipelines()) ExpectExact(specs, image, name);
    ExpectExact({"canny:low=10,high=400"}, image, name);
  }
}

TEST(EngineExact, WeakEdgeWindingThroughEveryStrip) {
  const cv::Mat snake = imgq::testing::make_image(240, 60, CV_8U, 1, imgq::testing::Pattern::kSnake);
  ExpectExact({"canny:low=50,high=200"}, snake, "snake");
  ExpectExact({"gaussian_blur:ksize=3", "canny:low=20,high=200"}, snake, "snake");
}

// Every rank reads its own rows from a PGM/PPM file and, where the pipeline
// allows, writes its own rows into the output file: the file must be byte
// for byte what OpenCV writes for the whole-image result.
TEST(EngineExact, RowsReadAndWrittenInFilesByEveryRank) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("imgq_engine_files_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::vector<std::vector<std::string>> lists = {
      {"gaussian_blur:ksize=5"}, {"median_blur:ksize=5", "sobel"}, {"to_8bit", "equalize_hist"},
      {"to_8bit", "gaussian_blur", "canny"}, {"invert", "erode:ksize=5", "flip"}, {"resize:scale=0.5", "blur"},
      {"box_blur", "rotate"}};
  int written = 0, gathered = 0;
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    if (image.channels() == 4) continue;  // PNM stores 1 or 3
    const fs::path input = dir / (image.channels() == 3 ? "in.ppm" : "in.pgm");
    ASSERT_TRUE(cv::imwrite(input.string(), image));
    std::ifstream head_file(input, std::ios::binary);
    std::vector<uint8_t> head(64);
    head_file.read(reinterpret_cast<char*>(head.data()), 64);
    head.resize(static_cast<size_t>(head_file.gcount()));
    const auto layout = pnm_layout(head);
    ASSERT_TRUE(layout.has_value()) << name;
    const cv::Mat decoded = cv::imread(input.string(), cv::IMREAD_UNCHANGED);
    for (const auto& specs : lists) {
      const Pipeline p = pipeline(specs);
      const FilesFit fit = files_fit(p);
      auto expected = apply_pipeline(p, decoded);
      if (!fit.input || !expected.ok()) continue;
      std::string label = name + " |";
      for (const auto& spec : specs) label += " " + spec;
      RowSink sink = GatherSink{};
      const fs::path output = dir / (expected->channels() == 3 ? "out.ppm" : "out.pgm");
      const bool direct = fit.output && (expected->channels() == 1 || expected->channels() == 3);
      if (direct) {
        const std::string header = pnm_header(expected->rows, expected->cols, expected->type());
        std::ofstream(output, std::ios::binary | std::ios::trunc) << header;
        fs::resize_file(output, pnm_layout_for(expected->rows, expected->cols, expected->type()).file_bytes());
        sink = PnmFileSink{output.string()};
      }
      auto actual = g_engine->run(p, PnmFileSource{input.string(), *layout}, sink);
      ASSERT_TRUE(actual.ok()) << label << ": " << actual.status().ToString();
      if (direct) {
        ++written;
        EXPECT_TRUE(actual->empty()) << label;
        std::vector<uchar> want;
        ASSERT_TRUE(cv::imencode(output.extension().string(), *expected, want));
        std::ifstream got_file(output, std::ios::binary);
        const std::vector<uchar> got((std::istreambuf_iterator<char>(got_file)), {});
        EXPECT_TRUE(got == want) << label << " on " << g_engine->size() << " ranks: the file differs";
      } else {
        ++gathered;
        EXPECT_TRUE(SameImage(*expected, *actual)) << label << " on " << g_engine->size() << " ranks";
      }
    }
  }
  EXPECT_GT(written, 0);
  EXPECT_GT(gathered, 0);
  fs::remove_all(dir);
}

// PNG encoded by every rank (each deflating its own rows, the leader only
// stitching): the file decodes to the whole-image reference, for every
// depth, channel count, odd and tiny sizes, and pipelines whose last stage
// is local, global (equalize_hist) or after a leader op.
TEST(Engine, PngEncodedOnEveryRankDecodesToTheReference) {
  const std::vector<std::vector<std::string>> lists = {
      {"invert"}, {"gaussian_blur:ksize=7"}, {"to_8bit", "equalize_hist"}, {"median_blur:ksize=3", "sharpen"},
      {"resize:scale=0.7", "box_blur"}, {"grayscale", "dilate:ksize=5"}, {"threshold:value=100"}};
  int encoded = 0;
  for (int depth : {CV_8U, CV_16U}) {
    for (int channels : {1, 3, 4}) {
      for (auto [rows, cols] : {std::pair{1, 1}, {3, 5}, {97, 61}, {256, 131}}) {
        const cv::Mat image =
            imgq::testing::make_image(rows, cols, depth, channels, imgq::testing::Pattern::kShapes);
        for (const auto& specs : lists) {
          const Pipeline p = pipeline(specs);
          auto expected = apply_pipeline(p, image);
          if (!expected.ok() || !files_fit(p).output) continue;
          std::string label = std::to_string(rows) + "x" + std::to_string(cols) + " d" + std::to_string(depth) +
                              " c" + std::to_string(channels) + " |";
          for (const auto& spec : specs) label += " " + spec;
          std::vector<uint8_t> png;
          RunStats stats;
          auto actual = g_engine->run(p, image, PngSink{&png}, {.stats = &stats});
          ASSERT_TRUE(actual.ok()) << label << ": " << actual.status().ToString();
          EXPECT_TRUE(actual->empty()) << label;
          const cv::Mat decoded = cv::imdecode(png, cv::IMREAD_UNCHANGED);
          EXPECT_TRUE(SameImage(*expected, decoded)) << label << " on " << g_engine->size() << " ranks";
          EXPECT_GT(stats.encode_seconds, 0.0) << label;
          ++encoded;
        }
      }
    }
  }
  EXPECT_GT(encoded, 50);
}


// Rows decoded while the first stage runs (StreamedSource): the leader
// decodes PNG or JPEG a band at a time and sends each rank its rows as they
// come, followers holding the first rows; a first stage of local ops is
// computed a chunk at a time as its rows arrive. The result equals the
// reference on the whole decoded image, for every op and pipeline, with
// bands of one row, of a few rows and of the whole image, and with strips
// shaped by several decode costs.
struct Encoded {
  std::string name;
  std::vector<uint8_t> bytes;
};

const std::vector<Encoded>& encoded_images() {
  static const std::vector<Encoded> images = [] {
    std::vector<Encoded> out;
    for (const auto& [name, image] : imgq::testing::generated_images()) {
      std::vector<uint8_t> bytes;
      if (cv::imencode(".png", image, bytes)) out.push_back({name + ".png", bytes});
      if (image.depth() == CV_8U && image.channels() != 4 && cv::imencode(".jpg", image, bytes)) {
        out.push_back({name + ".jpg", bytes});
      }
    }
    return out;
  }();
  return images;
}

constexpr double kRatios[] = {0.0, 0.4, 6.0};
constexpr size_t kBands[] = {1, 700, size_t{4} << 20};

Result<cv::Mat> run_streamed(const Pipeline& p, const std::vector<uint8_t>& bytes, int variant,
                             std::vector<uint8_t>* png = nullptr, RunStats* stats = nullptr) {
  auto decoder = open_row_decoder(bytes);
  if (decoder == nullptr) return Status::Internal("the test image does not stream");
  const StreamedSource source{decoder.get(), kRatios[variant % 3], kBands[(variant / 3) % 3]};
  const RowSink sink = png != nullptr ? RowSink(PngSink{png}) : RowSink(GatherSink{});
  return g_engine->run(p, source, sink, {.stats = stats});
}

void ExpectStreamedExact(const std::vector<std::string>& specs, const Encoded& encoded, int variant) {
  const Pipeline p = pipeline(specs);
  if (!files_fit(p).input) return;
  const cv::Mat image = cv::imdecode(encoded.bytes, cv::IMREAD_UNCHANGED);
  std::string label = encoded.name + " variant " + std::to_string(variant) + " |";
  for (const auto& spec : specs) label += " " + spec;
  ExpectSameOutcome(apply_pipeline(p, image), run_streamed(p, encoded.bytes, variant), label);
}

// Every op on every other image (alternating, so each op meets every kind
// of image across the list): the 3- and 4-rank runs share 2 cores.
TEST(EngineStreamed, EveryOpOnRowsAsTheyAreDecoded) {
  int variant = 0, image = 0;
  for (const Encoded& encoded : encoded_images()) {
    const auto& ops = single_ops();
    for (size_t i = static_cast<size_t>(image++ % 2); i < ops.size(); i += 2) {
      ExpectStreamedExact({ops[i]}, encoded, variant++);
    }
  }
  EXPECT_GT(variant, 250);
}

TEST(EngineStreamed, PipelinesOnRowsAsTheyAreDecoded) {
  int variant = 0;
  for (const Encoded& encoded : encoded_images()) {
    for (const auto& specs : pipelines()) ExpectStreamedExact(specs, encoded, variant++);
  }
}

TEST(EngineStreamed, PhotographsDecodedAndPngEncodedOnEveryRank) {
  for (const auto& [name, image] : imgq::testing::sample_photographs(3)) {
    for (const char* ext : {".png", ".jpg"}) {
      std::vector<uint8_t> bytes;
      if (image.depth() != CV_8U || image.channels() == 4 || !cv::imencode(ext, image, bytes)) continue;
      const cv::Mat decoded = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
      for (const auto& specs : std::vector<std::vector<std::string>>{
               {"gaussian_blur:ksize=5"}, {"median_blur:ksize=5", "sharpen"}, {"to_8bit", "equalize_hist"}}) {
        const Pipeline p = pipeline(specs);
        auto expected = apply_pipeline(p, decoded);
        ASSERT_TRUE(expected.ok());
        for (int variant : {0, 4, 8}) {
          std::vector<uint8_t> png;
          RunStats stats;
          auto actual = run_streamed(p, bytes, variant, &png, &stats);
          ASSERT_TRUE(actual.ok()) << name << ext << ": " << actual.status().ToString();
          EXPECT_TRUE(SameImage(*expected, cv::imdecode(png, cv::IMREAD_UNCHANGED)))
              << name << ext << " " << specs.front() << " variant " << variant << " on " << g_engine->size()
              << " ranks";
          EXPECT_GT(stats.decode_seconds, 0.0);
        }
      }
    }
  }
}

// Damage halfway through the rows: every rank stops with the leader's
// decode error, none waits for rows, and the group takes the next job.
TEST(EngineStreamed, CorruptRowsFailEveryRankAndTheGroupGoesOn) {
  const cv::Mat image = imgq::testing::make_image(300, 200, CV_8U, 3, imgq::testing::Pattern::kNoise);
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(cv::imencode(".png", image, bytes));
  bytes[bytes.size() / 2] ^= 0x55;
  for (const auto& specs : std::vector<std::vector<std::string>>{{"gaussian_blur"}, {"canny"}, {"equalize_hist"}}) {
    for (int variant : {0, 3, 5}) {
      auto result = run_streamed(pipeline(specs), bytes, variant);
      ASSERT_FALSE(result.ok()) << specs.front();
      EXPECT_EQ(result.status().code(), StatusCode::kInvalidImage) << result.status().ToString();
      EXPECT_NE(result.status().message().find("PNG: the image data is corrupt"), std::string::npos)
          << result.status().ToString();
    }
  }
  ExpectExact({"gaussian_blur", "canny"}, image, "after corrupt rows");
}


// TIFF read by every rank (each decodes the strips holding its rows from
// the file's bytes) and written by every rank (each encodes its rows as
// whole strips; the leader lays out the file): equal to the reference on
// the decoded image, and to OpenCV's own file of it once decoded.
Result<cv::Mat> run_tiff(const Pipeline& p, const std::vector<uint8_t>& bytes, std::vector<uint8_t>* tiff_out) {
  auto layout = tiff_layout(bytes);
  if (!layout) return Status::Internal("the test TIFF is not read in strips");
  const RowSink sink = tiff_out != nullptr ? RowSink(TiffSink{tiff_out}) : RowSink(GatherSink{});
  return g_engine->run(p, TiffSource{bytes, *layout}, sink);
}

TEST(EngineTiff, EveryOpOnRowsEachRankReads) {
  int runs = 0;
  const std::vector<std::vector<int>> settings = {{}, {cv::IMWRITE_TIFF_COMPRESSION, 8, 278, 1},
                                                  {cv::IMWRITE_TIFF_COMPRESSION, 1, 278, 5}};
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode(".tif", image, bytes, settings[static_cast<size_t>(runs) % settings.size()]));
    const cv::Mat decoded = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
    const auto& ops = single_ops();
    for (size_t i = static_cast<size_t>(runs % 2); i < ops.size(); i += 2) {  // as EveryOpOnRowsAsTheyAreDecoded
      const std::string& op = ops[i];
      const Pipeline p = pipeline({op});
      if (!files_fit(p).input) continue;
      auto expected = apply_pipeline(p, decoded);
      auto actual = run_tiff(p, bytes, nullptr);
      if (!expected.ok()) {
        ASSERT_FALSE(actual.ok()) << name << " " << op;
        continue;
      }
      ASSERT_TRUE(actual.ok()) << name << " " << op << ": " << actual.status().ToString();
      EXPECT_TRUE(SameImage(*expected, *actual)) << name << " " << op << " on " << g_engine->size() << " ranks";
    }
    ++runs;
  }
}

// Tiled TIFFs (as satellite and slide images come): every rank decodes the
// rows of tiles holding its rows. Every third op per image, in turn.
TEST(EngineTiff, TiledRowsEachRankReads) {
  int runs = 0;
  const std::vector<std::pair<int, int>> tiles = {{16, 16}, {32, 48}};
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    const auto& [tile_cols, tile_rows] = tiles[static_cast<size_t>(runs) % tiles.size()];
    const std::vector<uint8_t> bytes =
        imgq::testing::tiled_tiff(image, tile_cols, tile_rows, runs % 2 == 0 ? COMPRESSION_LZW : COMPRESSION_ADOBE_DEFLATE);
    const cv::Mat decoded = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
    ASSERT_FALSE(decoded.empty()) << name;
    ASSERT_TRUE(tiff_layout(bytes).has_value()) << name;
    const auto& ops = single_ops();
    for (size_t i = static_cast<size_t>(runs % 3); i < ops.size(); i += 3) {
      const Pipeline p = pipeline({ops[i]});
      if (!files_fit(p).input) continue;
      auto expected = apply_pipeline(p, decoded);
      auto actual = run_tiff(p, bytes, nullptr);
      if (!expected.ok()) {
        ASSERT_FALSE(actual.ok()) << name << " " << ops[i];
        continue;
      }
      ASSERT_TRUE(actual.ok()) << name << " " << ops[i] << ": " << actual.status().ToString();
      EXPECT_TRUE(SameImage(*expected, *actual))
          << name << " in tiles of " << tile_cols << "x" << tile_rows << ", " << ops[i] << " on "
          << g_engine->size() << " ranks";
    }
    ++runs;
  }
  EXPECT_GT(runs, 10);
}

TEST(EngineTiff, TiffInTiffOutEncodedOnEveryRank) {
  const std::vector<std::vector<std::string>> lists = {
      {"invert"}, {"gaussian_blur:ksize=5"}, {"to_8bit", "equalize_hist"}, {"median_blur:ksize=3", "sharpen"},
      {"resize:scale=0.7", "box_blur"}, {"grayscale", "dilate:ksize=5"}};
  int files = 0;
  for (const auto& [name, image] : imgq::testing::generated_images()) {
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode(".tif", image, bytes));
    const cv::Mat decoded = cv::imdecode(bytes, cv::IMREAD_UNCHANGED);
    for (const auto& specs : lists) {
      const Pipeline p = pipeline(specs);
      auto expected = apply_pipeline(p, decoded);
      if (!expected.ok() || !files_fit(p).output || !can_store_type("tif", expected->type())) continue;
      std::vector<uint8_t> theirs;
      ASSERT_TRUE(cv::imencode(".tif", *expected, theirs));
      // From the decoded image (the first stage scattered), and from the
      // TIFF's bytes (read by every rank) when the first stage is in strips.
      std::vector<uint8_t> ours;
      auto from_image = g_engine->run(p, decoded, TiffSink{&ours});
      ASSERT_TRUE(from_image.ok()) << name << " " << specs.front() << ": " << from_image.status().ToString();
      EXPECT_TRUE(SameImage(cv::imdecode(theirs, cv::IMREAD_UNCHANGED), cv::imdecode(ours, cv::IMREAD_UNCHANGED)))
          << name << " " << specs.front() << " on " << g_engine->size() << " ranks";
      if (files_fit(p).input) {
        std::vector<uint8_t> both;
        auto from_bytes = run_tiff(p, bytes, &both);
        ASSERT_TRUE(from_bytes.ok()) << from_bytes.status().ToString();
        EXPECT_TRUE(SameImage(cv::imdecode(theirs, cv::IMREAD_UNCHANGED), cv::imdecode(both, cv::IMREAD_UNCHANGED)))
            << name << " " << specs.front() << " TIFF in and out on " << g_engine->size() << " ranks";
      }
      ++files;
    }
  }
  EXPECT_GT(files, 50);
  // From streamed PNG rows, pipelined, into TIFF strips.
  const cv::Mat photo = imgq::testing::make_image(301, 203, CV_8U, 3, imgq::testing::Pattern::kShapes);
  std::vector<uint8_t> png, ours, theirs;
  ASSERT_TRUE(cv::imencode(".png", photo, png));
  auto decoder = open_row_decoder(png);
  ASSERT_NE(decoder, nullptr);
  const Pipeline blur = pipeline({"gaussian_blur:ksize=5"});
  ASSERT_TRUE(g_engine->run(blur, StreamedSource{decoder.get(), 0.4, 2000}, TiffSink{&ours}).ok());
  ASSERT_TRUE(cv::imencode(".tif", *apply_pipeline(blur, photo), theirs));
  EXPECT_TRUE(SameImage(cv::imdecode(theirs, cv::IMREAD_UNCHANGED), cv::imdecode(ours, cv::IMREAD_UNCHANGED)));
}

TEST(EngineTiff, ACorruptStripFailsEveryRankAndTheGroupGoesOn) {
  const cv::Mat image = imgq::testing::make_image(120, 90, CV_16U, 3, imgq::testing::Pattern::kNoise);
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(cv::imencode(".tif", image, bytes, {cv::IMWRITE_TIFF_COMPRESSION, 8}));
  for (size_t i = 10; i < 40; ++i) bytes[i] ^= 0xA5;
  auto result = run_tiff(pipeline({"gaussian_blur"}), bytes, nullptr);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidImage) << result.status().ToString();
  EXPECT_NE(result.status().message().find("TIFF: the image data is corrupt"), std::string::npos)
      << result.status().ToString();
  ExpectExact({"gaussian_blur", "canny"}, imgq::testing::make_image(50, 40, CV_8U, 1, imgq::testing::Pattern::kShapes),
              "after a corrupt TIFF");
}

TEST(Engine, PngOnEveryRankIsRefusedWhereItCannotBe) {
  const cv::Mat image = imgq::testing::make_image(20, 20, CV_8U, 3, imgq::testing::Pattern::kNoise);
  std::vector<uint8_t> png;
  // Canny's last pass runs on the leader's whole image: nothing to encode per rank.
  EXPECT_EQ(g_engine->run(pipeline({"canny"}), image, PngSink{&png}).status().code(), StatusCode::kInternal);
  // The group is not left waiting.
  ExpectExact({"invert"}, image, "after a refused PNG run");
}

TEST(Engine, RefusesUnsupportedImagesAndStaysUsable) {
  const cv::Mat deep = imgq::testing::make_image(20, 20, CV_16U, 3, imgq::testing::Pattern::kNoise);
  auto refused = g_engine->run(pipeline({"canny"}), deep);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(refused.status().message().find("op 1: canny"), std::string::npos);
  // The group is not left waiting: the next job runs.
  ExpectExact({"to_8bit", "canny"}, deep, "after a refusal");
}

TEST(Engine, ReportsStagesAndPerRankTimes) {
  const cv::Mat image = imgq::testing::make_image(64, 64, CV_8U, 3, imgq::testing::Pattern::kShapes);
  std::vector<std::pair<int, int>> calls;
  RunStats stats;
  auto r = g_engine->run(pipeline({"gaussian_blur", "canny", "resize", "dilate"}), image, GatherSink{},
                         {.on_stage = [&](int done, int total) { calls.emplace_back(done, total); }, .stats = &stats});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(calls, (std::vector<std::pair<int, int>>{{1, 3}, {2, 3}, {3, 3}}));
  EXPECT_EQ(stats.stages, 3);
  ASSERT_EQ(stats.rank_compute_seconds.size(), static_cast<size_t>(g_engine->size()));
  // Every rank had rows to blur, so every rank measured some compute time.
  for (double s : stats.rank_compute_seconds) EXPECT_GT(s, 0.0);
}

TEST(Engine, EmptyPipelineCopiesTheImage) {
  const cv::Mat image = imgq::testing::make_image(5, 7, CV_16U, 4, imgq::testing::Pattern::kNoise);
  auto r = g_engine->run({}, image);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(SameImage(image, *r));
  EXPECT_NE(r->data, image.data);
}

}  // namespace
}  // namespace imgq::workers

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int code = 0;
  {
    imgq::workers::Engine engine(MPI_COMM_WORLD);
    imgq::workers::g_engine = &engine;
    if (engine.is_leader()) {
      ::testing::InitGoogleTest(&argc, argv);
      code = RUN_ALL_TESTS();
      engine.shutdown();
    } else {
      engine.serve();
    }
  }
  MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return code;
}
