// Turns validated public arguments into the AttentionParams every backend reads.
#pragma once

#include <cmath>

#include "core/attention_params.hpp"
#include "core/online_softmax.hpp"
#include "flashattn/options.hpp"
#include "flashattn/tensor_view.hpp"

namespace flashattn::detail {

// Problem sizes read off q and k (padded (B,S,H,D) or packed (T,H,D)).
AttentionParams make_params(const TensorView& q, const TensorView& k, const TensorView& v,
                            const Options& opts, StreamHandle stream);

// The options every params struct carries, resolved once for all calls (attention and
// decode): default scale 1/sqrt(d), base-2 scale, causal as window_right = 0, softcap, ALiBi.
template <typename ParamsT>
void resolve_logit_options(ParamsT& p, const Options& opts, int head_dim) {
  p.scale = opts.softmax_scale ? *opts.softmax_scale : 1.0f / std::sqrt(static_cast<float>(head_dim));
  p.scale_log2 = p.scale * kLog2e;
  p.window_left = opts.window_left;
  p.window_right = opts.causal ? 0 : opts.window_right;
  p.softcap = opts.softcap;
  if (opts.alibi_slopes.defined()) {
    p.alibi_slopes = static_cast<const float*>(opts.alibi_slopes.data);
    p.alibi_batch_stride = opts.alibi_slopes.rank == 2 ? opts.alibi_slopes.strides[0] : 0;
  }
}

// Strides of a (B,S,H,D) or packed (T,H,D) tensor as (batch, row, head).
void bshd_strides(const TensorView& t, std::int64_t& batch, std::int64_t& row, std::int64_t& head);

}  // namespace flashattn::detail
