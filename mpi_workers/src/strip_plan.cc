#include "imgq/mpi_workers/strip_plan.h"

#include <algorithm>
#include <cmath>

namespace imgq::workers {

namespace {

// The halo of a strip of rows [begin, end) in an image of `rows` rows.
void set_buffer(Strip& s, int rows, int halo) {
  if (s.rows() == 0) {
    s.buf_begin = s.buf_end = s.begin;
  } else {
    s.buf_begin = std::max(0, s.begin - halo);
    s.buf_end = std::min(rows, s.end + halo);
  }
}

}  // namespace

std::vector<Strip> plan_strips(int rows, int parts, int halo) {
  std::vector<Strip> strips(static_cast<size_t>(std::max(parts, 1)));
  const int n = static_cast<int>(strips.size());
  const int base = rows / n, extra = rows % n;
  int next = 0;
  for (int i = 0; i < n; ++i) {
    Strip& s = strips[static_cast<size_t>(i)];
    s.begin = next;
    s.end = next + base + (i < extra ? 1 : 0);
    next = s.end;
    set_buffer(s, rows, halo);
  }
  return strips;
}

std::vector<Strip> plan_streamed_strips(int rows, int parts, int halo, double decode_ratio, bool pipelined) {
  const int n = std::max(parts, 1);
  const double d = std::isfinite(decode_ratio) ? std::clamp(decode_ratio, 0.0, 1e6) : 0.0;
  // With the stage's work on the whole image as 1 and decoding it as d,
  // follower k (in row order) finishes at d * (the rows before it) plus its
  // share times d + 1 (it waits for all its rows, then works) or, pipelined,
  // times max(1, d) (it works as they come); the leader at d + its share.
  // The shares that end everyone at T:
  const double per_share = pipelined ? std::max(1.0, d) : d + 1;
  auto shares_for = [&](double t, std::vector<double>& shares) {
    double before = 0, sum = 0;
    for (int k = 0; k + 1 < n; ++k) {
      const double share = std::max(0.0, (t - d * before) / per_share);
      shares[static_cast<size_t>(k)] = share;
      before += share;
      sum += share;
    }
    shares[static_cast<size_t>(n - 1)] = std::max(0.0, t - d);
    return sum + shares[static_cast<size_t>(n - 1)];
  };
  std::vector<double> shares(static_cast<size_t>(n));
  double lo = 0, hi = d + 1;  // at T = d + 1 the leader alone could do it all
  for (int i = 0; i < 100; ++i) {
    const double mid = (lo + hi) / 2;
    (shares_for(mid, shares) < 1 ? lo : hi) = mid;
  }
  const double total = shares_for(hi, shares);

  std::vector<Strip> strips(static_cast<size_t>(n));
  double cumulative = 0;
  int next = 0;
  for (int k = 0; k < n; ++k) {
    // Row order k: followers 1 .. n-1, then the leader.
    Strip& s = strips[static_cast<size_t>(k + 1 < n ? k + 1 : 0)];
    cumulative += shares[static_cast<size_t>(k)] / total;
    s.begin = next;
    s.end = k + 1 < n ? std::clamp(static_cast<int>(std::lround(cumulative * rows)), next, rows) : rows;
    next = s.end;
    set_buffer(s, rows, halo);
  }
  return strips;
}

void align_strips(std::vector<Strip>& strips, int rows, int halo, int align) {
  if (align <= 1 || strips.empty()) return;
  const std::vector<int> order = row_order(strips);
  int previous = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    Strip& s = strips[static_cast<size_t>(order[k])];
    s.begin = previous;
    if (k + 1 == order.size()) {
      s.end = rows;
    } else {
      s.end = std::max(previous, s.end / align * align);
    }
    previous = s.end;
    set_buffer(s, rows, halo);
  }
}

std::vector<int> row_order(const std::vector<Strip>& strips) {
  std::vector<int> order(strips.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    const Strip& x = strips[static_cast<size_t>(a)];
    const Strip& y = strips[static_cast<size_t>(b)];
    return x.begin != y.begin ? x.begin < y.begin : x.end < y.end;
  });
  return order;
}

std::vector<Stage> plan_stages(const Pipeline& pipeline) {
  std::vector<Stage> stages;
  const int n = static_cast<int>(pipeline.size());
  int i = 0;
  while (i < n) {
    const OpTraits first = op_traits(pipeline[static_cast<size_t>(i)]);
    if (first.distribution == Distribution::kLeaderOnly) {
      stages.push_back({.on_leader = true, .first_op = i, .end_op = i + 1});
      ++i;
      continue;
    }
    // Local ops accumulate halo; a global op closes the stage, since what
    // follows it needs its finished result and fresh halo rows.
    Stage stage{.first_op = i};
    while (i < n) {
      const OpTraits t = op_traits(pipeline[static_cast<size_t>(i)]);
      if (t.distribution == Distribution::kLeaderOnly) break;
      stage.halo += t.halo;
      ++i;
      if (t.distribution != Distribution::kLocal) {
        stage.finish = t.distribution;
        break;
      }
    }
    stage.end_op = i;
    stages.push_back(stage);
  }
  return stages;
}

}  // namespace imgq::workers
