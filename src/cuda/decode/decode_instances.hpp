// Launchers of the decode kernels, explicitly instantiated one head dim per translation unit
// (decode_fwd_hdim{64,128,256}.cu) so the build compiles them in parallel.
#pragma once

#include <cuda_runtime.h>

#include "inference/decode_params.hpp"

namespace flashattn::detail::decode {

template <typename T, int kD>
// splits > 1: o_part / lse_part hold the parts, split_counters (batch x CTAs per batch row)
// must be zero on entry.
void launch_attention(const DecodeParams& p, float* o_part, float* lse_part, unsigned* split_counters,
                      cudaStream_t stream);
template <typename T>
void launch_append(const DecodeParams& p, cudaStream_t stream);
// Resident CTAs per SM of the attention kernel for head dim kD (same for fp16 and bf16).
template <int kD>
int decode_occupancy();

}  // namespace flashattn::detail::decode
