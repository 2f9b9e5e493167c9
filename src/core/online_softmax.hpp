// The online-softmax state of one row as a value: (o, m, l) with update, merge and
// finalize, in base 2. Split-KV combine, decode and merge_states all reuse `merge`.
// A row that has seen no key keeps m = -inf; merge and finalize guard that case so a
// fully masked row yields O = 0 and LSE = -inf, never NaN.
#pragma once

#include <cmath>

#include "core/host_device.hpp"

namespace flashattn::detail {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Row statistics in base 2: m = running max of logits*log2(e), l = sum of 2^(x - m).
struct SoftmaxStats {
  float m = -INFINITY;
  float l = 0.f;

  // Folds a new maximum in; returns the factor that rescales the old accumulator.
  FA_HOST_DEVICE float rescale_to(float new_max) {
    const float m_new = new_max > m ? new_max : m;
    const float factor = (m == -INFINITY) ? 0.f : exp2f(m - m_new);
    l *= factor;
    m = m_new;
    return factor;
  }

  // Merges another row state; returns (factor for ours, factor for theirs).
  FA_HOST_DEVICE void merge(const SoftmaxStats& other, float& self_factor, float& other_factor) {
    const float m_new = other.m > m ? other.m : m;
    self_factor = (m == -INFINITY) ? 0.f : exp2f(m - m_new);
    other_factor = (other.m == -INFINITY) ? 0.f : exp2f(other.m - m_new);
    l = l * self_factor + other.l * other_factor;
    m = m_new;
  }

  // 1 / l, or 0 for a row that saw nothing.
  FA_HOST_DEVICE float inv_sum() const { return (l > 0.f) ? 1.f / l : 0.f; }
  // Natural-log LSE.
  FA_HOST_DEVICE float lse() const { return (l > 0.f && m != -INFINITY) ? (m + log2f(l)) * kLn2 : -INFINITY; }

  // From a stored natural-log LSE (one partial state).
  FA_HOST_DEVICE static SoftmaxStats from_lse(float lse_nat) {
    SoftmaxStats s;
    if (lse_nat == -INFINITY || lse_nat != lse_nat) return s;
    s.m = lse_nat * kLog2e;
    s.l = 1.f;
    return s;
  }
};

}  // namespace flashattn::detail
