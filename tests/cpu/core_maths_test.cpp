// The shared maths every engine uses: Philox known answers, fp16/bf16 rounding, mask
// bounds and tile classification, online-softmax merge.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/mask.hpp"
#include "core/numeric_types.hpp"
#include "core/online_softmax.hpp"
#include "core/philox.hpp"

namespace flashattn::detail {
namespace {

TEST(Philox, MatchesRandom123KnownAnswers) {
  // Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
  const Philox4 zero = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(zero.x[0], 0x6627e8d5u);
  EXPECT_EQ(zero.x[1], 0xe169c58du);
  EXPECT_EQ(zero.x[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.x[3], 0x9b00dbd8u);
  const Philox4 ones = philox4x32_10(Philox4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(ones.x[0], 0x408f276du);
  EXPECT_EQ(ones.x[1], 0x41c83b0eu);
  EXPECT_EQ(ones.x[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.x[3], 0x6d5451fdu);
  const Philox4 pi = philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(pi.x[0], 0xd16cfe09u);
  EXPECT_EQ(pi.x[1], 0x94fdccebu);
  EXPECT_EQ(pi.x[2], 0x5001e420u);
  EXPECT_EQ(pi.x[3], 0x24126ea1u);
}

TEST(Philox, DropoutKeepRateMatchesProbability) {
  for (float p : {0.1f, 0.5f, 0.9f}) {
    const DropoutRng rng = make_dropout_rng(1234, 5, p);
    int kept = 0;
    const int n = 200000;
    for (int i = 0; i < n; ++i) kept += rng.keep(i % 7, i / 400, i % 400);
    EXPECT_NEAR(kept / double(n), 1.0 - p, 0.005) << "p = " << p;
  }
}

TEST(NumericTypes, RoundTripAndRoundToNearestEven) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-70000.f, 70000.f);
  for (int i = 0; i < 100000; ++i) {
    const float x = u(rng) * (i % 3 == 0 ? 1e-6f : 1.f);
    // bf16: the nearest of the two neighbours that bracket x.
    const float b = bf16_to_f32(f32_to_bf16(x));
    EXPECT_LE(std::abs(b - x), std::abs(x) * (1.f / 256.f)) << x;
    const float h = f16_to_f32(f32_to_f16(x));
    if (std::abs(x) < 65504.f && std::abs(x) > 6.1e-5f) EXPECT_LE(std::abs(h - x), std::abs(x) * (1.f / 2048.f)) << x;
  }
  EXPECT_EQ(f32_to_f16(65520.f), 0x7C00);          // rounds to inf
  EXPECT_EQ(f32_to_f16(1.0f + 1.f / 2048.f), 0x3C00);  // tie -> even
  EXPECT_EQ(f32_to_f16(5.9604645e-8f), 0x0001);    // smallest subnormal
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  EXPECT_EQ(f32_to_bf16(1.0f + 1.f / 256.f), 0x3F80);  // tie -> even
}

TEST(Mask, BottomRightCausalAndWindow) {
  const MaskBounds causal{4, 10, -1, 0};  // seqlen_q < seqlen_k: row 0 sees keys 0..6
  EXPECT_EQ(causal.keys_of_row(0).lo, 0);
  EXPECT_EQ(causal.keys_of_row(0).hi, 7);
  EXPECT_EQ(causal.keys_of_row(3).hi, 10);
  const MaskBounds tall{10, 4, -1, 0};  // seqlen_q > seqlen_k: rows 0..5 see nothing
  EXPECT_GE(tall.keys_of_row(5).lo, tall.keys_of_row(5).hi);
  EXPECT_EQ(tall.keys_of_row(6).hi, 1);
  const MaskBounds win{8, 8, 2, 1};
  EXPECT_EQ(win.keys_of_row(4).lo, 2);
  EXPECT_EQ(win.keys_of_row(4).hi, 6);
}

TEST(Mask, TileClassificationAgreesWithElementMask) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 2000; ++trial) {
    const int sq = 1 + rng() % 200, sk = 1 + rng() % 200;
    const int wl = int(rng() % 4) == 0 ? -1 : int(rng() % 50), wr = int(rng() % 3) == 0 ? -1 : int(rng() % 50);
    const MaskBounds m{sq, sk, wl, wr};
    const int r0 = rng() % sq, r1 = std::min(sq, r0 + 1 + int(rng() % 64));
    const int c0 = rng() % sk, c1 = std::min(sk, c0 + 1 + int(rng() % 64));
    int visible = 0, total = 0;
    for (int i = r0; i < r1; ++i)
      for (int j = c0; j < c1; ++j) {
        const KeyRange r = m.keys_of_row(i);
        visible += (j >= r.lo && j < r.hi);
        ++total;
      }
    const TileKind k = classify_tile(m, r0, r1, c0, c1);
    if (visible == 0) EXPECT_NE(k, TileKind::full);
    if (k == TileKind::empty) EXPECT_EQ(visible, 0);
    if (k == TileKind::full) EXPECT_EQ(visible, total);
  }
}

TEST(OnlineSoftmax, MergeOfSplitsEqualsOnePass) {
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.f, 3.f);
  std::vector<float> x(100);
  for (auto& v : x) v = n(rng);
  SoftmaxStats all, a, b;
  for (int i = 0; i < 100; ++i) {
    SoftmaxStats& half = i < 37 ? a : b;
    half.rescale_to(x[i]);
    half.l += std::exp2(x[i] - half.m);
    all.rescale_to(x[i]);
    all.l += std::exp2(x[i] - all.m);
  }
  float fa, fb;
  a.merge(b, fa, fb);
  EXPECT_NEAR(a.lse(), all.lse(), 1e-5f);
  SoftmaxStats empty;
  float f0, f1;
  empty.merge(SoftmaxStats{}, f0, f1);
  EXPECT_EQ(empty.lse(), -INFINITY);
  EXPECT_EQ(empty.inv_sum(), 0.f);
  EXPECT_EQ(f0, 0.f);
}

}  // namespace
}  // namespace flashattn::detail
