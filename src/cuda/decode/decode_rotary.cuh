// Rotary embedding of one element (FlashAttention 2's convention): pairs (2i, 2i+1) when
// interleaved, (i, i + rotary_dim/2) otherwise; elements past rotary_dim pass through.
#pragma once

#include "cuda/decode/decode_types.cuh"
#include "inference/decode_params.hpp"

namespace flashattn::detail::decode {

// Element d of the rotated row at table position pos; `row` reads element j of the input row.
template <typename T, typename Row>
__device__ __forceinline__ float rotary_element(const DecodeParams& p, int pos, int d, const Row& row) {
  const float x = row(d);
  if (d >= p.rotary_dim) return x;
  const int half = p.rotary_dim / 2;
  int i, partner;
  bool first;
  if (p.rotary_interleaved) {
    i = d >> 1;
    first = (d & 1) == 0;
    partner = first ? d + 1 : d - 1;
  } else {
    first = d < half;
    i = first ? d : d - half;
    partner = first ? d + half : d - half;
  }
  pos = pos < 0 ? 0 : (pos >= p.rotary_seqlen ? p.rotary_seqlen - 1 : pos);
  const std::int64_t t = static_cast<std::int64_t>(pos) * p.rotary_row_stride + i;
  const float c = load_table<T>(p.rotary_cos, p.rotary_dtype, t);
  const float s = load_table<T>(p.rotary_sin, p.rotary_dtype, t);
  const float y = row(partner);
  // first: x0*c - x1*s ; second: x0*s + x1*c with x0 = partner
  return first ? x * c - y * s : y * s + x * c;
}

}  // namespace flashattn::detail::decode
