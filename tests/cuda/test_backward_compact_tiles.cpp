// The sm80 backward on the compact tiles of the 99 KiB GPUs (sm_86 / sm_89: RTX 30xx / 40xx, A10,
// L4, L40), forced on whatever GPU runs the suite by lowering the shared-memory limit the engine
// sizes its tiles by (FLASHATTN_MAX_SMEM_PER_BLOCK=101376, device_smem.hpp). Judged against the fp64
// oracle like test_sm80_backward.cpp: odd seqlens, GQA / MQA, every option, varlen with empty
// sequences, the deterministic mode, head dims padded to 64, 128 and 256 (the last with V in
// registers); below the smallest tile's bytes a call must fail cleanly (unsupported, naming
// head_dim and the bytes, gradients untouched). Gradients are NaN-poisoned on the device before
// every call.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "common/attention_case.hpp"
#include "common/attention_variants.hpp"
#include "cuda/common/device_smem.hpp"
#include "cuda/backward_device_case.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/smem_limit.hpp"
#include "cuda/sm80/tile_size_bwd_sm80.hpp"

namespace flashattn::testing {
namespace {

using detail::sm80_bwd::BwdTileKind;

int padded(int d) { return d <= 64 ? 64 : d <= 128 ? 128 : 256; }

// Every test runs under the 99 KiB limit; skipped on a GPU offering less than that.
class Sm80BackwardCompactBase {
 protected:
  SmemLimit limit_{detail::kSmemOptinAda};

  static bool device_has_99k() {
    int optin = 0;
    return cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) == cudaSuccess &&
           std::size_t(optin) >= detail::kSmemOptinAda;
  }

  // The engine takes the compact tile for this head dim under the limit (what makes the test
  // a test of the compact kernels and not of the standard ones).
  static bool expect_compact(int d) {
    const auto choice = detail::sm80_bwd::choose_bwd_tile(padded(d), detail::device_smem_per_block(0));
    EXPECT_EQ(choice.kind, BwdTileKind::compact) << "head_dim " << d;
    return choice.kind == BwdTileKind::compact;
  }

  static void check_case(const CaseSpec& s, bool deterministic = false) {
    if (!expect_compact(s.head_dim)) return;
    AttentionCase c(s);
    c.run_forward();
    DeviceCase d(c);
    d.run_backward(deterministic);
    c.expect_backward_matches_oracle();
  }
};

#define FLASHATTN_REQUIRE_99K()                                                            \
  do {                                                                                     \
    FLASHATTN_REQUIRE_GPU();                                                               \
    if (!device_has_99k()) GTEST_SKIP() << "the GPU offers less than 99 KiB per block";    \
  } while (0)

// The limit reaches the engine's choice, and is restored afterwards.
TEST(Sm80BackwardCompactTiles, LimitSelectsTheTile) {
  FLASHATTN_REQUIRE_GPU();
  const char* before = std::getenv("FLASHATTN_MAX_SMEM_PER_BLOCK");
  const std::string saved = before ? before : "<unset>";
  {
    SmemLimit l(detail::kSmemOptinAda);
    EXPECT_LE(detail::device_smem_per_block(0), detail::kSmemOptinAda);
    const std::size_t smem = detail::device_smem_per_block(0);
    if (smem == detail::kSmemOptinAda) {
      EXPECT_EQ(detail::sm80_bwd::choose_bwd_tile(64, smem).kind, BwdTileKind::compact);
      EXPECT_EQ(detail::sm80_bwd::choose_bwd_tile(64, smem).stages, 2);
      EXPECT_EQ(detail::sm80_bwd::choose_bwd_tile(128, smem).kind, BwdTileKind::compact);
      EXPECT_EQ(detail::sm80_bwd::choose_bwd_tile(128, smem).stages, 1);
      EXPECT_EQ(detail::sm80_bwd::choose_bwd_tile(256, smem).kind, BwdTileKind::compact);
      EXPECT_EQ(detail::sm80_bwd::choose_bwd_tile(256, smem).stages, 1);
    }
  }
  const char* after = std::getenv("FLASHATTN_MAX_SMEM_PER_BLOCK");
  EXPECT_EQ(saved, after ? after : "<unset>");
}

class Sm80BackwardCompactMatrix : public ::testing::TestWithParam<MatrixParam>, protected Sm80BackwardCompactBase {};

TEST_P(Sm80BackwardCompactMatrix, MatchesOracle) {
  FLASHATTN_REQUIRE_99K();
  auto [t, d, seq, v] = GetParam();
  check_case(make_spec(t, d, seq.first, seq.second, v));
}

const auto kDtypes = ::testing::Values(DType::f16, DType::bf16);
// 160: padded to 256, the dP product skips the last 64-column groups of V's fragments.
const auto kCompactDims = ::testing::Values(40, 64, 96, 128, 160, 256);

// Every option on short, odd sequences (one q tile, one or more kv tiles; sq != sk both ways).
INSTANTIATE_TEST_SUITE_P(Short, Sm80BackwardCompactMatrix,
                         ::testing::Combine(kDtypes, kCompactDims,
                                            ::testing::Values(std::pair{1, 1}, std::pair{17, 17}, std::pair{17, 300},
                                                              std::pair{300, 17}),
                                            ::testing::ValuesIn(kAllVariants)),
                         matrix_param_name);
// 255 rows: four (D = 64, 256) or eight (D = 128) q tiles, the last one partial; two (eight at
// D = 256) kv tiles.
INSTANTIATE_TEST_SUITE_P(Mid, Sm80BackwardCompactMatrix,
                         ::testing::Combine(kDtypes, kCompactDims, ::testing::Values(std::pair{255, 255}),
                                            ::testing::Values(Variant::plain, Variant::causal, Variant::gqa,
                                                              Variant::combo)),
                         matrix_param_name);
// seqlen 1000: 16 or 32 q tiles, 8 kv tiles, many partial tiles on the diagonal and window edges.
INSTANTIATE_TEST_SUITE_P(Long, Sm80BackwardCompactMatrix,
                         ::testing::Combine(::testing::Values(DType::bf16), ::testing::Values(64, 128, 256),
                                            ::testing::Values(std::pair{1000, 1000}),
                                            ::testing::Values(Variant::plain, Variant::causal, Variant::window,
                                                              Variant::combo)),
                         matrix_param_name);

// Varlen batches with empty sequences on either side.
class Sm80BackwardCompactVarlen : public ::testing::TestWithParam<std::tuple<DType, int, Variant>>,
                                  protected Sm80BackwardCompactBase {};

TEST_P(Sm80BackwardCompactVarlen, MatchesOracle) {
  FLASHATTN_REQUIRE_99K();
  auto [t, d, v] = GetParam();
  CaseSpec s = make_varlen_spec(t, d, v, {0, 5, 17, 64, 0, 130, 1, 300}, {3, 0, 20, 64, 1, 100, 70, 129});
  check_case(s);
}

std::string varlen_name(const ::testing::TestParamInfo<std::tuple<DType, int, Variant>>& info) {
  return std::string(dtype_name(std::get<0>(info.param))) + "_d" + std::to_string(std::get<1>(info.param)) + "_" +
         variant_name(std::get<2>(info.param));
}

INSTANTIATE_TEST_SUITE_P(Varlen, Sm80BackwardCompactVarlen,
                         ::testing::Combine(kDtypes, ::testing::Values(64, 96, 128, 256),
                                            ::testing::Values(Variant::plain, Variant::causal, Variant::window,
                                                              Variant::combo)),
                         varlen_name);

class Sm80BackwardCompact : public ::testing::Test, protected Sm80BackwardCompactBase {};

// Padded and (B, H, S, D) strided views.
TEST_F(Sm80BackwardCompact, StridedViewsMatchOracle) {
  FLASHATTN_REQUIRE_99K();
  for (int d : {64, 128, 256})
    for (bool bhsd : {false, true}) {
      CaseSpec s = make_spec(DType::f16, d, 70, 190, Variant::causal);
      s.heads_q = 4;
      s.heads_kv = 2;
      s.bhsd_layout = bhsd;
      s.pad = 8;
      SCOPED_TRACE(s.name());
      check_case(s);
    }
}

// Deterministic mode: bitwise-equal gradients across runs, and still the oracle's.
TEST_F(Sm80BackwardCompact, DeterministicBitwiseEqualAcrossRuns) {
  FLASHATTN_REQUIRE_99K();
  for (int d : {64, 128, 256})
    for (Variant v : {Variant::plain, Variant::causal, Variant::combo}) {
      CaseSpec s = make_spec(DType::bf16, d, 1000, 1100, v);
      s.heads_q = 4;
      s.heads_kv = 2;
      SCOPED_TRACE(s.name());
      if (!expect_compact(d)) return;
      AttentionCase c(s);
      c.run_forward();
      DeviceCase dc(c);
      expect_deterministic_repeats(c, dc);
      if (v != Variant::plain) c.expect_backward_matches_oracle();
    }
}

// One byte below the D = 256 compact tile (with the kernel's static bytes) no tile fits: a clean
// unsupported error that names the head dim and the bytes needed and offered, before anything is
// written (gradients keep the poison).
TEST_F(Sm80BackwardCompact, BelowTheSmallestTileIsUnsupportedAndWritesNothing) {
  FLASHATTN_REQUIRE_99K();
  const std::size_t need =
      detail::sm80_bwd::bwd_tile_smem(256, BwdTileKind::compact, 1) + detail::sm80_bwd::kBwdStaticSmem;
  SmemLimit below(need - 1);
  for (int d : {136, 256}) {
    CaseSpec s = make_spec(DType::bf16, d, 65, 70, Variant::causal);
    SCOPED_TRACE(s.name());
    AttentionCase c(s);
    c.run_forward();
    DeviceCase dc(c);
    dc.poison_gradients();
    const HostTensor dq0 = c.dq, dk0 = c.dk, dv0 = c.dv;
    try {
      dc.call_backward(false);
      ADD_FAILURE() << "no error at head_dim " << d;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), Error::Kind::unsupported) << e.what();
      const std::string msg = e.what();
      EXPECT_NE(msg.find("head_dim " + std::to_string(d)), std::string::npos) << msg;
      EXPECT_NE(msg.find("needs " + std::to_string(need) + " bytes"), std::string::npos) << msg;
      EXPECT_NE(msg.find("offers " + std::to_string(need - 1)), std::string::npos) << msg;
    }
    dc.download();
    EXPECT_EQ(std::memcmp(dq0.data(), c.dq.data(), dq0.bytes()), 0) << "dq written";
    EXPECT_EQ(std::memcmp(dk0.data(), c.dk.data(), dk0.bytes()), 0) << "dk written";
    EXPECT_EQ(std::memcmp(dv0.data(), c.dv.data(), dv0.bytes()), 0) << "dv written";
  }
}

}  // namespace
}  // namespace flashattn::testing
