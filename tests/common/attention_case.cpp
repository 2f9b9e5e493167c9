#include "common/attention_case.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>

#include "api/params_builder.hpp"
#include "cpu/element_access.hpp"

namespace flashattn::testing {

std::string CaseSpec::name() const {
  std::ostringstream s;
  s << dtype_name(dtype) << "_d" << head_dim << "_b" << batch;
  if (varlen()) {
    s << "_varlen";
    for (std::size_t i = 0; i < varlen_q.size(); ++i) s << "_" << varlen_q[i] << "x" << varlen_k[i];
  } else {
    s << "_sq" << seqlen_q << "_sk" << seqlen_k;
  }
  s << "_h" << heads_q << "x" << heads_kv;
  if (causal) s << "_causal";
  if (window_left >= 0 || window_right >= 0) s << "_win" << window_left << "_" << window_right;
  if (softcap > 0) s << "_softcap";
  if (alibi) s << "_alibi";
  if (dropout_p > 0) s << "_dropout";
  if (bhsd_layout) s << "_bhsd";
  if (pad) s << "_pad";
  return s.str();
}

namespace {
std::vector<std::int64_t> bshd_shape(bool bhsd, std::int64_t b, std::int64_t s, std::int64_t h, std::int64_t d) {
  return bhsd ? std::vector<std::int64_t>{b, h, s, d} : std::vector<std::int64_t>{b, s, h, d};
}
int total(const std::vector<int>& v) {
  int t = 0;
  for (int x : v) t += x;
  return t;
}
}  // namespace

AttentionCase::AttentionCase(const CaseSpec& spec, std::uint64_t seed) : spec_(spec), seed_(seed) {
  std::mt19937_64 rng(seed);
  const auto& s = spec_;
  const int D = s.head_dim;
  if (s.varlen()) {
    const int tq = total(s.varlen_q), tk = total(s.varlen_k);
    q = HostTensor(s.dtype, {tq, s.heads_q, D}, s.pad);
    k = HostTensor(s.dtype, {tk, s.heads_kv, D}, s.pad);
    v = HostTensor(s.dtype, {tk, s.heads_kv, D}, s.pad);
    lse = HostTensor(DType::f32, {s.heads_q, tq});
    cu_q = HostTensor(DType::i32, {static_cast<std::int64_t>(s.varlen_q.size()) + 1});
    cu_k = HostTensor(DType::i32, {static_cast<std::int64_t>(s.varlen_k.size()) + 1});
    int aq = 0, ak = 0;
    cu_q.set(0, 0);
    cu_k.set(0, 0);
    for (std::size_t b = 0; b < s.varlen_q.size(); ++b) {
      cu_q.set(b + 1, aq += s.varlen_q[b]);
      cu_k.set(b + 1, ak += s.varlen_k[b]);
    }
  } else {
    q = HostTensor(s.dtype, bshd_shape(s.bhsd_layout, s.batch, s.seqlen_q, s.heads_q, D), s.pad);
    k = HostTensor(s.dtype, bshd_shape(s.bhsd_layout, s.batch, s.seqlen_k, s.heads_kv, D), s.pad);
    v = HostTensor(s.dtype, bshd_shape(s.bhsd_layout, s.batch, s.seqlen_k, s.heads_kv, D), s.pad);
    lse = HostTensor(DType::f32, {s.batch, s.heads_q, s.seqlen_q});
  }
  out = HostTensor(s.dtype, q.shape(), s.pad);
  dout = HostTensor(s.dtype, q.shape(), s.pad);
  dq = HostTensor(s.dtype, q.shape(), s.pad);
  dk = HostTensor(s.dtype, k.shape(), s.pad);
  dv = HostTensor(s.dtype, v.shape(), s.pad);
  // Inputs of magnitude ~1 make softmax rows far from uniform at d <= 256 with scale 1/sqrt(d).
  q.fill_random(rng, -1.f, 1.f);
  k.fill_random(rng, -1.f, 1.f);
  v.fill_random(rng, -1.f, 1.f);
  dout.fill_random(rng, -1.f, 1.f);
  for (HostTensor* t : {&out, &lse, &dq, &dk, &dv}) t->poison();

  opts_.causal = s.causal;
  opts_.window_left = s.window_left;
  opts_.window_right = s.window_right;
  opts_.softcap = s.softcap;
  opts_.dropout_p = s.dropout_p;
  opts_.seed = rng();
  opts_.offset = rng() & 0xFFFF;
  if (s.alibi) {
    alibi = HostTensor(DType::f32, {s.heads_q});
    for (int h = 0; h < s.heads_q; ++h) alibi.set(h, std::exp2(-8.f * (h + 1) / s.heads_q));
    opts_.alibi_slopes = alibi.view();
  }
}

TensorView AttentionCase::view(const HostTensor& t) const {
  TensorView tv = t.view();
  if (spec_.bhsd_layout && tv.rank == 4 && (&t == &q || &t == &k || &t == &v || &t == &out || &t == &dout ||
                                            &t == &dq || &t == &dk || &t == &dv)) {
    // Storage is (B, H, S, D): expose it as a (B, S, H, D) view by swapping dims 1 and 2.
    std::swap(tv.sizes[1], tv.sizes[2]);
    std::swap(tv.strides[1], tv.strides[2]);
  }
  return tv;
}

int AttentionCase::max_seqlen_q() const {
  return spec_.varlen() ? *std::max_element(spec_.varlen_q.begin(), spec_.varlen_q.end()) : spec_.seqlen_q;
}
int AttentionCase::max_seqlen_k() const {
  return spec_.varlen() ? *std::max_element(spec_.varlen_k.begin(), spec_.varlen_k.end()) : spec_.seqlen_k;
}

void AttentionCase::run_forward() {
  if (spec_.varlen())
    varlen_forward(view(q), view(k), view(v), cu_q.view(), cu_k.view(), max_seqlen_q(), max_seqlen_k(), view(out),
                   lse.view(), opts_);
  else
    forward(view(q), view(k), view(v), view(out), lse.view(), opts_);
}

void AttentionCase::run_backward() {
  if (spec_.varlen())
    varlen_backward(view(dout), view(q), view(k), view(v), view(out), lse.view(), cu_q.view(), cu_k.view(),
                    max_seqlen_q(), max_seqlen_k(), view(dq), view(dk), view(dv), opts_);
  else
    backward(view(dout), view(q), view(k), view(v), view(out), lse.view(), view(dq), view(dk), view(dv), opts_);
}

detail::AttentionParams AttentionCase::oracle_params() const {
  detail::AttentionParams p = detail::make_params(view(q), view(k), view(v), opts_, nullptr);
  p.dout = dout.data();
  detail::bshd_strides(view(dout), p.do_batch_stride, p.do_row_stride, p.do_head_stride);
  if (spec_.varlen()) {
    p.batch = static_cast<int>(spec_.varlen_q.size());
    p.cu_seqlens_q = static_cast<const int*>(cu_q.data());
    p.cu_seqlens_k = static_cast<const int*>(cu_k.data());
    p.seqlen_q = max_seqlen_q();
    p.seqlen_k = max_seqlen_k();
  }
  return p;
}

detail::ReferenceForward AttentionCase::oracle_forward(detail::RefPrecision prec) const {
  return detail::reference_forward(oracle_params(), prec);
}
detail::ReferenceBackward AttentionCase::oracle_backward(detail::RefPrecision prec) const {
  return detail::reference_backward(oracle_params(), prec);
}

namespace {
// Engine tensor in the oracle's logical order ((B,S,H,D) even for bhsd storage).
std::vector<double> logical_bshd(const AttentionCase& c, const HostTensor& t) {
  const TensorView v = c.view(t);
  std::vector<double> out(static_cast<std::size_t>(v.numel()));
  std::int64_t idx[5] = {};
  for (std::size_t n = 0; n < out.size(); ++n) {
    std::int64_t rem = static_cast<std::int64_t>(n), off = 0;
    for (int d = v.rank - 1; d >= 0; --d) {
      idx[d] = rem % v.sizes[d];
      rem /= v.sizes[d];
      off += idx[d] * v.strides[d];
    }
    out[n] = detail::load_f32(t.data(), t.dtype(), off);
  }
  return out;
}
}  // namespace

void AttentionCase::expect_forward_matches_oracle(double atol_scale) const {
  const auto oracle = oracle_forward(detail::RefPrecision::fp64);
  const auto base = oracle_forward(detail::RefPrecision::input_dtype);
  const Verdict vo = judge(logical_bshd(*this, out), base.o, oracle.o, spec_.dtype, "out", atol_scale);
  EXPECT_TRUE(vo.ok) << spec_.name() << " seed " << seed_ << ": " << vo.message;
  // LSE is computed in fp32 by every engine; judge it with fp32's atol scaled by |S|.
  const Verdict vl = judge(lse.to_double(), base.lse, oracle.lse, DType::f32, "lse", 50.0 * atol_scale);
  EXPECT_TRUE(vl.ok) << spec_.name() << " seed " << seed_ << ": " << vl.message;
}

void AttentionCase::expect_backward_matches_oracle(double atol_scale) const {
  const auto oracle = oracle_backward(detail::RefPrecision::fp64);
  const auto base = oracle_backward(detail::RefPrecision::input_dtype);
  for (auto [t, ref, lo, name] : {std::tuple{&dq, &oracle.dq, &base.dq, "dq"}, std::tuple{&dk, &oracle.dk, &base.dk, "dk"},
                                  std::tuple{&dv, &oracle.dv, &base.dv, "dv"}}) {
    const Verdict v = judge(logical_bshd(*this, *t), *lo, *ref, spec_.dtype, name, atol_scale);
    EXPECT_TRUE(v.ok) << spec_.name() << " seed " << seed_ << ": " << v.message;
  }
}

}  // namespace flashattn::testing
