// Device copies of every tensor of an AttentionCase and the public backward on them, for the
// sm80 backward suites (test_sm80_backward.cpp, test_backward_compact_tiles.cpp).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <utility>

#include "common/attention_case.hpp"
#include "cuda/device_buffer.hpp"

namespace flashattn::testing {

// Device copies of every tensor of an AttentionCase; gradients NaN-poisoned before each call.
struct DeviceCase {
  AttentionCase& c;
  std::unique_ptr<DeviceBuffer> q, k, v, out, lse, dout, dq, dk, dv, alibi, cu_q, cu_k;

  explicit DeviceCase(AttentionCase& ac) : c(ac) {
    q = std::make_unique<DeviceBuffer>(c.q);
    k = std::make_unique<DeviceBuffer>(c.k);
    v = std::make_unique<DeviceBuffer>(c.v);
    out = std::make_unique<DeviceBuffer>(c.out);
    lse = std::make_unique<DeviceBuffer>(c.lse);
    dout = std::make_unique<DeviceBuffer>(c.dout);
    dq = std::make_unique<DeviceBuffer>(c.dq);
    dk = std::make_unique<DeviceBuffer>(c.dk);
    dv = std::make_unique<DeviceBuffer>(c.dv);
    if (c.spec().alibi) alibi = std::make_unique<DeviceBuffer>(c.alibi);
    if (c.spec().varlen()) {
      cu_q = std::make_unique<DeviceBuffer>(c.cu_q);
      cu_k = std::make_unique<DeviceBuffer>(c.cu_k);
    }
  }

  TensorView view(const HostTensor& h, const DeviceBuffer& d) const { return d.on_device(c.view(h)); }

  void poison_gradients() {
    for (auto [h, d] : {std::pair{&c.dq, dq.get()}, std::pair{&c.dk, dk.get()}, std::pair{&c.dv, dv.get()}}) {
      h->poison();
      d->upload();
    }
  }

  // The backward on the poisoned gradients (throws what the engine throws).
  void call_backward(bool deterministic) {
    Options o = c.options();
    o.deterministic = deterministic;
    if (alibi) o.alibi_slopes = view(c.alibi, *alibi);
    if (c.spec().varlen())
      varlen_backward(view(c.dout, *dout), view(c.q, *q), view(c.k, *k), view(c.v, *v), view(c.out, *out),
                      view(c.lse, *lse), view(c.cu_q, *cu_q), view(c.cu_k, *cu_k), c.max_seqlen_q(),
                      c.max_seqlen_k(), view(c.dq, *dq), view(c.dk, *dk), view(c.dv, *dv), o);
    else
      backward(view(c.dout, *dout), view(c.q, *q), view(c.k, *k), view(c.v, *v), view(c.out, *out),
               view(c.lse, *lse), view(c.dq, *dq), view(c.dk, *dk), view(c.dv, *dv), o);
  }

  void download() {
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    dq->download(c.dq);
    dk->download(c.dk);
    dv->download(c.dv);
  }

  void run_backward(bool deterministic = false) {
    poison_gradients();
    call_backward(deterministic);
    download();
  }
};

// Runs the deterministic backward `runs` times on `d`; each run's gradients must equal dq / dk /
// dv bit for bit (`what` names the runs in the messages). c's gradients hold the last run's.
inline void expect_deterministic_runs_equal(AttentionCase& c, DeviceCase& d, const HostTensor& dq,
                                            const HostTensor& dk, const HostTensor& dv, int runs, const char* what) {
  for (int rep = 1; rep <= runs; ++rep) {
    d.run_backward(true);
    EXPECT_EQ(std::memcmp(dq.data(), c.dq.data(), dq.bytes()), 0) << "dq differs on " << what << " run " << rep;
    EXPECT_EQ(std::memcmp(dk.data(), c.dk.data(), dk.bytes()), 0) << "dk differs on " << what << " run " << rep;
    EXPECT_EQ(std::memcmp(dv.data(), c.dv.data(), dv.bytes()), 0) << "dv differs on " << what << " run " << rep;
  }
}

// Runs the deterministic backward three times on `d`; the second and third gradients must
// equal the first bit for bit. c's gradients hold the last run's afterwards.
inline void expect_deterministic_repeats(AttentionCase& c, DeviceCase& d) {
  d.run_backward(true);
  const HostTensor dq1 = c.dq, dk1 = c.dk, dv1 = c.dv;
  expect_deterministic_runs_equal(c, d, dq1, dk1, dv1, 2, "a repeated");
}

}  // namespace flashattn::testing
