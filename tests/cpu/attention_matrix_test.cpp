// The CPU engine against the fp64 oracle over the matrix dtype x head dim x seqlens x
// options (causal / window / softcap / ALiBi / dropout / GQA / MQA), forward and backward,
// on fresh random inputs with poisoned outputs.
#include <gtest/gtest.h>

#include "common/attention_case.hpp"
#include "common/attention_variants.hpp"

namespace flashattn::testing {
namespace {



class AttentionMatrix : public ::testing::TestWithParam<MatrixParam> {};

TEST_P(AttentionMatrix, ForwardAndBackwardMatchOracle) {
  auto [t, d, seq, v] = GetParam();
  AttentionCase c(make_spec(t, d, seq.first, seq.second, v));
  c.run_forward();
  c.expect_forward_matches_oracle();
  c.run_backward();
  c.expect_backward_matches_oracle();
}

const auto kDtypes = ::testing::Values(DType::f32, DType::f16, DType::bf16);
const auto kVariants = ::testing::ValuesIn(kAllVariants);

INSTANTIATE_TEST_SUITE_P(Short, AttentionMatrix,
                         ::testing::Combine(kDtypes, ::testing::Values(32, 64, 80, 96, 128, 192, 256),
                                            ::testing::Values(std::pair{1, 1}, std::pair{17, 17}, std::pair{128, 128},
                                                              std::pair{17, 300}, std::pair{300, 17}),
                                            kVariants),
                         matrix_param_name);

// seqlen 1000 (several partial tiles, 16 q tiles).
INSTANTIATE_TEST_SUITE_P(Long, AttentionMatrix,
                         ::testing::Combine(kDtypes, ::testing::Values(128),
                                            ::testing::Values(std::pair{1000, 1000}), kVariants),
                         matrix_param_name);

// Head dims that are multiples of 8 but no power of two, and the smallest one.
INSTANTIATE_TEST_SUITE_P(OddHeadDims, AttentionMatrix,
                         ::testing::Combine(::testing::Values(DType::bf16), ::testing::Values(8, 40, 72, 136, 248),
                                            ::testing::Values(std::pair{65, 33}), ::testing::Values(Variant::causal, Variant::combo)),
                         matrix_param_name);

// Varlen batches with empty sequences on either side.
std::string varlen_name(const ::testing::TestParamInfo<std::tuple<DType, int, Variant>>& info) {
  return std::string(dtype_name(std::get<0>(info.param))) + "_d" + std::to_string(std::get<1>(info.param)) + "_" +
         variant_name(std::get<2>(info.param));
}

class VarlenMatrix : public ::testing::TestWithParam<std::tuple<DType, int, Variant>> {};

TEST_P(VarlenMatrix, ForwardAndBackwardMatchOracle) {
  auto [t, d, v] = GetParam();
  CaseSpec s = make_varlen_spec(t, d, v, {0, 5, 17, 64, 0, 130, 1}, {3, 0, 20, 64, 1, 100, 70});
  AttentionCase c(s);
  c.run_forward();
  c.expect_forward_matches_oracle();
  c.run_backward();
  c.expect_backward_matches_oracle();
}

INSTANTIATE_TEST_SUITE_P(Varlen, VarlenMatrix,
                         ::testing::Combine(kDtypes, ::testing::Values(64, 96), kVariants),
                         varlen_name);

// Strided views: (B, H, S, D) storage seen as BSHD, and padded rows, without copies.
TEST(AttentionLayouts, BhsdAndPaddedViewsMatchOracle) {
  for (bool bhsd : {false, true})
    for (std::int64_t pad : {0, 8, 24}) {
      CaseSpec s = make_spec(DType::f16, 64, 70, 90, Variant::causal);
      s.heads_q = 4;
      s.heads_kv = 2;
      s.bhsd_layout = bhsd;
      s.pad = pad;
      AttentionCase c(s);
      c.run_forward();
      c.expect_forward_matches_oracle();
      c.run_backward();
      c.expect_backward_matches_oracle();
    }
}

}  // namespace
}  // namespace flashattn::testing
