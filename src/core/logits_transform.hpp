// Feature hooks applied to a raw score q.k before the softmax: scale, softcap, ALiBi.
// The mainloops call these and know no feature themselves.
#pragma once

#include <cmath>

#include "core/host_device.hpp"

namespace flashattn::detail {

// softcap * tanh(scale * s / softcap), or scale * s when softcap is off.
template <typename T>
FA_HOST_DEVICE T apply_scale_softcap(T s, T scale, T softcap) {
  if (softcap > T(0)) return softcap * std::tanh(s * scale / softcap);
  return s * scale;
}

// d/ds of apply_scale_softcap, written in terms of its output y.
template <typename T>
FA_HOST_DEVICE T scale_softcap_grad(T y, T scale, T softcap) {
  if (softcap > T(0)) {
    const T t = y / softcap;
    return scale * (T(1) - t * t);
  }
  return scale;
}

// ALiBi bias for query row i and key j of one sequence (bottom-right aligned distance).
template <typename T>
FA_HOST_DEVICE T alibi_bias(T slope, int i, int j, int seqlen_q, int seqlen_k) {
  const int d = i + seqlen_k - seqlen_q - j;
  return -slope * static_cast<T>(d < 0 ? -d : d);
}

}  // namespace flashattn::detail
