#include "imgq/mpi_workers/split_ops.h"

#include <vector>

#include <opencv2/imgproc.hpp>

namespace imgq::workers {

EqualizeStrip equalize_prepare(const cv::Mat& strip) {
  EqualizeStrip out;
  if (strip.channels() == 1) {
    out.plane = strip;
  } else {
    cv::cvtColor(strip, out.ycrcb, cv::COLOR_BGR2YCrCb);
    cv::extractChannel(out.ycrcb, out.plane, 0);
  }
  return out;
}

Histogram equalize_histogram(const EqualizeStrip& strip) {
  Histogram hist{};
  for (int y = 0; y < strip.plane.rows; ++y) {
    const uint8_t* row = strip.plane.ptr<uint8_t>(y);
    for (int x = 0; x < strip.plane.cols; ++x) ++hist[row[x]];
  }
  return hist;
}

cv::Mat equalize_finish(EqualizeStrip& strip, const Histogram& whole) {
  // The lookup table exactly as cv::equalizeHist builds it (int counts, a
  // float scale, saturate_cast), so every sample maps to the same value.
  int first = 0;
  while (first < 255 && whole[first] == 0) ++first;
  int64_t total = 0;
  for (int64_t count : whole) total += count;

  cv::Mat lut(1, 256, CV_8U, cv::Scalar(0));
  uint8_t* table = lut.ptr<uint8_t>();
  if (whole[first] == total) {
    for (int v = 0; v < 256; ++v) table[v] = static_cast<uint8_t>(first);
  } else {
    const float scale = (256 - 1.f) / static_cast<float>(static_cast<int>(total - whole[first]));
    int sum = 0;
    for (int v = first + 1; v < 256; ++v) {
      sum += static_cast<int>(whole[v]);
      table[v] = cv::saturate_cast<uint8_t>(static_cast<float>(sum) * scale);
    }
  }

  cv::Mat plane;
  cv::LUT(strip.plane, lut, plane);
  if (strip.ycrcb.empty()) return plane;
  cv::insertChannel(plane, strip.ycrcb, 0);
  cv::Mat out;
  cv::cvtColor(strip.ycrcb, out, cv::COLOR_YCrCb2BGR);
  return out;
}

cv::Mat canny_classify(const cv::Mat& buffer, const schemas::OpCall& canny) {
  const double low = canny.get_double("low"), high = canny.get_double("high");
  const int aperture = static_cast<int>(canny.get_int("aperture"));
  const bool l2 = canny.get_bool("l2");
  cv::Mat candidates, strong;
  cv::Canny(buffer, candidates, low, low, aperture, l2);
  cv::Canny(buffer, strong, high, high, aperture, l2);
  // 255 -> 1 for each map; strong pixels are candidates too, so they sum to 2.
  cv::Mat map;
  cv::addWeighted(candidates, 1.0 / 255, strong, 1.0 / 255, 0, map);
  return map;
}

namespace {

// Spreads kEdge from the pixels on `stack` through 8-connected kCandidates.
void flood(cv::Mat& map, std::vector<int>& stack) {
  uint8_t* m = map.ptr<uint8_t>();
  const int rows = map.rows, cols = map.cols;
  while (!stack.empty()) {
    const int idx = stack.back();
    stack.pop_back();
    const int y = idx / cols, x = idx % cols;
    for (int ny = std::max(0, y - 1); ny <= std::min(rows - 1, y + 1); ++ny) {
      for (int nx = std::max(0, x - 1); nx <= std::min(cols - 1, x + 1); ++nx) {
        const int n = ny * cols + nx;
        if (m[n] == kCandidate) {
          m[n] = kEdge;
          stack.push_back(n);
        }
      }
    }
  }
}

// Pushes the kCandidates of row `to` next to a kEdge of row `from`.
void seed_across(cv::Mat& map, int from, int to, std::vector<int>& stack) {
  const int cols = map.cols;
  const uint8_t* src = map.ptr<uint8_t>(from);
  uint8_t* dst = map.ptr<uint8_t>(to);
  for (int x = 0; x < cols; ++x) {
    if (src[x] != kEdge) continue;
    for (int nx = std::max(0, x - 1); nx <= std::min(cols - 1, x + 1); ++nx) {
      if (dst[nx] == kCandidate) {
        dst[nx] = kEdge;
        stack.push_back(to * cols + nx);
      }
    }
  }
}

}  // namespace

void canny_link(cv::Mat& map) {
  CV_Assert(map.type() == CV_8U && map.isContinuous());
  std::vector<int> stack;
  const uint8_t* m = map.ptr<uint8_t>();
  for (int i = 0, n = static_cast<int>(map.total()); i < n; ++i) {
    if (m[i] == kEdge) stack.push_back(i);
  }
  flood(map, stack);
}

void canny_link_across(cv::Mat& map, std::span<const int> boundaries) {
  CV_Assert(map.type() == CV_8U && map.isContinuous());
  std::vector<int> stack;
  for (int b : boundaries) {
    if (b <= 0 || b >= map.rows) continue;
    seed_across(map, b - 1, b, stack);
    seed_across(map, b, b - 1, stack);
    flood(map, stack);
  }
}

void canny_finish(cv::Mat& map) {
  cv::threshold(map, map, kCandidate, 255, cv::THRESH_BINARY);
}

}  // namespace imgq::workers
