// Entry points of the CPU engine (multi-threaded FlashAttention over host memory).
#pragma once

#include "core/attention_params.hpp"
#include "core/merge_params.hpp"

namespace flashattn::detail {

void cpu_forward(const AttentionParams& p);
void cpu_backward(const AttentionParams& p);
void cpu_merge_states(const MergeParams& m);

}  // namespace flashattn::detail
