#include "api/params_builder.hpp"

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
  resolve_logit_options(p, opts, p.head_dim);
  p.causal = opts.causal;
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
