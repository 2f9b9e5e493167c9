// The sm80 backward's tile choice per shared-memory budget (src/cuda/sm80/tile_size_bwd_sm80.hpp,
// host code): Hopper and A100 keep the standard tiles, the 99 KiB GPUs (sm_86 / sm_89) take the
// compact ones, and a budget too small for any tile is reported as none (the engine then throws).
#include <gtest/gtest.h>

#include "cuda/common/device_smem.hpp"
#include "cuda/sm80/tile_size_bwd_sm80.hpp"

namespace flashattn::detail::sm80_bwd {
namespace {

constexpr BwdTileKind kStd = BwdTileKind::standard, kCompact = BwdTileKind::compact, kNone = BwdTileKind::none;

void expect_choice(int d, std::size_t smem, BwdTileKind kind, int stages) {
  const BwdTileChoice c = choose_bwd_tile(d, smem);
  EXPECT_EQ(c.kind, kind) << "D = " << d << ", " << smem << " bytes";
  EXPECT_EQ(c.stages, stages) << "D = " << d << ", " << smem << " bytes";
  if (c.kind != kNone) {
    EXPECT_LE(bwd_tile_smem(d, c.kind, c.stages) + kBwdStaticSmem, smem);
  }
}

TEST(BwdTileChoice, HopperTakesStandardTilesWithTwoStages) {
  for (int d : {64, 128, 256}) expect_choice(d, kSmemOptinHopper, kStd, 2);
}

TEST(BwdTileChoice, A100TakesStandardTiles) {
  expect_choice(64, kSmemOptinA100, kStd, 2);
  expect_choice(128, kSmemOptinA100, kStd, 2);
  expect_choice(256, kSmemOptinA100, kStd, 1);
}

TEST(BwdTileChoice, NinetyNineKibGpusTakeCompactTiles) {
  expect_choice(64, kSmemOptinAda, kCompact, 2);
  expect_choice(128, kSmemOptinAda, kCompact, 1);
  expect_choice(256, kSmemOptinAda, kCompact, 1);  // 64 x 32, V in registers
}

TEST(BwdTileChoice, TooSmallForAnyTile) {
  for (int d : {64, 128, 256}) {
    expect_choice(d, 48 * 1024, kNone, 0);
    expect_choice(d, 0, kNone, 0);
  }
}

// The documented sizes (bytes of dynamic shared memory) and the boundaries between choices: one
// byte less than a tile needs takes the next smaller one.
TEST(BwdTileChoice, SizesAndBoundaries) {
  EXPECT_EQ(bwd_tile_smem(64, kCompact, 2), 99328u);
  EXPECT_EQ(bwd_tile_smem(128, kCompact, 1), 98560u);
  EXPECT_EQ(bwd_tile_smem(128, kCompact, 2), 115200u);
  EXPECT_EQ(bwd_tile_smem(64, kStd, 2), 165888u);
  EXPECT_EQ(bwd_tile_smem(256, kStd, 1), 147968u);
  EXPECT_EQ(bwd_tile_smem(256, kCompact, 1), 98816u);  // K, V (then P / dS), Q, dO, LSE2 / Drow
  EXPECT_EQ(bwd_tile_smem(256, kCompact, 2), 164864u);
  // (d, kind, stages) chosen at exactly its bytes; one byte less gives (below, below_stages).
  struct Boundary {
    int d;
    BwdTileKind kind;
    int stages;
    BwdTileKind below;
    int below_stages;
  };
  const Boundary boundaries[] = {
      {64, kCompact, 2, kCompact, 1},
      {128, kCompact, 1, kNone, 0},
      {128, kStd, 1, kCompact, 2},  // between the two, the compact tile has room for two stages
      {128, kCompact, 2, kCompact, 1},
      {256, kCompact, 1, kNone, 0},
      {256, kStd, 1, kCompact, 1},
  };
  for (const Boundary& b : boundaries) {
    const std::size_t bytes = bwd_tile_smem(b.d, b.kind, b.stages) + kBwdStaticSmem;
    expect_choice(b.d, bytes, b.kind, b.stages);
    expect_choice(b.d, bytes - 1, b.below, b.below_stages);
  }
}

}  // namespace
}  // namespace flashattn::detail::sm80_bwd
