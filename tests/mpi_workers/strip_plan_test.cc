#include "imgq/mpi_workers/strip_plan.h"

#include <gtest/gtest.h>

namespace imgq::workers {
namespace {

TEST(PlanStrips, BalancedAndComplete) {
  for (int rows : {1, 2, 3, 5, 7, 64, 101, 1000}) {
    for (int parts : {1, 2, 3, 4, 7, 16}) {
      for (int halo : {0, 1, 3, 50}) {
        const auto strips = plan_strips(rows, parts, halo);
        ASSERT_EQ(strips.size(), static_cast<size_t>(parts));
        int next = 0, smallest = rows, largest = 0;
        for (const Strip& s : strips) {
          EXPECT_EQ(s.begin, next) << "strips are contiguous and in order";
          next = s.end;
          smallest = std::min(smallest, s.rows());
          largest = std::max(largest, s.rows());
          if (s.rows() > 0) {
            EXPECT_EQ(s.buf_begin, std::max(0, s.begin - halo));
            EXPECT_EQ(s.buf_end, std::min(rows, s.end + halo));
          } else {
            EXPECT_EQ(s.buf_rows(), 0);
          }
        }
        EXPECT_EQ(next, rows) << "no row dropped";
        EXPECT_LE(largest - smallest, 1) << rows << " rows over " << parts;
      }
    }
  }
}

TEST(PlanStrips, RemainderGoesToTheFirstStrips) {
  const auto s = plan_strips(10, 4, 0);
  EXPECT_EQ(s[0], (Strip{0, 3, 0, 3}));
  EXPECT_EQ(s[1], (Strip{3, 6, 3, 6}));
  EXPECT_EQ(s[2], (Strip{6, 8, 6, 8}));
  EXPECT_EQ(s[3], (Strip{8, 10, 8, 10}));
}

TEST(PlanStrips, HaloIsClippedToTheImage) {
  const auto s = plan_strips(10, 2, 3);
  EXPECT_EQ(s[0], (Strip{0, 5, 0, 8}));
  EXPECT_EQ(s[1], (Strip{5, 10, 2, 10}));
}

TEST(PlanStrips, FewerRowsThanRanks) {
  const auto s = plan_strips(3, 4, 2);
  EXPECT_EQ(s[0], (Strip{0, 1, 0, 3}));
  EXPECT_EQ(s[1], (Strip{1, 2, 0, 3}));
  EXPECT_EQ(s[2], (Strip{2, 3, 0, 3}));
  EXPECT_EQ(s[3], (Strip{3, 3, 3, 3}));
}

Pipeline pipeline(const std::vector<std::string>& specs) {
  auto p = schemas::parse_pipeline(specs);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return *p;
}

TEST(PlanStages, LocalOpsShareOneStageAndAddTheirHalos) {
  const auto s = plan_stages(pipeline({"grayscale", "gaussian_blur:ksize=5", "erode:ksize=3,iterations=2"}));
  ASSERT_EQ(s.size(), 1u);
  EXPECT_FALSE(s[0].on_leader);
  EXPECT_EQ(s[0].first_op, 0);
  EXPECT_EQ(s[0].end_op, 3);
  EXPECT_EQ(s[0].halo, 2 + 2);
  EXPECT_EQ(s[0].finish, Distribution::kLocal);
}

TEST(PlanStages, GlobalOpsCloseAStage) {
  const auto s = plan_stages(
      pipeline({"gaussian_blur", "canny", "dilate", "equalize_hist", "invert", "resize", "flip:axis=h"}));
  ASSERT_EQ(s.size(), 5u);
  EXPECT_EQ(s[0].end_op, 2);
  EXPECT_EQ(s[0].finish, Distribution::kCanny);
  EXPECT_EQ(s[0].halo, 2 + 2);
  EXPECT_EQ(s[1].first_op, 2);
  EXPECT_EQ(s[1].end_op, 4);
  EXPECT_EQ(s[1].finish, Distribution::kEqualizeHist);
  EXPECT_EQ(s[1].halo, 1);
  EXPECT_EQ(s[2].first_op, 4);
  EXPECT_EQ(s[2].end_op, 5);
  EXPECT_TRUE(s[3].on_leader);
  EXPECT_EQ(s[3].first_op, 5);
  EXPECT_EQ(s[4].first_op, 6);
  EXPECT_FALSE(s[4].on_leader);
}

TEST(PlanStages, EmptyPipelineHasNoStages) { EXPECT_TRUE(plan_stages({}).empty()); }

// Followers first in rank order, the leader last; every row once; halos as
// plan_strips() gives them.
TEST(PlanStreamedStrips, FollowersFirstLeaderLastComplete) {
  for (int rows : {1, 2, 3, 5, 7, 64, 101, 1000}) {
    for (int parts : {1, 2, 3, 4, 7}) {
      for (double ratio : {0.0, 0.3, 1.0, 4.4, 50.0}) {
       for (bool pipelined : {false, true}) {
        const auto strips = plan_streamed_strips(rows, parts, 2, ratio, pipelined);
        ASSERT_EQ(strips.size(), static_cast<size_t>(parts));
        int next = 0;
        for (int k = 0; k < parts; ++k) {
          const Strip& s = strips[static_cast<size_t>(k + 1 < parts ? k + 1 : 0)];
          EXPECT_EQ(s.begin, next) << rows << " rows, " << parts << " parts, ratio " << ratio;
          EXPECT_GE(s.end, s.begin);
          next = s.end;
          if (s.rows() > 0) {
            EXPECT_EQ(s.buf_begin, std::max(0, s.begin - 2));
            EXPECT_EQ(s.buf_end, std::min(rows, s.end + 2));
          } else {
            EXPECT_EQ(s.buf_rows(), 0);
          }
        }
        EXPECT_EQ(next, rows);
        const auto order = row_order(strips);
        for (size_t i = 1; i < order.size(); ++i) {
          EXPECT_LE(strips[static_cast<size_t>(order[i - 1])].end, strips[static_cast<size_t>(order[i])].begin + 0)
              << "row_order sorts by rows";
        }
       }
      }
    }
  }
}

TEST(PlanStreamedStrips, SharesFollowTheDecodeCost) {
  // No decode cost: equal strips (in the rotated order).
  auto even = plan_streamed_strips(1000, 4, 0, 0.0, false);
  for (const Strip& s : even) EXPECT_EQ(s.rows(), 250);
  // Decoding a row costs as much as the rest of the stage on it, 2 ranks:
  // the follower takes rows until both end together, d*f1 + f1 = d + f0,
  // so f1 = 2/3.
  auto two = plan_streamed_strips(3000, 2, 0, 1.0, false);
  EXPECT_EQ(two[1].rows(), 2000);
  EXPECT_EQ(two[0].rows(), 1000);
  // The leader takes less the dearer decoding is; each follower less than
  // the one before it.
  auto dear = plan_streamed_strips(10000, 4, 0, 3.0, false);
  EXPECT_GT(dear[1].rows(), dear[2].rows());
  EXPECT_GT(dear[2].rows(), dear[3].rows());
  EXPECT_GT(dear[3].rows(), dear[0].rows());
  // d = 8, 2 ranks: f1 = T / 9 and f0 = T - 8 sum to 1 at T = 8.1.
  EXPECT_EQ(plan_streamed_strips(10000, 2, 0, 8.0, false)[0].rows(), 1000);
  // Pipelined, a follower keeps pace with the decoding when its work is
  // the slower: d = 0.36, 2 ranks: f1 = T and f0 = T - 0.36, so T = 0.68.
  EXPECT_EQ(plan_streamed_strips(10000, 2, 0, 0.36, true)[0].rows(), 3200);
  // Where decoding is the slower, it sets the pace: d = 3: f1 = T / 3 and
  // f0 = T - 3 sum to 1 at T = 3.
  EXPECT_EQ(plan_streamed_strips(10000, 2, 0, 3.0, true)[0].rows(), 0);
  EXPECT_EQ(plan_streamed_strips(10000, 4, 0, 0.0, true)[0].rows(), 2500);
}

TEST(AlignStrips, BoundariesAtMultiplesOfTheUnit) {
  for (int rows : {1, 7, 64, 1000}) {
    for (int parts : {1, 2, 3, 4}) {
      for (int align : {1, 3, 16, 5000}) {
        for (bool streamed : {false, true}) {
          auto strips = streamed ? plan_streamed_strips(rows, parts, 2, 0.5, true) : plan_strips(rows, parts, 2);
          align_strips(strips, rows, 2, align);
          const auto order = row_order(strips);
          int next = 0;
          for (size_t k = 0; k < order.size(); ++k) {
            const Strip& s = strips[static_cast<size_t>(order[k])];
            EXPECT_EQ(s.begin, next);
            if (k + 1 < order.size()) {
              EXPECT_EQ(s.end % align, 0) << rows << " " << parts << " " << align;
            }
            if (s.rows() > 0) {
              EXPECT_EQ(s.buf_begin, std::max(0, s.begin - 2));
              EXPECT_EQ(s.buf_end, std::min(rows, s.end + 2));
            }
            next = s.end;
          }
          EXPECT_EQ(next, rows);
        }
      }
    }
  }
  // Followers first, leader last, still.
  auto strips = plan_streamed_strips(100, 2, 0, 0.0, true);
  align_strips(strips, 100, 0, 16);
  EXPECT_EQ(strips[1], (Strip{0, 48, 0, 48}));
  EXPECT_EQ(strips[0], (Strip{48, 100, 48, 100}));
}

}  // namespace
}  // namespace imgq::workers
