// Properties beyond the oracle matrix: fully masked rows, merge_states of split halves,
// dropout reproducibility, O(tile) scratch.
#include <gtest/gtest.h>

#include <cmath>

#include "common/attention_case.hpp"
#include "cpu/scratch_stats.hpp"

namespace flashattn::testing {
namespace {

TEST(MaskedRows, GiveZeroOutputMinusInfLseAndNoNaN) {
  for (DType t : {DType::f32, DType::bf16}) {
    // seqlen_q > seqlen_k with bottom-right causal: the first 40 rows see no key.
    CaseSpec s;
    s.dtype = t;
    s.head_dim = 64;
    s.seqlen_q = 100;
    s.seqlen_k = 60;
    s.causal = true;
    AttentionCase c(s);
    c.run_forward();
    c.expect_forward_matches_oracle();
    for (int b = 0; b < s.batch; ++b)
      for (int h = 0; h < s.heads_q; ++h)
        for (int i = 0; i < 40; ++i) {
          EXPECT_EQ(c.lse.get((std::int64_t(b) * s.heads_q + h) * s.seqlen_q + i), -INFINITY);
          for (int d = 0; d < s.head_dim; ++d)
            ASSERT_EQ(c.out.get(((std::int64_t(b) * s.seqlen_q + i) * s.heads_q + h) * s.head_dim + d), 0.f);
        }
    c.run_backward();
    c.expect_backward_matches_oracle();
    for (double x : c.dq.to_double()) ASSERT_FALSE(std::isnan(x));
  }
}

TEST(MergeStates, SplitHalvesEqualOnePass) {
  for (DType t : {DType::f32, DType::f16}) {
    CaseSpec s;
    s.dtype = t;
    s.head_dim = 96;
    s.seqlen_q = 33;
    s.seqlen_k = 150;
    s.heads_q = 4;
    s.heads_kv = 2;
    AttentionCase whole(s);
    whole.run_forward();
    // Two halves of the keys as separate problems, with fp32 partial outputs.
    const int B = s.batch, Sq = s.seqlen_q, H = s.heads_q, D = s.head_dim;
    HostTensor parts(DType::f32, {2, B, Sq, H, D}), lses(DType::f32, {2, B, H, Sq});
    for (int half = 0; half < 2; ++half) {
      const int k0 = half ? 70 : 0, n = half ? 80 : 70;
      TensorView k = whole.view(whole.k), v = whole.view(whole.v);
      k.data = static_cast<char*>(k.data) + k0 * k.strides[1] * dtype_size(t);
      v.data = static_cast<char*>(v.data) + k0 * v.strides[1] * dtype_size(t);
      k.sizes[1] = v.sizes[1] = n;
      HostTensor o(t, {B, Sq, H, D}), l(DType::f32, {B, H, Sq});
      forward(whole.view(whole.q), k, v, o.view(), l.view());
      for (std::int64_t i = 0; i < o.numel(); ++i) parts.set(half * o.numel() + i, o.get(i));
      for (std::int64_t i = 0; i < l.numel(); ++i) lses.set(half * l.numel() + i, l.get(i));
    }
    HostTensor merged(t, {B, Sq, H, D}), mlse(DType::f32, {B, H, Sq});
    merged.poison();
    mlse.poison();
    merge_states(parts.view(), lses.view(), merged.view(), mlse.view());
    const double tol = t == DType::f32 ? 1e-5 : 2e-3;
    for (std::int64_t i = 0; i < merged.numel(); ++i) ASSERT_NEAR(merged.get(i), whole.out.get(i), tol) << i;
    for (std::int64_t i = 0; i < mlse.numel(); ++i) ASSERT_NEAR(mlse.get(i), whole.lse.get(i), 1e-4) << i;
  }
}

TEST(Dropout, SameSeedReproducesAndOffsetChangesTheMask) {
  CaseSpec s;
  s.dtype = DType::bf16;
  s.head_dim = 64;
  s.seqlen_q = s.seqlen_k = 77;
  s.dropout_p = 0.3f;
  AttentionCase a(s);
  a.run_forward();
  const auto first = a.out.to_double();
  a.out.poison();
  a.run_forward();
  EXPECT_EQ(first, a.out.to_double());
  AttentionCase b(s, a.seed());  // same inputs and seed ...
  Options o = b.options();
  o.offset += 1;                 // ... but the next offset
  forward(b.view(b.q), b.view(b.k), b.view(b.v), b.view(b.out), b.lse.view(), o);
  EXPECT_NE(first, b.out.to_double());
}

TEST(Scratch, StaysOTileAndIndependentOfSequenceLength) {
  std::size_t tile_bytes[2] = {};
  int i = 0;
  for (int n : {256, 2048}) {
    CaseSpec s;
    s.dtype = DType::f16;
    s.head_dim = 128;
    s.batch = 1;
    s.heads_q = s.heads_kv = 1;
    s.seqlen_q = s.seqlen_k = n;
    AttentionCase c(s);
    c.run_forward();
    const auto fwd = detail::last_cpu_scratch();
    EXPECT_EQ(fwd.row_stat_bytes, 0u);
    c.run_backward();
    const auto bwd = detail::last_cpu_scratch();
    EXPECT_EQ(bwd.row_stat_bytes, sizeof(float) * n);  // one float per (row, head): O(N)
    tile_bytes[i++] = std::max(fwd.per_worker_bytes, bwd.per_worker_bytes);
    // Far below one N x N score matrix per worker.
    EXPECT_LT(fwd.per_worker_bytes * fwd.workers, sizeof(float) * std::size_t(n) * n / 2 + 2u * 1024 * 1024);
  }
  EXPECT_EQ(tile_bytes[0], tile_bytes[1]);
  EXPECT_LT(tile_bytes[0], 512u * 1024);
}

}  // namespace
}  // namespace flashattn::testing
