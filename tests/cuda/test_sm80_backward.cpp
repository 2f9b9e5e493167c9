// The sm80 backward engine against the fp64 oracle: dq / dk / dv over dtype x head dim x
// seqlens x options (causal / window / softcap / ALiBi / dropout / GQA / MQA), varlen with
// empty sequences, strided and misaligned layouts, big grids, a 256k-token sequence, and the
// deterministic mode (bitwise equal across runs, and with the dQ conversion overlapped or not). The forward's out / lse come from the CPU
// engine, so these tests judge the backward kernels alone. Gradients are NaN-poisoned on
// the device before every call.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <utility>

#include "common/attention_case.hpp"
#include "common/attention_variants.hpp"
#include "cuda/common/device_smem.hpp"
#include "cuda/sm80/tile_size_bwd_sm80.hpp"
#include "cuda/backward_device_case.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/scoped_env.hpp"

namespace flashattn::testing {
namespace {

// Forward on the CPU engine (out, lse), backward on the GPU, judged against the oracle.
void check_case(const CaseSpec& s) {
  AttentionCase c(s);
  c.run_forward();
  DeviceCase d(c);
  d.run_backward();
  c.expect_backward_matches_oracle();
}



// Below the compact tiles' bytes (98944 at D = 256, 98688 at D = 128) no backward tile fits and
// the call is rejected (test_backward_compact_tiles.cpp checks the error), so these cases skip.
#define SKIP_IF_NO_BACKWARD_TILE(head_dim)                                                                    \
  do {                                                                                                        \
    const int dpad_ = (head_dim) <= 64 ? 64 : (head_dim) <= 128 ? 128 : 256;                                  \
    if (detail::sm80_bwd::choose_bwd_tile(dpad_, detail::device_smem_per_block(0)).kind ==                    \
        detail::sm80_bwd::BwdTileKind::none)                                                                  \
      GTEST_SKIP() << "no backward tile for head_dim " << (head_dim) << " in "                                 \
                   << detail::device_smem_per_block(0) << " bytes of shared memory per block";                \
  } while (0)

class Sm80BackwardMatrix : public ::testing::TestWithParam<MatrixParam> {};

TEST_P(Sm80BackwardMatrix, MatchesOracle) {
  FLASHATTN_REQUIRE_GPU();
  auto [t, d, seq, v] = GetParam();
  SKIP_IF_NO_BACKWARD_TILE(d);
  check_case(make_spec(t, d, seq.first, seq.second, v));
}

const auto kDtypes = ::testing::Values(DType::f16, DType::bf16);
const auto kVariants = ::testing::ValuesIn(kAllVariants);

INSTANTIATE_TEST_SUITE_P(Short, Sm80BackwardMatrix,
                         ::testing::Combine(kDtypes, ::testing::Values(32, 64, 80, 96, 128, 192, 256),
                                            ::testing::Values(std::pair{1, 1}, std::pair{17, 17}, std::pair{128, 128},
                                                              std::pair{17, 300}, std::pair{300, 17}),
                                            kVariants),
                         matrix_param_name);

// seqlen 1000: 16 q tiles, 8-16 kv tiles, many partial tiles on the diagonal (the fp64
// oracle costs seconds per case here, so fewer combinations).
INSTANTIATE_TEST_SUITE_P(Long, Sm80BackwardMatrix,
                         ::testing::Combine(kDtypes, ::testing::Values(64, 128),
                                            ::testing::Values(std::pair{1000, 1000}),
                                            ::testing::Values(Variant::causal, Variant::window, Variant::combo)),
                         matrix_param_name);
INSTANTIATE_TEST_SUITE_P(Long256, Sm80BackwardMatrix,
                         ::testing::Combine(::testing::Values(DType::bf16), ::testing::Values(256),
                                            ::testing::Values(std::pair{1000, 1000}),
                                            ::testing::Values(Variant::plain, Variant::combo)),
                         matrix_param_name);

// Head dims that pad to an instantiated one, with sq != sk both ways.
INSTANTIATE_TEST_SUITE_P(OddHeadDims, Sm80BackwardMatrix,
                         ::testing::Combine(::testing::Values(DType::bf16), ::testing::Values(8, 40, 72, 136, 248),
                                            ::testing::Values(std::pair{65, 133}, std::pair{200, 70}),
                                            ::testing::Values(Variant::causal, Variant::combo)),
                         matrix_param_name);

// Varlen batches with empty sequences on either side (dq rows with no key are 0, dk / dv
// rows no query reaches are 0).
std::string varlen_name(const ::testing::TestParamInfo<std::tuple<DType, int, Variant>>& info) {
  return std::string(dtype_name(std::get<0>(info.param))) + "_d" + std::to_string(std::get<1>(info.param)) + "_" +
         variant_name(std::get<2>(info.param));
}

class Sm80BackwardVarlen : public ::testing::TestWithParam<std::tuple<DType, int, Variant>> {};

TEST_P(Sm80BackwardVarlen, MatchesOracle) {
  FLASHATTN_REQUIRE_GPU();
  auto [t, d, v] = GetParam();
  SKIP_IF_NO_BACKWARD_TILE(d);
  CaseSpec s = make_varlen_spec(t, d, v, {0, 5, 17, 64, 0, 130, 1, 300}, {3, 0, 20, 64, 1, 100, 70, 129});
  check_case(s);
}

INSTANTIATE_TEST_SUITE_P(Varlen, Sm80BackwardVarlen, ::testing::Combine(kDtypes, ::testing::Values(64, 96, 256), kVariants),
                         varlen_name);

// Strided views: (B, H, S, D) storage seen as BSHD and padded rows.
TEST(Sm80BackwardLayouts, BhsdAndPaddedViewsMatchOracle) {
  FLASHATTN_REQUIRE_GPU();
  for (bool bhsd : {false, true})
    for (std::int64_t pad : {0, 8, 24}) {
      CaseSpec s = make_spec(DType::f16, 64, 70, 190, Variant::causal);
      s.heads_q = 4;
      s.heads_kv = 2;
      s.bhsd_layout = bhsd;
      s.pad = pad;
      SCOPED_TRACE(s.name());
      check_case(s);
    }
}

// Rows that are not 16-byte aligned: the kernels have an element-wise load / store path
// for them; dispatch (sm80_supports) may also turn such views away as unsupported, which
// must then be a clean flashattn::Error, not a wrong result.
TEST(Sm80BackwardLayouts, MisalignedRowsMatchOracleOrAreRejected) {
  FLASHATTN_REQUIRE_GPU();
  for (bool bhsd : {false, true}) {
    CaseSpec s = make_spec(DType::bf16, 72, 70, 130, Variant::combo);
    s.bhsd_layout = bhsd;
    s.pad = 3;
    SCOPED_TRACE(s.name());
    AttentionCase c(s);
    c.run_forward();
    DeviceCase d(c);
    try {
      d.run_backward();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), Error::Kind::unsupported) << e.what();
      continue;
    }
    c.expect_backward_matches_oracle();
  }
}

// More (batch x heads) than one grid dimension holds.
TEST(Sm80BackwardGrid, ManyBatchHeads) {
  FLASHATTN_REQUIRE_GPU();
  CaseSpec s = make_spec(DType::bf16, 32, 3, 5, Variant::gqa);
  s.batch = 300;
  s.heads_q = 240;
  s.heads_kv = 80;
  check_case(s);
}

// Deterministic mode: two runs give bitwise-equal gradients (and still match the oracle). At
// d 256 the 1100 keys are 18 kv tiles, so the causal cases run the grouped block order
// (bwd_block_order.hpp: 16 tiles or more), whose order the fixed dQ reduction must also keep.
TEST(Sm80BackwardDeterministic, BitwiseEqualAcrossRuns) {
  FLASHATTN_REQUIRE_GPU();
  const std::pair<int, Variant> cases[] = {{128, Variant::plain}, {128, Variant::causal}, {128, Variant::window},
                                           {128, Variant::combo}, {256, Variant::causal}, {256, Variant::combo}};
  for (auto [dim, v] : cases) {
    CaseSpec s = make_spec(DType::bf16, dim, 1000, 1100, v);
    s.heads_q = 4;
    s.heads_kv = 2;
    SCOPED_TRACE(s.name());
    AttentionCase c(s);
    c.run_forward();
    DeviceCase d(c);
    expect_deterministic_repeats(c, d);
    if (v == Variant::combo) c.expect_backward_matches_oracle();
  }
}

// The dQ conversion overlapped with the main kernel's last wave (sm_90: programmatic dependent
// launch, a per-pair count of finished main blocks) gives the bits of the conversion in stream order.
// The deterministic mode fixes every sum, so a tile converted before all of its adds landed would
// differ. Several waves of main blocks with a partial last one (the conversion's blocks start
// beside it): 4 x 8 kv heads x 16 kv tiles with GQA (a q head waits for its kv head's pair), and a
// causal varlen batch whose short sequences' surplus kv-tile blocks leave at once.
TEST(Sm80BackwardOverlap, ConvertOverlappedEqualsStreamOrder) {
  FLASHATTN_REQUIRE_GPU();
  CaseSpec gqa = make_spec(DType::bf16, 128, 2048, 2048, Variant::gqa);
  gqa.batch = 4;
  gqa.heads_q = 16;
  gqa.heads_kv = 8;
  CaseSpec varlen = make_varlen_spec(DType::f16, 64, Variant::causal, {700, 5, 1500, 64, 0, 1300}, {900, 3, 1400, 64, 1, 2000});
  varlen.heads_q = varlen.heads_kv = 8;
  for (const CaseSpec& s : {gqa, varlen}) {
    SCOPED_TRACE(s.name());
    AttentionCase c(s);
    c.run_forward();
    DeviceCase d(c);
    {
      ScopedEnv in_order("FLASHATTN_BWD_OVERLAP", "0");
      d.run_backward(true);
    }
    const HostTensor dq0 = c.dq, dk0 = c.dk, dv0 = c.dv;
    expect_deterministic_runs_equal(c, d, dq0, dk0, dv0, 2, "an overlapped");
  }
}

// A 256k-token sequence (int64 offsets, thousands of tiles) under a sliding window, so the
// CPU engine (which skips empty tiles like the kernels) can serve as the reference; the
// naive oracle would need 7e10 scores.
TEST(Sm80BackwardLong, Seqlen256kWindowMatchesCpuEngine) {
  FLASHATTN_REQUIRE_GPU();
  CaseSpec s = make_spec(DType::bf16, 64, 262144 + 17, 262144 + 17, Variant::plain);
  s.batch = 1;
  s.heads_q = 2;
  s.heads_kv = 1;
  s.window_left = 100;
  s.window_right = 3;
  AttentionCase c(s);
  c.run_forward();
  c.run_backward();  // CPU engine
  const HostTensor cdq = c.dq, cdk = c.dk, cdv = c.dv;
  DeviceCase d(c);
  d.run_backward();
  for (auto [ref, got, name] : {std::tuple{&cdq, &c.dq, "dq"}, std::tuple{&cdk, &c.dk, "dk"},
                                std::tuple{&cdv, &c.dv, "dv"}}) {
    const std::vector<double> a = ref->to_double(), b = got->to_double();
    double max_ref = 0, max_err = 0;
    std::size_t worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      ASSERT_FALSE(std::isnan(b[i])) << name << " NaN at " << i;
      max_ref = std::max(max_ref, std::abs(a[i]));
      if (std::abs(a[i] - b[i]) > max_err) max_err = std::abs(a[i] - b[i]), worst = i;
    }
    // Two bf16 engines with different summation orders: a few bf16 ulps of the largest value.
    EXPECT_LE(max_err, 0.03 * max_ref + 1e-3) << name << " worst element " << worst << ": " << a[worst] << " vs "
                                              << b[worst];
  }
}

}  // namespace
}  // namespace flashattn::testing
