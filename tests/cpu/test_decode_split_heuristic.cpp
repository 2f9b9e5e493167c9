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

}  // namespace
}  // namespace flashattn::detail::decode
