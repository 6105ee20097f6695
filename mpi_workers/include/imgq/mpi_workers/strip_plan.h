// Planning how an image is cut into row strips for the ranks of a group, and
// how a pipeline is cut into stages that each run on strips (or on the leader).
//
// Pure functions of sizes and ops: no MPI, no pixels. Every rank computes the
// same plan from the same inputs, so only the leader's image travels.
#pragma once

#include <vector>

#include "imgq/mpi_workers/ops.h"

namespace imgq::workers {

// Rows [begin, end) are the rank's own; [buf_begin, buf_end) is what it
// receives: its rows plus up to `halo` rows each side, clipped to the image.
struct Strip {
  int begin = 0;
  int end = 0;
  int buf_begin = 0;
  int buf_end = 0;

  int rows() const { return end - begin; }
  int buf_rows() const { return buf_end - buf_begin; }
  bool operator==(const Strip&) const = default;
};

// Cuts `rows` rows into `parts` contiguous strips in order, balanced: sizes
// differ by at most one, the first `rows % parts` strips taking one more. No
// row is dropped; with fewer rows than parts, the last strips are empty.
std::vector<Strip> plan_strips(int rows, int parts, int halo);

// Strips for a stage whose rows the leader (rank 0) decodes top to bottom
// while the others wait for theirs: ranks 1, 2, ... take the first rows in
// that order and the leader the last, so a follower starts as soon as its
// rows are decoded and the leader's own rows come last. Sizes are chosen
// so every rank ends together when decoding a row costs `decode_ratio`
// times the stage's own work on it: the leader, which decodes every row,
// takes fewer; each follower fewer than the one before, whose rows were
// ready sooner. `pipelined`: a follower works on its rows as they arrive
// (a stage of local ops), so it is held up only where decoding is the
// slower of the two; else it starts once all its rows are there. 0 gives
// equal strips. Indexed by rank, like plan_strips().
std::vector<Strip> plan_streamed_strips(int rows, int parts, int halo, double decode_ratio, bool pipelined);

// Moves the boundaries between `strips` (any order, complete) down to
// multiples of `align` rows, so that each strip but the last in row order
// holds whole units of `align` rows (TIFF strips); halos recomputed.
void align_strips(std::vector<Strip>& strips, int rows, int halo, int align);

// The ranks in the order of their strips' rows (ties, from empty strips,
// by end then rank).
std::vector<int> row_order(const std::vector<Strip>& strips);

// A run of ops executed one way. A strip stage runs its local ops on every
// rank's strip and may end with one global op (equalize_hist or canny); a
// leader stage runs one geometry op (resize, rotate, flip v) on the leader.
struct Stage {
  bool on_leader = false;
  int first_op = 0;  // index into the pipeline
  int end_op = 0;    // one past the last op of the stage
  Distribution finish = Distribution::kLocal;  // kEqualizeHist or kCanny: the last op is global
  int halo = 0;      // rows each strip needs each side for the whole stage
};

std::vector<Stage> plan_stages(const Pipeline& pipeline);

}  // namespace imgq::workers
