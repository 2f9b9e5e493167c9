// One attention problem for tests: its shapes and options, fresh random inputs, the
// engine's poisoned outputs, and the oracle's answers (fp64 and naive-in-dtype baseline).
// Engines are judged with the error standard of error_standard.hpp.
#pragma once

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/error_standard.hpp"
#include "common/test_tensors.hpp"
#include "core/attention_params.hpp"
#include "cpu/reference.hpp"
#include "flashattn/flashattn.hpp"

namespace flashattn::testing {

struct CaseSpec {
  DType dtype = DType::f32;
  int head_dim = 64;
  int batch = 1;
  int seqlen_q = 17, seqlen_k = 17;
  int heads_q = 2, heads_kv = 2;
  bool causal = false;
  int window_left = -1, window_right = -1;
  float softcap = 0.f;
  bool alibi = false;
  float dropout_p = 0.f;
  // Varlen: per-sequence lengths (batch = size); seqlen_q/k then unused.
  std::vector<int> varlen_q, varlen_k;
  // Strided layouts: pad the last dim and store as (B, H, S, D) (a permuted view).
  bool bhsd_layout = false;
  std::int64_t pad = 0;

  bool varlen() const { return !varlen_q.empty(); }
  std::string name() const;
};

class AttentionCase {
 public:
  explicit AttentionCase(const CaseSpec& spec, std::uint64_t seed = fresh_seed());

  const CaseSpec& spec() const { return spec_; }
  std::uint64_t seed() const { return seed_; }
  const Options& options() const { return opts_; }

  // Host tensors (the engine's inputs and poisoned outputs) and their views.
  HostTensor q, k, v, out, lse, dout, dq, dk, dv, alibi, cu_q, cu_k;
  TensorView view(const HostTensor& t) const;  // honours bhsd_layout for 4-D tensors

  // Runs the public API on the CPU tensors.
  void run_forward();
  void run_backward();  // needs out and lse (from run_forward)

  // Params for the oracle, reading the host tensors.
  detail::AttentionParams oracle_params() const;
  detail::ReferenceForward oracle_forward(detail::RefPrecision p) const;
  detail::ReferenceBackward oracle_backward(detail::RefPrecision p) const;

  // Checks out / lse (forward) and dq / dk / dv (backward) against the oracle.
  void expect_forward_matches_oracle(double atol_scale = 1.0) const;
  void expect_backward_matches_oracle(double atol_scale = 1.0) const;

  int max_seqlen_q() const;
  int max_seqlen_k() const;

 private:
  CaseSpec spec_;
  std::uint64_t seed_;
  Options opts_;
};

}  // namespace flashattn::testing
