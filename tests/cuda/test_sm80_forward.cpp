// The sm80 forward engine on the GPU: against the fp64 oracle (error standard) over dtype x
// head dim x seqlens x options, varlen with empty sequences, strided layouts, fully masked
// rows; against the CPU engine at sizes the oracle cannot afford (long sequences, grids past
// 65535 blocks per dimension); merge_states of split halves against one pass. Every run
// draws fresh inputs and poisons the outputs on the device first. CUDA tensors go to the
// CUDA engine (sm80 on any sm_80+ GPU), CPU tensors to the CPU engine.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>

#include "common/attention_case.hpp"
#include "common/attention_variants.hpp"
#include "cuda/device_buffer.hpp"

namespace flashattn::testing {
namespace {

// Device mirrors of a case's tensors; runs the public forward on them and reads back.
struct GpuForward {
  explicit GpuForward(AttentionCase& c) : c_(c) {}

  TensorView dev_view(const HostTensor& h, const DeviceBuffer& d) const { return d.on_device(c_.view(h)); }

  void run() {
    // Outputs are poisoned on the host (NaN) and uploaded: every element must be written.
    c_.out.poison();
    c_.lse.poison();
    DeviceBuffer q(c_.q), k(c_.k), v(c_.v), out(c_.out), lse(c_.lse);
    Options opts = c_.options();
    std::unique_ptr<DeviceBuffer> alibi;
    if (c_.spec().alibi) {
      alibi = std::make_unique<DeviceBuffer>(c_.alibi);
      opts.alibi_slopes = dev_view(c_.alibi, *alibi);
    }
    TensorView lse_view = dev_view(c_.lse, lse);
    if (c_.spec().varlen()) {
      DeviceBuffer cq(c_.cu_q), ck(c_.cu_k);
      ASSERT_STREQ(backend_name(dev_view(c_.q, q)), "sm80");
      varlen_forward(dev_view(c_.q, q), dev_view(c_.k, k), dev_view(c_.v, v), dev_view(c_.cu_q, cq),
                     dev_view(c_.cu_k, ck), c_.max_seqlen_q(), c_.max_seqlen_k(), dev_view(c_.out, out), lse_view,
                     opts);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    } else {
      ASSERT_STREQ(backend_name(dev_view(c_.q, q)), "sm80");
      forward(dev_view(c_.q, q), dev_view(c_.k, k), dev_view(c_.v, v), dev_view(c_.out, out), lse_view, opts);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    }
    out.download(c_.out);
    lse.download(c_.lse);
  }

  AttentionCase& c_;
};


void check_against_oracle(const CaseSpec& s) {
  AttentionCase c(s);
  GpuForward g(c);
  g.run();
  if (::testing::Test::HasFatalFailure()) return;
  c.expect_forward_matches_oracle();
}


class Sm80ForwardMatrix : public ::testing::TestWithParam<MatrixParam> {};

TEST_P(Sm80ForwardMatrix, MatchesOracle) {
  FLASHATTN_REQUIRE_GPU();
  auto [t, d, seq, v] = GetParam();
  check_against_oracle(make_spec(t, d, seq.first, seq.second, v));
}

const auto kDtypes = ::testing::Values(DType::f16, DType::bf16);
const auto kVariants = ::testing::ValuesIn(kAllVariants);

// Every head dim (instantiated ones and padded ones: 80 runs on the d = 96 kernel).
INSTANTIATE_TEST_SUITE_P(Short, Sm80ForwardMatrix,
                         ::testing::Combine(kDtypes, ::testing::Values(32, 64, 80, 96, 128, 192, 256),
                                            ::testing::Values(std::pair{1, 1}, std::pair{17, 17}, std::pair{128, 128},
                                                              std::pair{17, 300}, std::pair{300, 17}),
                                            kVariants),
                         matrix_param_name);

// seqlen 1000: several q tiles, partial last tiles, masks crossing tiles.
INSTANTIATE_TEST_SUITE_P(Long, Sm80ForwardMatrix,
                         ::testing::Combine(kDtypes, ::testing::Values(64, 128),
                                            ::testing::Values(std::pair{1000, 1000}, std::pair{1000, 333}),
                                            ::testing::Values(Variant::plain, Variant::causal, Variant::window,
                                                              Variant::combo)),
                         matrix_param_name);

// Head dims padded inside the kernel, down to the smallest.
INSTANTIATE_TEST_SUITE_P(OddHeadDims, Sm80ForwardMatrix,
                         ::testing::Combine(kDtypes, ::testing::Values(8, 40, 72, 136, 248),
                                            ::testing::Values(std::pair{65, 33}, std::pair{200, 260}),
                                            ::testing::Values(Variant::causal, Variant::combo)),
                         matrix_param_name);

std::string varlen_name(const ::testing::TestParamInfo<std::tuple<DType, int, Variant>>& info) {
  return std::string(dtype_name(std::get<0>(info.param))) + "_d" + std::to_string(std::get<1>(info.param)) + "_" +
         variant_name(std::get<2>(info.param));
}

class Sm80VarlenForward : public ::testing::TestWithParam<std::tuple<DType, int, Variant>> {};

// Empty sequences on either side, sequences shorter and longer than a tile.
TEST_P(Sm80VarlenForward, MatchesOracle) {
  FLASHATTN_REQUIRE_GPU();
  auto [t, d, v] = GetParam();
  CaseSpec s = make_varlen_spec(t, d, v, {0, 5, 17, 64, 0, 130, 1, 257}, {3, 0, 20, 64, 1, 100, 70, 190});
  check_against_oracle(s);
}

INSTANTIATE_TEST_SUITE_P(Varlen, Sm80VarlenForward, ::testing::Combine(kDtypes, ::testing::Values(64, 96, 128), kVariants),
                         varlen_name);

// (B, H, S, D) storage seen as BSHD and padded rows: arbitrary strides, no copies.
TEST(Sm80ForwardLayouts, BhsdAndPaddedViewsMatchOracle) {
  FLASHATTN_REQUIRE_GPU();
  for (bool bhsd : {false, true})
    for (std::int64_t pad : {0, 8, 24}) {
      CaseSpec s = make_spec(DType::bf16, 64, 70, 190, Variant::causal);
      s.heads_q = 4;
      s.heads_kv = 2;
      s.bhsd_layout = bhsd;
      s.pad = pad;
      check_against_oracle(s);
    }
}

// Rows that see no key (causal with seqlen_q > seqlen_k, a zero-width window) give O = 0 and
// LSE = -inf, never NaN; the oracle says -inf and judge() demands it exactly.
TEST(Sm80ForwardMasks, FullyMaskedRowsAreZeroWithMinusInfLse) {
  FLASHATTN_REQUIRE_GPU();
  for (DType t : {DType::f16, DType::bf16}) {
    CaseSpec s = make_spec(t, 64, 300, 40, Variant::causal);
    AttentionCase c(s);
    GpuForward g(c);
    g.run();
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    c.expect_forward_matches_oracle();
    // Row 0 of batch 0, head 0 sees nothing (its diagonal is key 0 + 40 - 300 < 0).
    EXPECT_TRUE(std::isinf(c.lse.get(0)) && c.lse.get(0) < 0);
    for (int d = 0; d < 64; ++d) EXPECT_EQ(c.out.get(d), 0.f);

    CaseSpec w = make_spec(t, 128, 150, 90, Variant::plain);
    w.window_left = 0;
    w.window_right = 0;  // each row sees exactly its diagonal key, if it exists
    check_against_oracle(w);
  }
}

// Sizes the fp64 oracle cannot afford: the GPU against the CPU engine on the same inputs.
// Dropout makes this a bit-for-bit check of the Philox decisions (a flipped decision moves
// an output by ~ P * |V| / (1 - p), far above the tolerance).
void expect_close_to_cpu(const CaseSpec& s, double tol_o, double tol_lse) {
  AttentionCase c(s);
  c.run_forward();  // CPU tensors: CPU engine
  HostTensor cpu_out = c.out, cpu_lse = c.lse;
  GpuForward g(c);
  g.run();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  const auto a = c.out.to_double(), b = cpu_out.to_double();
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    ASSERT_FALSE(std::isnan(a[i])) << s.name() << " NaN at " << i;
    const double e = std::abs(a[i] - b[i]);
    if (e > worst) worst = e, at = i;
  }
  EXPECT_LE(worst, tol_o) << s.name() << " seed " << c.seed() << ": out differs at " << at << " (gpu " << a[at]
                          << ", cpu " << b[at] << ")";
  const auto la = c.lse.to_double(), lb = cpu_lse.to_double();
  for (std::size_t i = 0; i < la.size(); ++i) {
    if (std::isinf(lb[i])) {
      ASSERT_EQ(la[i], lb[i]) << s.name() << " lse " << i;
      continue;
    }
    ASSERT_NEAR(la[i], lb[i], tol_lse * (1 + std::abs(lb[i]))) << s.name() << " lse " << i;
  }
}

TEST(Sm80ForwardLarge, LongSequencesMatchCpuEngine) {
  FLASHATTN_REQUIRE_GPU();
  for (bool causal : {false, true}) {
    CaseSpec s = make_spec(DType::bf16, 128, 4099, 4099, causal ? Variant::causal : Variant::plain);
    s.batch = 1;
    s.heads_q = 4;
    s.heads_kv = 2;
    expect_close_to_cpu(s, 8e-3, 1e-5);
  }
  CaseSpec d = make_spec(DType::f16, 64, 2500, 3001, Variant::dropout);
  d.batch = 1;
  d.dropout_p = 0.5f;
  expect_close_to_cpu(d, 2e-3, 1e-5);
}

// Grids past the 65535 limit of gridDim.y / z: batch x heads = 70000 blocks of one tile,
// and one sequence of 2^18 + 5 rows (4097 q tiles) under a sliding window.
TEST(Sm80ForwardLarge, HugeGridsMatchCpuEngine) {
  FLASHATTN_REQUIRE_GPU();
  CaseSpec a = make_spec(DType::bf16, 32, 3, 5, Variant::plain);
  a.batch = 35000;
  a.heads_q = 2;
  a.heads_kv = 1;
  expect_close_to_cpu(a, 8e-3, 1e-5);
  CaseSpec b = make_spec(DType::f16, 32, 262149, 262149, Variant::plain);
  b.batch = 1;
  b.heads_q = 1;
  b.heads_kv = 1;
  b.window_left = 100;
  b.window_right = 7;
  expect_close_to_cpu(b, 2e-3, 1e-5);
}

// merge_states of the two halves of the keys equals one pass over all keys.
TEST(Sm80MergeStates, SplitHalvesEqualSinglePass) {
  FLASHATTN_REQUIRE_GPU();
  for (DType t : {DType::f16, DType::bf16}) {
    const int B = 2, S = 77, Sk = 300, H = 3, D = 96, half = 131;
    CaseSpec s = make_spec(t, D, S, Sk, Variant::plain);
    s.batch = B;
    s.heads_q = H;
    s.heads_kv = H;
    AttentionCase c(s);
    GpuForward g(c);
    g.run();
    ASSERT_FALSE(HasFatalFailure());

    DeviceBuffer q(c.q), k(c.k), v(c.v);
    HostTensor parts(t, {2, B, S, H, D}), lse_parts(DType::f32, {2, B, H, S});
    HostTensor merged(t, {B, S, H, D}), merged_lse(DType::f32, {B, H, S});
    for (HostTensor* x : {&parts, &lse_parts, &merged, &merged_lse}) x->poison();
    DeviceBuffer dparts(parts), dlse_parts(lse_parts), dmerged(merged), dmerged_lse(merged_lse);
    const std::size_t esz = dtype_size(t);
    for (int part = 0; part < 2; ++part) {
      const int k0 = part == 0 ? 0 : half, kn = part == 0 ? half : Sk - half;
      TensorView kv = c.view(c.k), vv = c.view(c.v);
      kv.data = static_cast<char*>(k.data()) + k0 * kv.strides[1] * esz;
      vv.data = static_cast<char*>(v.data()) + k0 * vv.strides[1] * esz;
      kv.device = vv.device = Device::cuda(0);
      kv.sizes[1] = vv.sizes[1] = kn;
      TensorView qv = c.view(c.q);
      qv.data = q.data();
      qv.device = Device::cuda(0);
      TensorView ov(static_cast<char*>(dparts.data()) + part * std::size_t(B) * S * H * D * esz, t, {B, S, H, D},
                    Device::cuda(0));
      TensorView lv(static_cast<float*>(dlse_parts.data()) + part * B * H * S, DType::f32, {B, H, S}, Device::cuda(0));
      forward(qv, kv, vv, ov, lv, c.options());
    }
    TensorView pv(dparts.data(), t, {2, B, S, H, D}, Device::cuda(0));
    TensorView plv(dlse_parts.data(), DType::f32, {2, B, H, S}, Device::cuda(0));
    merge_states(pv, plv, TensorView(dmerged.data(), t, {B, S, H, D}, Device::cuda(0)),
                 TensorView(dmerged_lse.data(), DType::f32, {B, H, S}, Device::cuda(0)));
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    dmerged.download(merged);
    dmerged_lse.download(merged_lse);
    const auto m = merged.to_double(), one = c.out.to_double();
    const double tol = t == DType::bf16 ? 1.6e-2 : 2e-3;
    for (std::size_t i = 0; i < m.size(); ++i) ASSERT_NEAR(m[i], one[i], tol) << dtype_name(t) << " out " << i;
    const auto ml = merged_lse.to_double(), ol = c.lse.to_double();
    for (std::size_t i = 0; i < ml.size(); ++i) ASSERT_NEAR(ml[i], ol[i], 1e-4 * (1 + std::abs(ol[i]))) << "lse " << i;

    // A part that saw nothing (LSE = -inf) weighs 0 and its O is never read: with part 1 of
    // row (b 1, i 5, h 2) set to LSE -inf and O NaN, that row merges to exactly part 0.
    dparts.download(parts);
    dlse_parts.download(lse_parts);
    const std::int64_t row = (std::int64_t(1) * S + 5) * H + 2;  // (b, i, h) in (B, S, H)
    lse_parts.set(std::int64_t(B) * H * S + (std::int64_t(1) * H + 2) * S + 5, -INFINITY);
    for (int d = 0; d < D; ++d) parts.set(std::int64_t(B) * S * H * D + row * D + d, NAN);
    for (HostTensor* x : {&merged, &merged_lse}) x->poison();
    dparts.upload();
    dlse_parts.upload();
    dmerged.upload();
    dmerged_lse.upload();
    merge_states(pv, plv, TensorView(dmerged.data(), t, {B, S, H, D}, Device::cuda(0)),
                 TensorView(dmerged_lse.data(), DType::f32, {B, H, S}, Device::cuda(0)));
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    dmerged.download(merged);
    dmerged_lse.download(merged_lse);
    for (int d = 0; d < D; ++d) ASSERT_EQ(merged.get(row * D + d), parts.get(row * D + d)) << "d " << d;
    const float l0 = lse_parts.get((std::int64_t(1) * H + 2) * S + 5);
    ASSERT_NEAR(merged_lse.get((std::int64_t(1) * H + 2) * S + 5), l0, 1e-5 * (1 + std::abs(l0)));
    ASSERT_FALSE(std::isnan(merged.get(0)));
  }
}

}  // namespace
}  // namespace flashattn::testing
