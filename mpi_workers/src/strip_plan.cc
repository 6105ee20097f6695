#include "imgq/mpi_workers/strip_plan.h"

#include <algorithm>

namespace imgq::workers {

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
    if (s.rows() == 0) {
      s.buf_begin = s.buf_end = s.begin;
    } else {
      s.buf_begin = std::max(0, s.begin - halo);
      s.buf_end = std::min(rows, s.end + halo);
    }
  }
  return strips;
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
