// The public calls: validate everything, build Params, hand them to the selected engine.
#include "flashattn/attention.hpp"

#include <climits>
#include <string>

#include "api/params_builder.hpp"
#include "api/validate.hpp"
#include "dispatch/backend.hpp"

namespace flashattn {
namespace {

using namespace detail;

struct Problem {
  std::int64_t batch = 0, seqlen_q = 0, seqlen_k = 0, heads_q = 0, heads_kv = 0, head_dim = 0;
  std::int64_t total_q = 0, total_k = 0;  // packed rows (varlen)
};

void check_attention_tensor(const TensorView& t, const TensorView& q, int rank, const char* name) {
  check_defined(t, name);
  check_rank(t, rank, name);
  check_attention_dtype(t, name);
  if (t.dtype != q.dtype)
    fail(name, std::string("dtype ") + dtype_name(t.dtype) + " differs from q's " + dtype_name(q.dtype));
  check_same_device(t, q, name, "q");
  check_last_dim_contiguous(t, name);
}

// q, k, v: (B,S,H,D) when rank == 4, packed (T,H,D) when rank == 3.
Problem check_qkv(const TensorView& q, const TensorView& k, const TensorView& v, int rank) {
  check_attention_tensor(q, q, rank, "q");
  check_attention_tensor(k, q, rank, "k");
  check_attention_tensor(v, q, rank, "v");
  Problem p;
  const int h = rank - 2, d = rank - 1;
  p.head_dim = q.sizes[d];
  check_head_dim(p.head_dim, "q");
  if (k.sizes[d] != p.head_dim) fail("k", "head_dim " + std::to_string(k.sizes[d]) + " differs from q's " + std::to_string(p.head_dim));
  if (v.sizes[d] != p.head_dim) fail("v", "head_dim " + std::to_string(v.sizes[d]) + " differs from q's " + std::to_string(p.head_dim));
  p.heads_q = q.sizes[h];
  p.heads_kv = k.sizes[h];
  if (p.heads_q == 0) fail("q", "has zero heads");
  if (p.heads_kv == 0) fail("k", "has zero heads");
  if (v.sizes[h] != p.heads_kv) fail("v", "has " + std::to_string(v.sizes[h]) + " heads but k has " + std::to_string(p.heads_kv));
  if (p.heads_q % p.heads_kv != 0)
    fail("k", "heads_q (" + std::to_string(p.heads_q) + ") must be a multiple of heads_kv (" + std::to_string(p.heads_kv) + ") for GQA/MQA");
  if (v.sizes[rank - 3] != k.sizes[rank - 3])
    fail("v", "has " + std::to_string(v.sizes[rank - 3]) + " rows but k has " + std::to_string(k.sizes[rank - 3]));
  if (rank == 4) {
    p.batch = q.sizes[0];
    p.seqlen_q = q.sizes[1];
    p.seqlen_k = k.sizes[1];
    if (k.sizes[0] != p.batch) fail("k", "batch " + std::to_string(k.sizes[0]) + " differs from q's " + std::to_string(p.batch));
    if (v.sizes[0] != p.batch) fail("v", "batch " + std::to_string(v.sizes[0]) + " differs from q's " + std::to_string(p.batch));
  } else {
    p.total_q = q.sizes[0];
    p.total_k = k.sizes[0];
  }
  if (p.seqlen_q > INT_MAX || p.seqlen_k > INT_MAX || p.total_q > INT_MAX || p.total_k > INT_MAX)
    fail("q", "sequence lengths must fit in int32");
  return p;
}

void check_output(const TensorView& t, const TensorView& like, const char* name, const char* like_name) {
  check_defined(t, name);
  if (t.rank != like.rank || [&] {
        for (int d = 0; d < t.rank; ++d)
          if (t.sizes[d] != like.sizes[d]) return true;
        return false;
      }())
    fail(name, "expected the shape of " + std::string(like_name) + " " + shape_string(like) + ", got " + shape_string(t));
  if (t.dtype != like.dtype)
    fail(name, std::string("dtype ") + dtype_name(t.dtype) + " differs from " + like_name + "'s " + dtype_name(like.dtype));
  check_same_device(t, like, name, like_name);
  check_last_dim_contiguous(t, name);
}

void check_lse(const TensorView& lse, const TensorView& q, const Problem& p, bool packed, const char* name) {
  check_rank(lse, packed ? 2 : 3, name);
  check_dtype(lse, DType::f32, name);
  check_same_device(lse, q, name, "q");
  check_strides_valid(lse, name);
  if (packed) check_sizes(lse, {p.heads_q, p.total_q}, name);
  else check_sizes(lse, {p.batch, p.heads_q, p.seqlen_q}, name);
}

void set_lse(AttentionParams& prm, const TensorView& lse, bool packed) {
  prm.lse = static_cast<float*>(lse.data);
  if (packed) {
    prm.lse_batch_stride = 0;
    prm.lse_head_stride = lse.strides[0];
    prm.lse_row_stride = lse.strides[1];
  } else {
    prm.lse_batch_stride = lse.strides[0];
    prm.lse_head_stride = lse.strides[1];
    prm.lse_row_stride = lse.strides[2];
  }
}

void forward_impl(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView* cu_q,
                  const TensorView* cu_k, int max_q, int max_k, const TensorView& out, const TensorView& lse,
                  const Options& opts, StreamHandle stream) {
  const bool packed = cu_q != nullptr;
  Problem p = check_qkv(q, k, v, packed ? 3 : 4);
  check_output(out, q, "out", "q");
  check_non_overlapping(out, "out");
  if (lse.defined()) {
    check_lse(lse, q, p, packed, "lse");
    check_non_overlapping(lse, "lse");
  } else if (lse.rank != 0) {
    fail("lse", "is null but has a shape");
  }
  std::vector<int> cu_q_host, cu_k_host;
  if (packed) {
    p.batch = cu_q->sizes[0] - 1;
    if (p.batch < 0) fail("cu_seqlens_q", "must have at least one entry");
    if (cu_k->rank == 1 && cu_k->sizes[0] != cu_q->sizes[0])
      fail("cu_seqlens_k", "has " + std::to_string(cu_k->sizes[0]) + " entries but cu_seqlens_q has " + std::to_string(cu_q->sizes[0]));
    check_same_device(*cu_q, q, "cu_seqlens_q", "q");
    check_same_device(*cu_k, q, "cu_seqlens_k", "q");
    cu_q_host = check_cu_seqlens(*cu_q, "cu_seqlens_q", p.batch, p.total_q, max_q, "max_seqlen_q");
    cu_k_host = check_cu_seqlens(*cu_k, "cu_seqlens_k", p.batch, p.total_k, max_k, "max_seqlen_k");
  }
  check_options(opts, q, p.batch, p.heads_q);
  for (auto [in, name] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}}) {
    check_no_alias(out, "out", *in, name);
    check_no_alias(lse, "lse", *in, name);
  }
  check_no_alias(lse, "lse", out, "out");
  if (packed) {
    check_no_alias(out, "out", *cu_q, "cu_seqlens_q");
    check_no_alias(out, "out", *cu_k, "cu_seqlens_k");
  }
  if (opts.alibi_slopes.defined()) check_no_alias(out, "out", opts.alibi_slopes, "alibi_slopes");

  const Backend& backend = select_backend(q.device);
  AttentionParams prm = make_params(q, k, v, opts, stream);
  prm.o = out.data;
  bshd_strides(out, prm.o_batch_stride, prm.o_row_stride, prm.o_head_stride);
  if (lse.defined()) set_lse(prm, lse, packed);
  if (packed) {
    prm.batch = static_cast<int>(p.batch);
    prm.cu_seqlens_q = static_cast<const int*>(cu_q->data);
    prm.cu_seqlens_k = static_cast<const int*>(cu_k->data);
    prm.seqlen_q = max_q;
    prm.seqlen_k = max_k;
  }
  if (!backend.supports(prm))
    unsupported("q", std::string("the ") + backend.name + " engine cannot run this call; it needs " + backend.requirements);
  backend.forward(prm);
}

void backward_impl(const TensorView& dout, const TensorView& q, const TensorView& k, const TensorView& v,
                   const TensorView& out, const TensorView& lse, const TensorView* cu_q, const TensorView* cu_k,
                   int max_q, int max_k, const TensorView& dq, const TensorView& dk, const TensorView& dv,
                   const Options& opts, StreamHandle stream) {
  const bool packed = cu_q != nullptr;
  Problem p = check_qkv(q, k, v, packed ? 3 : 4);
  check_output(out, q, "out", "q");
  check_output(dout, q, "dout", "q");
  check_defined(lse, "lse");
  check_output(dq, q, "dq", "q");
  check_output(dk, k, "dk", "k");
  check_output(dv, v, "dv", "v");
  for (auto [t, name] : {std::pair{&dq, "dq"}, {&dk, "dk"}, {&dv, "dv"}}) check_non_overlapping(*t, name);
  if (packed) {
    p.batch = cu_q->sizes[0] - 1;
    if (p.batch < 0) fail("cu_seqlens_q", "must have at least one entry");
    if (cu_k->rank == 1 && cu_k->sizes[0] != cu_q->sizes[0])
      fail("cu_seqlens_k", "has " + std::to_string(cu_k->sizes[0]) + " entries but cu_seqlens_q has " + std::to_string(cu_q->sizes[0]));
    check_same_device(*cu_q, q, "cu_seqlens_q", "q");
    check_same_device(*cu_k, q, "cu_seqlens_k", "q");
    check_cu_seqlens(*cu_q, "cu_seqlens_q", p.batch, p.total_q, max_q, "max_seqlen_q");
    check_cu_seqlens(*cu_k, "cu_seqlens_k", p.batch, p.total_k, max_k, "max_seqlen_k");
  }
  check_lse(lse, q, p, packed, "lse");
  check_options(opts, q, p.batch, p.heads_q);
  const std::pair<const TensorView*, const char*> outs[] = {{&dq, "dq"}, {&dk, "dk"}, {&dv, "dv"}};
  const std::pair<const TensorView*, const char*> ins[] = {{&dout, "dout"}, {&q, "q"}, {&k, "k"}, {&v, "v"},
                                                            {&out, "out"}, {&lse, "lse"}};
  for (auto [o, oname] : outs) {
    for (auto [i, iname] : ins) check_no_alias(*o, oname, *i, iname);
    if (packed) {
      check_no_alias(*o, oname, *cu_q, "cu_seqlens_q");
      check_no_alias(*o, oname, *cu_k, "cu_seqlens_k");
    }
  }
  check_no_alias(dq, "dq", dk, "dk");
  check_no_alias(dq, "dq", dv, "dv");
  check_no_alias(dk, "dk", dv, "dv");

  const Backend& backend = select_backend(q.device);
  AttentionParams prm = make_params(q, k, v, opts, stream);
  prm.o = out.data;
  bshd_strides(out, prm.o_batch_stride, prm.o_row_stride, prm.o_head_stride);
  set_lse(prm, lse, packed);
  prm.dout = dout.data;
  bshd_strides(dout, prm.do_batch_stride, prm.do_row_stride, prm.do_head_stride);
  prm.dq = dq.data;
  bshd_strides(dq, prm.dq_batch_stride, prm.dq_row_stride, prm.dq_head_stride);
  prm.dk = dk.data;
  bshd_strides(dk, prm.dk_batch_stride, prm.dk_row_stride, prm.dk_head_stride);
  prm.dv = dv.data;
  bshd_strides(dv, prm.dv_batch_stride, prm.dv_row_stride, prm.dv_head_stride);
  if (packed) {
    prm.batch = static_cast<int>(p.batch);
    prm.cu_seqlens_q = static_cast<const int*>(cu_q->data);
    prm.cu_seqlens_k = static_cast<const int*>(cu_k->data);
    prm.seqlen_q = max_q;
    prm.seqlen_k = max_k;
  }
  if (!backend.supports(prm))
    unsupported("q", std::string("the ") + backend.name + " engine cannot run this call; it needs " + backend.requirements);
  backend.backward(prm);
}

}  // namespace

void forward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& out,
             const TensorView& lse, const Options& opts, StreamHandle stream) {
  forward_impl(q, k, v, nullptr, nullptr, 0, 0, out, lse, opts, stream);
}

void backward(const TensorView& dout, const TensorView& q, const TensorView& k, const TensorView& v,
              const TensorView& out, const TensorView& lse, const TensorView& dq, const TensorView& dk,
              const TensorView& dv, const Options& opts, StreamHandle stream) {
  backward_impl(dout, q, k, v, out, lse, nullptr, nullptr, 0, 0, dq, dk, dv, opts, stream);
}

void varlen_forward(const TensorView& q, const TensorView& k, const TensorView& v, const TensorView& cu_seqlens_q,
                    const TensorView& cu_seqlens_k, int max_seqlen_q, int max_seqlen_k, const TensorView& out,
                    const TensorView& lse, const Options& opts, StreamHandle stream) {
  check_defined(cu_seqlens_q, "cu_seqlens_q");
  check_defined(cu_seqlens_k, "cu_seqlens_k");
  check_rank(cu_seqlens_q, 1, "cu_seqlens_q");
  forward_impl(q, k, v, &cu_seqlens_q, &cu_seqlens_k, max_seqlen_q, max_seqlen_k, out, lse, opts, stream);
}

void varlen_backward(const TensorView& dout, const TensorView& q, const TensorView& k, const TensorView& v,
                     const TensorView& out, const TensorView& lse, const TensorView& cu_seqlens_q,
                     const TensorView& cu_seqlens_k, int max_seqlen_q, int max_seqlen_k, const TensorView& dq,
                     const TensorView& dk, const TensorView& dv, const Options& opts, StreamHandle stream) {
  check_defined(cu_seqlens_q, "cu_seqlens_q");
  check_defined(cu_seqlens_k, "cu_seqlens_k");
  check_rank(cu_seqlens_q, 1, "cu_seqlens_q");
  backward_impl(dout, q, k, v, out, lse, &cu_seqlens_q, &cu_seqlens_k, max_seqlen_q, max_seqlen_k, dq, dk, dv,
                opts, stream);
}

void merge_states(const TensorView& o_parts, const TensorView& lse_parts, const TensorView& out,
                  const TensorView& lse, StreamHandle stream) {
  check_defined(o_parts, "o_parts");
  check_defined(lse_parts, "lse_parts");
  check_defined(out, "out");
  if (o_parts.rank != 5 && o_parts.rank != 4)
    fail("o_parts", "expected (P, batch, seqlen, heads, head_dim) or (P, total, heads, head_dim), got " + shape_string(o_parts));
  const bool packed = o_parts.rank == 4;
  check_attention_dtype(o_parts, "o_parts");
  check_attention_dtype(out, "out");
  check_dtype(lse_parts, DType::f32, "lse_parts");
  check_same_device(lse_parts, o_parts, "lse_parts", "o_parts");
  check_same_device(out, o_parts, "out", "o_parts");
  check_last_dim_contiguous(o_parts, "o_parts");
  check_last_dim_contiguous(out, "out");
  check_strides_valid(lse_parts, "lse_parts");
  const std::int64_t P = o_parts.sizes[0];
  if (P < 1) fail("o_parts", "needs at least one partial state");
  const std::int64_t B = packed ? 1 : o_parts.sizes[1];
  const std::int64_t S = packed ? o_parts.sizes[1] : o_parts.sizes[2];
  const std::int64_t H = o_parts.sizes[o_parts.rank - 2];
  const std::int64_t D = o_parts.sizes[o_parts.rank - 1];
  if (packed) {
    check_sizes(lse_parts, {P, H, S}, "lse_parts");
    check_sizes(out, {S, H, D}, "out");
    if (lse.defined()) check_sizes(lse, {H, S}, "lse");
  } else {
    check_sizes(lse_parts, {P, B, H, S}, "lse_parts");
    check_sizes(out, {B, S, H, D}, "out");
    if (lse.defined()) check_sizes(lse, {B, H, S}, "lse");
  }
  if (lse.defined()) {
    check_dtype(lse, DType::f32, "lse");
    check_same_device(lse, o_parts, "lse", "o_parts");
    check_non_overlapping(lse, "lse");
  }
  check_non_overlapping(out, "out");
  check_no_alias(out, "out", o_parts, "o_parts");
  check_no_alias(out, "out", lse_parts, "lse_parts");
  check_no_alias(lse, "lse", o_parts, "o_parts");
  check_no_alias(lse, "lse", lse_parts, "lse_parts");
  check_no_alias(lse, "lse", out, "out");

  const Backend& backend = select_backend(o_parts.device);
  MergeParams m;
  m.o_parts = o_parts.data;
  m.lse_parts = static_cast<const float*>(lse_parts.data);
  m.out = out.data;
  m.lse = static_cast<float*>(lse.data);
  m.o_parts_dtype = o_parts.dtype;
  m.out_dtype = out.dtype;
  m.parts = static_cast<int>(P);
  m.batch = static_cast<int>(B);
  m.seqlen = static_cast<int>(S);
  m.heads = static_cast<int>(H);
  m.head_dim = static_cast<int>(D);
  const int o = packed ? 0 : 1;  // offset of the row dim after P
  m.op_part_stride = o_parts.strides[0];
  m.op_batch_stride = packed ? 0 : o_parts.strides[1];
  m.op_row_stride = o_parts.strides[1 + o];
  m.op_head_stride = o_parts.strides[2 + o];
  m.lp_part_stride = lse_parts.strides[0];
  m.lp_batch_stride = packed ? 0 : lse_parts.strides[1];
  m.lp_head_stride = lse_parts.strides[1 + o];
  m.lp_row_stride = lse_parts.strides[2 + o];
  m.out_batch_stride = packed ? 0 : out.strides[0];
  m.out_row_stride = out.strides[o];
  m.out_head_stride = out.strides[1 + o];
  if (lse.defined()) {
    m.lse_batch_stride = packed ? 0 : lse.strides[0];
    m.lse_head_stride = lse.strides[o];
    m.lse_row_stride = lse.strides[1 + o];
  }
  m.device = o_parts.device;
  m.stream = stream;
  if (backend.merge_states == nullptr) unsupported("o_parts", std::string("the ") + backend.name + " engine has no merge_states");
  backend.merge_states(m);
}

const char* backend_name(const TensorView& q) { return detail::select_backend(q.device).name; }

const char* version() { return "0.1.0"; }

namespace detail {
DeviceAllocator& current_allocator() {
  static DeviceAllocator a;
  return a;
}
}  // namespace detail

void set_device_allocator(const DeviceAllocator& allocator) { detail::current_allocator() = allocator; }

}  // namespace flashattn
