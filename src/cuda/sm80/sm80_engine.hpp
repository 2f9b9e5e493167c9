// Entry points of the sm80 engine (FlashAttention-2 design on mma.sync; Ampere, Ada,
// Hopper fallback). The forward and backward live in separate translation units.
#pragma once

#include "core/attention_params.hpp"
#include "core/merge_params.hpp"

namespace flashattn::detail {

bool sm80_supports(const AttentionParams& p);   // fp16 / bf16, head_dim % 8 == 0, <= 256
void sm80_forward(const AttentionParams& p);    // flash_fwd_*.cu
void sm80_backward(const AttentionParams& p);   // flash_bwd_*.cu
void sm80_merge_states(const MergeParams& m);   // merge_states.cu

}  // namespace flashattn::detail
