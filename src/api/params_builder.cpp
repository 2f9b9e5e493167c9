#include "api/params_builder.hpp"

#include <cmath>

#include "core/online_softmax.hpp"

namespace flashattn::detail {

void bshd_strides(const TensorView& t, std::int64_t& batch, std::int64_t& row, std::int64_t& head) {
  if (t.rank == 4) {
    batch = t.strides[0];
    row = t.strides[1];
    head = t.strides[2];
  } else {
    batch = 0;
    row = t.strides[0];
    head = t.strides[1];
  }
}

AttentionParams make_params(const TensorView& q, const TensorView& k, const TensorView& v,
                            const Options& opts, StreamHandle stream) {
  AttentionParams p;
  const bool packed = q.rank == 3;
  p.q = q.data;
  p.k = k.data;
  p.v = v.data;
  bshd_strides(q, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
  bshd_strides(k, p.k_batch_stride, p.k_row_stride, p.k_head_stride);
  bshd_strides(v, p.v_batch_stride, p.v_row_stride, p.v_head_stride);
  p.batch = packed ? 0 : static_cast<int>(q.sizes[0]);
  p.seqlen_q = packed ? 0 : static_cast<int>(q.sizes[1]);
  p.seqlen_k = packed ? 0 : static_cast<int>(k.sizes[1]);
  p.heads_q = static_cast<int>(q.sizes[q.rank - 2]);
  p.heads_kv = static_cast<int>(k.sizes[k.rank - 2]);
  p.head_dim = static_cast<int>(q.sizes[q.rank - 1]);
  p.scale = opts.softmax_scale ? *opts.softmax_scale : 1.0f / std::sqrt(static_cast<float>(p.head_dim));
  p.scale_log2 = p.scale * kLog2e;
  p.causal = opts.causal;
  p.window_left = opts.window_left;
  p.window_right = opts.causal ? 0 : opts.window_right;
  p.softcap = opts.softcap;
  if (opts.alibi_slopes.defined()) {
    p.alibi_slopes = static_cast<const float*>(opts.alibi_slopes.data);
    p.alibi_batch_stride = opts.alibi_slopes.rank == 2 ? opts.alibi_slopes.strides[0] : 0;
  }
  p.dropout_p = opts.dropout_p;
  p.seed = opts.seed;
  p.offset = opts.offset;
  p.deterministic = opts.deterministic;
  p.dtype = q.dtype;
  p.device = q.device;
  p.stream = stream;
  return p;
}

}  // namespace flashattn::detail
