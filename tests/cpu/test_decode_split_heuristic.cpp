// The CUDA decode engine's split count (src/cuda/decode/decode_heuristics.hpp, host code): the
// properties the measured choices rest on, on an H200-like device (132 SMs).
#include <gtest/gtest.h>

#include "cuda/decode/decode_heuristics.hpp"

namespace flashattn::detail::decode {
namespace {

constexpr int kSms = 132;

int grains(int keys) { return (keys + kSplitGrainKeys - 1) / kSplitGrainKeys; }

TEST(DecodeSplitHeuristic, OneCtaPerSmStaysInOneWave) {
  for (int ctas : {1, 3, 8, 16, 40, 64, 100})
    for (int keys : {256, 4096, 65536, 1 << 20}) {
      const int s = choose_device_splits(ctas, kSms, 1, grains(keys));
      EXPECT_GE(s, 1);
      EXPECT_LE(ctas * s, kSms) << ctas << " CTAs, " << keys << " keys";
    }
}

TEST(DecodeSplitHeuristic, SplitsKeepAtLeastFourGrains) {
  for (int per_sm : {1, 2})
    for (int keys : {64, 255, 1000, 4096, 8192}) {
      const int s = choose_device_splits(8, kSms, per_sm, grains(keys));
      EXPECT_TRUE(s == 1 || grains(keys) / s >= 4) << keys << " keys, " << s << " splits";
    }
}

TEST(DecodeSplitHeuristic, AnchorShapes) {
  // GQA 32/8, one token: 8 CTAs per sequence. Batch 1 fills the SMs' single slots with 16
  // splits at every length from 4k keys; a grid that already fills the device is not split.
  EXPECT_EQ(choose_device_splits(8, kSms, 1, grains(4096)), 16);
  EXPECT_EQ(choose_device_splits(8, kSms, 1, grains(131072)), 16);
  EXPECT_EQ(choose_device_splits(64, kSms, 1, grains(8192)), 2);
  EXPECT_EQ(choose_device_splits(128, kSms, 1, grains(16384)), 1);
  EXPECT_EQ(choose_device_splits(512, kSms, 1, grains(4096)), 1);
  // Two CTAs per SM: long splits fill both slots, short ones one.
  EXPECT_EQ(choose_device_splits(8, kSms, 2, grains(131072)), 33);
  EXPECT_LE(8 * choose_device_splits(8, kSms, 2, grains(4096)), kSms);
}

// The programmatic launch of unsplit grids (measured on an H200, one CTA per SM): every grid of
// more than one wave, a single wave only when it leaves at most a tenth of the slots idle.
TEST(DecodeSplitHeuristic, ProgrammaticLaunchSkipsPartFilledSingleWaves) {
  for (int batch : {17, 20, 24, 32, 33, 64, 512}) EXPECT_TRUE(programmatic_launch_pays(8 * batch, kSms)) << batch;
  EXPECT_TRUE(programmatic_launch_pays(128, kSms));   // batch 16: 4 SMs idle
  EXPECT_TRUE(programmatic_launch_pays(120, kSms));   // batch 15: 12 idle
  EXPECT_TRUE(programmatic_launch_pays(kSms, kSms));  // exactly one wave
  for (int batch : {1, 10, 12, 13, 14}) EXPECT_FALSE(programmatic_launch_pays(8 * batch, kSms)) << batch;
  EXPECT_TRUE(programmatic_launch_pays(240, 2 * kSms));  // two CTAs per SM: 24 of 264 idle
  EXPECT_FALSE(programmatic_launch_pays(192, 2 * kSms));
}

TEST(DecodeSplitHeuristic, SeveralWavesTakeTheTwoPerSmTileWherePackedAsTightly) {
  auto two_per_sm = [](int batch, int keys) { return prefer_smaller_tile(8 * batch, keys, kSms, 1, 2); };
  for (int batch : {17, 24, 32, 33, 64, 128, 512}) EXPECT_TRUE(two_per_sm(batch, 4096)) << batch;
  EXPECT_TRUE(two_per_sm(24, 8192));
  for (int batch : {1, 8, 16}) EXPECT_FALSE(two_per_sm(batch, 4096)) << batch;  // one wave of the big tile
  EXPECT_FALSE(two_per_sm(48, 4096));   // 384 CTAs: 97% of 3 x 132 slots, 73% of 2 x 264
  EXPECT_FALSE(two_per_sm(40, 4096));   // 320 CTAs: 81% of 3 x 132, 61% of 2 x 264
  EXPECT_FALSE(two_per_sm(64, 16384));  // long CTAs keep the big tile
  EXPECT_FALSE(prefer_smaller_tile(400, 4096, kSms, 1, 1));  // no more slots: nothing to gain
  EXPECT_FALSE(prefer_smaller_tile(400, 4096, kSms, 2, 2));
}

// Resident clusters of s one-CTA-per-SM CTAs on an H200 (cudaOccupancyMaxActiveClusters): 66 of
// 2, 30 of 4, 15 of 8, 7 of 10-16; 9 fits 8 clusters (the engine took 9 splits at 1 x 2k).
int h200_clusters(int s) { return s <= 2 ? 66 : s <= 4 ? 30 : s <= 6 ? 21 : s <= 8 ? 15 : s == 9 ? 8 : 7; }

TEST(DecodeSplitHeuristic, ClusterMergeTakesShortContextsOnly) {
  auto pick = [](int ctas, int keys) {
    const int memory = choose_device_splits(ctas, kSms, 1, grains(keys));
    return prefer_cluster_splits(memory, grains(keys), [&](int s) { return ctas <= h200_clusters(s); });
  };
  EXPECT_EQ(pick(8, 1024), 8);    // 8 clusters of 8, 2 grains each (memory merge: 4 splits)
  EXPECT_EQ(pick(8, 2048), 8);    // 4 grains each (9 fit too, no shorter; memory merge: 16)
  EXPECT_EQ(pick(8, 4096), 16);   // 8 clusters of 8 would be 8 grains long: the memory merge's 16
  EXPECT_EQ(pick(16, 2048), 8);   // 6 splits fit but are 6 grains long
  EXPECT_EQ(pick(8, 256), 2);     // 2 grains each at most
  EXPECT_EQ(pick(64, 8192), 2);   // long splits: the memory merge's count
  EXPECT_EQ(pick(512, 4096), 1);  // no split
  // It runs on every call: long contexts never ask, grids too large for clusters of 2 ask once.
  int asked = 0;
  auto counting = [&](int s) { return ++asked, 8 <= h200_clusters(s); };
  EXPECT_EQ(prefer_cluster_splits(16, grains(131072), counting), 16);
  EXPECT_EQ(asked, 0);
  auto counting_large = [&](int s) { return ++asked, 512 <= h200_clusters(s); };
  EXPECT_EQ(prefer_cluster_splits(1, grains(1024), counting_large), 1);
  EXPECT_EQ(asked, 1);
  // Every cluster-merged count is 2-16 splits of at least two grains, and all its clusters fit.
  for (int ctas : {1, 8, 16, 24, 64})
    for (int keys : {64, 200, 512, 1024, 1500, 2048, 3000}) {
      const int memory = choose_device_splits(ctas, kSms, 1, grains(keys));
      const int s = pick(ctas, keys);
      if (s == memory) continue;
      EXPECT_TRUE(s >= 2 && s <= kMaxClusterSplits && grains(keys) / s >= kClusterMinSplitTiles &&
                  ctas <= h200_clusters(s))
          << ctas << " CTAs, " << keys << " keys: " << s << " splits";
      // No smaller count gives splits as short.
      EXPECT_GT((grains(keys) + s - 2) / (s - 1), (grains(keys) + s - 1) / s) << ctas << " CTAs, " << keys << " keys";
    }
}

}  // namespace
}  // namespace flashattn::detail::decode
