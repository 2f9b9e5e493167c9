// Turns validated public arguments into the AttentionParams every backend reads.
#pragma once

#include "core/attention_params.hpp"
#include "flashattn/options.hpp"
#include "flashattn/tensor_view.hpp"

namespace flashattn::detail {

// Problem sizes read off q and k (padded (B,S,H,D) or packed (T,H,D)).
AttentionParams make_params(const TensorView& q, const TensorView& k, const TensorView& v,
                            const Options& opts, StreamHandle stream);

// Strides of a (B,S,H,D) or packed (T,H,D) tensor as (batch, row, head).
void bshd_strides(const TensorView& t, std::int64_t& batch, std::int64_t& row, std::int64_t& head);

}  // namespace flashattn::detail
