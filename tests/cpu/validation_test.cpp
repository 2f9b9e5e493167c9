// Bad inputs: each is rejected with flashattn::Error naming the argument, and no output
// byte changes (outputs are filled with a sentinel before the call and compared after).
#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "common/attention_case.hpp"

namespace flashattn::testing {
namespace {

struct Snapshot {
  std::vector<std::vector<std::uint8_t>> bytes;
  std::vector<const HostTensor*> tensors;
  explicit Snapshot(std::initializer_list<const HostTensor*> ts) : tensors(ts) {
    for (auto* t : tensors) {
      const auto* p = static_cast<const std::uint8_t*>(t->data());
      bytes.emplace_back(p, p + t->bytes());
    }
  }
  bool unchanged() const {
    for (std::size_t i = 0; i < tensors.size(); ++i)
      if (std::memcmp(tensors[i]->data(), bytes[i].data(), bytes[i].size()) != 0) return false;
    return true;
  }
};

// Runs `call`, expects an Error naming `arg`, and checks the case's outputs are untouched.
void expect_rejected(AttentionCase& c, const std::string& arg, const std::function<void()>& call) {
  Snapshot snap({&c.out, &c.lse, &c.dq, &c.dk, &c.dv});
  try {
    call();
    ADD_FAILURE() << "call was accepted; expected an error naming '" << arg << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), arg) << "message: " << e.what();
    EXPECT_NE(std::string(e.what()).find(arg), std::string::npos) << e.what();
  }
  EXPECT_TRUE(snap.unchanged()) << "a rejected call wrote to an output (" << arg << ")";
}

class Validation : public ::testing::Test {
 protected:
  CaseSpec spec() {
    CaseSpec s;
    s.dtype = DType::f16;
    s.head_dim = 64;
    s.batch = 2;
    s.seqlen_q = 9;
    s.seqlen_k = 11;
    s.heads_q = 4;
    s.heads_kv = 2;
    return s;
  }
};

TEST_F(Validation, ForwardRejectsBadTensors) {
  AttentionCase c(spec());
  const Options o = c.options();
  auto Q = c.view(c.q), K = c.view(c.k), V = c.view(c.v), O = c.view(c.out), L = c.lse.view();
  auto with = [&](TensorView t, auto mutate) { mutate(t); return t; };

  expect_rejected(c, "q", [&] { forward(TensorView{}, K, V, O, L, o); });
  expect_rejected(c, "k", [&] { forward(Q, TensorView{}, V, O, L, o); });
  expect_rejected(c, "v", [&] { forward(Q, K, TensorView{}, O, L, o); });
  expect_rejected(c, "out", [&] { forward(Q, K, V, TensorView{}, L, o); });
  expect_rejected(c, "q", [&] { forward(with(Q, [](TensorView& t) { t.rank = 3; }), K, V, O, L, o); });
  expect_rejected(c, "k", [&] { forward(Q, with(K, [](TensorView& t) { t.dtype = DType::bf16; }), V, O, L, o); });
  expect_rejected(c, "q", [&] { forward(with(Q, [](TensorView& t) { t.dtype = DType::i32; }), K, V, O, L, o); });
  expect_rejected(c, "q", [&] { forward(with(Q, [](TensorView& t) { t.dtype = DType::f8_e4m3; }), K, V, O, L, o); });
  expect_rejected(c, "v", [&] { forward(Q, K, with(V, [](TensorView& t) { t.device = Device::cuda(0); }), O, L, o); });
  expect_rejected(c, "q", [&] { forward(with(Q, [](TensorView& t) { t.strides[3] = 2; }), K, V, O, L, o); });
  expect_rejected(c, "k", [&] { forward(Q, with(K, [](TensorView& t) { t.strides[1] = -t.strides[1]; }), V, O, L, o); });
  expect_rejected(c, "q", [&] { forward(with(Q, [](TensorView& t) { t.sizes[3] = 60; }), K, V, O, L, o); });
  expect_rejected(c, "q", [&] { forward(with(Q, [](TensorView& t) { t.sizes[3] = 264; }), K, V, O, L, o); });
  expect_rejected(c, "k", [&] { forward(Q, with(K, [](TensorView& t) { t.sizes[3] = 32; }), V, O, L, o); });
  expect_rejected(c, "k", [&] {  // heads_q = 4 is no multiple of heads_kv = 3
    forward(Q, with(K, [](TensorView& t) { t.sizes[2] = 3; }), with(V, [](TensorView& t) { t.sizes[2] = 3; }), O, L, o);
  });
  expect_rejected(c, "v", [&] { forward(Q, K, with(V, [](TensorView& t) { t.sizes[2] = 1; }), O, L, o); });
  expect_rejected(c, "k", [&] { forward(Q, with(K, [](TensorView& t) { t.sizes[0] = 1; }), V, O, L, o); });
  expect_rejected(c, "v", [&] { forward(Q, K, with(V, [](TensorView& t) { t.sizes[1] = 10; }), O, L, o); });
  expect_rejected(c, "q", [&] { forward(with(Q, [](TensorView& t) { t.sizes[1] = -1; }), K, V, O, L, o); });
  expect_rejected(c, "out", [&] { forward(Q, K, V, with(O, [](TensorView& t) { t.sizes[1] = 8; }), L, o); });
  expect_rejected(c, "out", [&] { forward(Q, K, V, with(O, [](TensorView& t) { t.dtype = DType::f32; }), L, o); });
  expect_rejected(c, "out", [&] { forward(Q, K, V, with(O, [](TensorView& t) { t.strides[1] = 0; }), L, o); });
  expect_rejected(c, "lse", [&] { forward(Q, K, V, O, with(L, [](TensorView& t) { t.dtype = DType::f16; }), o); });
  expect_rejected(c, "lse", [&] { forward(Q, K, V, O, with(L, [](TensorView& t) { t.sizes[2] = 11; }), o); });
  // Outputs aliasing inputs.
  expect_rejected(c, "out", [&] { forward(Q, K, V, with(O, [&](TensorView& t) { t.data = Q.data; }), L, o); });
  expect_rejected(c, "lse", [&] {
    TensorView l = L;
    l.data = static_cast<char*>(O.data) + 16;
    forward(Q, K, V, O, l, o);
  });
}

TEST_F(Validation, ForwardRejectsBadOptions) {
  AttentionCase c(spec());
  auto Q = c.view(c.q), K = c.view(c.k), V = c.view(c.v), O = c.view(c.out), L = c.lse.view();
  auto run = [&](Options o) { forward(Q, K, V, O, L, o); };
  Options o;
  o = {}; o.window_left = -2; expect_rejected(c, "window_left", [&] { run(o); });
  o = {}; o.window_right = -5; expect_rejected(c, "window_right", [&] { run(o); });
  o = {}; o.causal = true; o.window_right = 3; expect_rejected(c, "window_right", [&] { run(o); });
  o = {}; o.softcap = -1.f; expect_rejected(c, "softcap", [&] { run(o); });
  o = {}; o.softcap = INFINITY; expect_rejected(c, "softcap", [&] { run(o); });
  o = {}; o.dropout_p = 1.f; expect_rejected(c, "dropout_p", [&] { run(o); });
  o = {}; o.dropout_p = -0.1f; expect_rejected(c, "dropout_p", [&] { run(o); });
  o = {}; o.dropout_p = NAN; expect_rejected(c, "dropout_p", [&] { run(o); });
  o = {}; o.softmax_scale = NAN; expect_rejected(c, "softmax_scale", [&] { run(o); });
  HostTensor slopes(DType::f32, {3});
  o = {}; o.alibi_slopes = slopes.view(); expect_rejected(c, "alibi_slopes", [&] { run(o); });
  HostTensor slopes16(DType::f16, {4});
  o = {}; o.alibi_slopes = slopes16.view(); expect_rejected(c, "alibi_slopes", [&] { run(o); });
  HostTensor slopes2d(DType::f32, {3, 4});
  o = {}; o.alibi_slopes = slopes2d.view(); expect_rejected(c, "alibi_slopes", [&] { run(o); });
}

TEST_F(Validation, VarlenRejectsBadCuSeqlens) {
  CaseSpec s = spec();
  s.varlen_q = {3, 0, 5};
  s.varlen_k = {4, 2, 0};
  s.batch = 3;
  AttentionCase c(s);
  auto Q = c.view(c.q), K = c.view(c.k), V = c.view(c.v), O = c.view(c.out), L = c.lse.view();
  auto run = [&](const HostTensor& cq, const HostTensor& ck, int mq, int mk) {
    varlen_forward(Q, K, V, cq.view(), ck.view(), mq, mk, O, L, c.options());
  };
  HostTensor bad(DType::i32, {4});
  bad.set(0, 1); bad.set(1, 3); bad.set(2, 3); bad.set(3, 8);
  expect_rejected(c, "cu_seqlens_q", [&] { run(bad, c.cu_k, 5, 4); });  // does not start at 0
  bad.set(0, 0); bad.set(1, 5); bad.set(2, 3); bad.set(3, 8);
  expect_rejected(c, "cu_seqlens_q", [&] { run(bad, c.cu_k, 5, 4); });  // decreasing
  bad.set(1, 3); bad.set(2, 3); bad.set(3, 9);
  expect_rejected(c, "cu_seqlens_q", [&] { run(bad, c.cu_k, 6, 4); });  // past the packed rows
  expect_rejected(c, "max_seqlen_q", [&] { run(c.cu_q, c.cu_k, 4, 4); });  // a sequence is longer
  expect_rejected(c, "max_seqlen_k", [&] { run(c.cu_q, c.cu_k, 5, -1); });
  HostTensor short_cu(DType::i32, {3});
  expect_rejected(c, "cu_seqlens_k", [&] { run(c.cu_q, short_cu, 5, 4); });
  HostTensor f32cu(DType::f32, {4});
  expect_rejected(c, "cu_seqlens_q", [&] { run(f32cu, c.cu_k, 5, 4); });
  expect_rejected(c, "cu_seqlens_q",
                  [&] { varlen_forward(Q, K, V, TensorView{}, c.cu_k.view(), 5, 4, O, L, c.options()); });
  // Packed tensors with the padded lse shape.
  HostTensor lse3(DType::f32, {3, 4, 5});
  expect_rejected(c, "lse", [&] { varlen_forward(Q, K, V, c.cu_q.view(), c.cu_k.view(), 5, 4, O, lse3.view(), c.options()); });
}

TEST_F(Validation, BackwardRejectsBadGradients) {
  AttentionCase c(spec());
  c.run_forward();
  auto dO = c.view(c.dout), Q = c.view(c.q), K = c.view(c.k), V = c.view(c.v), O = c.view(c.out), L = c.lse.view();
  auto dQ = c.view(c.dq), dK = c.view(c.dk), dV = c.view(c.dv);
  const Options o = c.options();
  expect_rejected(c, "dout", [&] { backward(TensorView{}, Q, K, V, O, L, dQ, dK, dV, o); });
  expect_rejected(c, "lse", [&] { backward(dO, Q, K, V, O, TensorView{}, dQ, dK, dV, o); });
  expect_rejected(c, "dk", [&] { backward(dO, Q, K, V, O, L, dQ, dQ, dV, o); });  // shape of q, not k
  expect_rejected(c, "dq", [&] { backward(dO, Q, K, V, O, L, Q, dK, dV, o); });   // aliases q
  expect_rejected(c, "dk", [&] {  // dk and dv share memory
    TensorView d = dV;
    d.data = dK.data;
    backward(dO, Q, K, V, O, L, dQ, dK, d, o);
  });
  expect_rejected(c, "dq", [&] {
    TensorView d = dQ;
    d.dtype = DType::bf16;
    backward(dO, Q, K, V, O, L, d, dK, dV, o);
  });
}

TEST_F(Validation, MergeStatesRejectsBadShapes) {
  AttentionCase c(spec());
  HostTensor parts(DType::f32, {2, 2, 9, 4, 64}), lses(DType::f32, {2, 2, 4, 9});
  HostTensor out(DType::f16, {2, 9, 4, 64}), lse(DType::f32, {2, 4, 9});
  out.poison();
  Snapshot snap({&out, &lse});
  auto expect_arg = [&](const std::string& arg, const std::function<void()>& f) {
    try {
      f();
      ADD_FAILURE() << "accepted; expected an error naming " << arg;
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), arg) << e.what();
    }
    EXPECT_TRUE(snap.unchanged());
  };
  HostTensor bad_lses(DType::f32, {2, 2, 4, 8});
  expect_arg("lse_parts", [&] { merge_states(parts.view(), bad_lses.view(), out.view(), lse.view()); });
  HostTensor bad_out(DType::f16, {2, 9, 4, 32});
  expect_arg("out", [&] { merge_states(parts.view(), lses.view(), bad_out.view(), lse.view()); });
  expect_arg("out", [&] { merge_states(parts.view(), lses.view(), parts.view(), lse.view()); });
  HostTensor zero_parts(DType::f32, {0, 2, 9, 4, 64});
  expect_arg("o_parts", [&] { merge_states(zero_parts.view(), lses.view(), out.view(), lse.view()); });
}

}  // namespace
}  // namespace flashattn::testing
