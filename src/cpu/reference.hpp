// The test oracle: naive standard attention that materialises S and P for each
// (batch, head), forward and analytic backward, with every option (causal / window,
// softcap, ALiBi, dropout through the shared Philox, GQA, varlen).
//
// Two precisions: `fp64` is the oracle itself; `input_dtype` runs the same naive
// algorithm with fp32 accumulation and S, P and the outputs rounded to the input dtype
// after each step, as standard attention in that dtype does. Engines are judged by
//   |engine - fp64| <= 2 * |input_dtype - fp64| + atol.
#pragma once

#include <vector>

#include "core/attention_params.hpp"

namespace flashattn::detail {

enum class RefPrecision { fp64, input_dtype };

// Outputs are contiguous, in the shapes of the public API: o like q ((B,Sq,Hq,D) or packed
// (T,Hq,D)), lse (B,Hq,Sq) or (Hq,T). Inputs are read through p's pointers and strides;
// p.o / p.lse / p.dq ... are ignored.
struct ReferenceForward {
  std::vector<double> o;
  std::vector<double> lse;
};
struct ReferenceBackward {
  std::vector<double> dq, dk, dv;  // shapes of q, k, v, contiguous
};

ReferenceForward reference_forward(const AttentionParams& p, RefPrecision precision);
// Uses p.dout; recomputes O and P itself.
ReferenceBackward reference_backward(const AttentionParams& p, RefPrecision precision);

// Total packed rows (varlen) or batch * seqlen, for sizing.
std::int64_t reference_rows_q(const AttentionParams& p);
std::int64_t reference_rows_k(const AttentionParams& p);

}  // namespace flashattn::detail
