// Bindings of the attention calls. Tensors arrive as torch tensors or numpy arrays and reach
// the library as views of the caller's memory (tensor_convert.hpp); outputs are allocated by
// the Python side. The GIL is released while the library runs.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "flashattn/attention.hpp"
#include "flashattn/error.hpp"
#include "module_registry.hpp"
#include "tensor_convert.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace flashattn::python {
namespace {

Options make_options(std::optional<double> softmax_scale, bool causal, int window_left, int window_right,
                     double softcap, nb::handle alibi_slopes, double dropout_p, std::uint64_t seed,
                     std::uint64_t offset, bool deterministic) {
  Options o;
  if (softmax_scale) o.softmax_scale = static_cast<float>(*softmax_scale);
  o.causal = causal;
  o.window_left = window_left;
  o.window_right = window_right;
  o.softcap = static_cast<float>(softcap);
  o.alibi_slopes = to_view(alibi_slopes, "alibi_slopes");
  o.dropout_p = static_cast<float>(dropout_p);
  o.seed = seed;
  o.offset = offset;
  o.deterministic = deterministic;
  return o;
}

StreamHandle as_stream(std::uintptr_t s) { return reinterpret_cast<StreamHandle>(s); }

void forward_binding(nb::handle q, nb::handle k, nb::handle v, nb::handle out, nb::handle lse,
                     std::optional<double> softmax_scale, bool causal, int window_left, int window_right,
                     double softcap, nb::handle alibi_slopes, double dropout_p, std::uint64_t seed,
                     std::uint64_t offset, std::uintptr_t stream) {
  const TensorView qv = to_view(q, "q"), kv = to_view(k, "k"), vv = to_view(v, "v");
  const TensorView ov = to_view(out, "out", true), lv = to_view(lse, "lse", true);
  const Options o = make_options(softmax_scale, causal, window_left, window_right, softcap, alibi_slopes,
                                 dropout_p, seed, offset, false);
  nb::gil_scoped_release release;
  forward(qv, kv, vv, ov, lv, o, as_stream(stream));
}

// The same call on (batch, heads, seqlen, head_dim) tensors (torch SDPA's layout): the views are
// read with dimensions 1 and 2 swapped, which saves the Python side four transposes per call.
TensorView swap_heads_and_rows(TensorView t) {
  if (t.rank == 4) {
    std::swap(t.sizes[1], t.sizes[2]);
    std::swap(t.strides[1], t.strides[2]);
  }
  return t;
}

void forward_bhsd_binding(nb::handle q, nb::handle k, nb::handle v, nb::handle out, nb::handle lse,
                          std::optional<double> softmax_scale, bool causal, int window_left, int window_right,
                          double softcap, nb::handle alibi_slopes, double dropout_p, std::uint64_t seed,
                          std::uint64_t offset, std::uintptr_t stream) {
  const TensorView qv = swap_heads_and_rows(to_view(q, "q")), kv = swap_heads_and_rows(to_view(k, "k")),
                   vv = swap_heads_and_rows(to_view(v, "v"));
  const TensorView ov = swap_heads_and_rows(to_view(out, "out", true)), lv = to_view(lse, "lse", true);
  const Options o = make_options(softmax_scale, causal, window_left, window_right, softcap, alibi_slopes,
                                 dropout_p, seed, offset, false);
  nb::gil_scoped_release release;
  forward(qv, kv, vv, ov, lv, o, as_stream(stream));
}

void backward_binding(nb::handle dout, nb::handle q, nb::handle k, nb::handle v, nb::handle out, nb::handle lse,
                      nb::handle dq, nb::handle dk, nb::handle dv, std::optional<double> softmax_scale, bool causal,
                      int window_left, int window_right, double softcap, nb::handle alibi_slopes, double dropout_p,
                      std::uint64_t seed, std::uint64_t offset, bool deterministic, std::uintptr_t stream) {
  const TensorView dov = to_view(dout, "dout"), qv = to_view(q, "q"), kv = to_view(k, "k"), vv = to_view(v, "v");
  const TensorView ov = to_view(out, "out"), lv = to_view(lse, "lse");
  const TensorView dqv = to_view(dq, "dq", true), dkv = to_view(dk, "dk", true), dvv = to_view(dv, "dv", true);
  const Options o = make_options(softmax_scale, causal, window_left, window_right, softcap, alibi_slopes,
                                 dropout_p, seed, offset, deterministic);
  nb::gil_scoped_release release;
  backward(dov, qv, kv, vv, ov, lv, dqv, dkv, dvv, o, as_stream(stream));
}

void varlen_forward_binding(nb::handle q, nb::handle k, nb::handle v, nb::handle cu_seqlens_q,
                            nb::handle cu_seqlens_k, int max_seqlen_q, int max_seqlen_k, nb::handle out,
                            nb::handle lse, std::optional<double> softmax_scale, bool causal, int window_left,
                            int window_right, double softcap, nb::handle alibi_slopes, double dropout_p,
                            std::uint64_t seed, std::uint64_t offset, std::uintptr_t stream) {
  const TensorView qv = to_view(q, "q"), kv = to_view(k, "k"), vv = to_view(v, "v");
  const TensorView cq = to_view(cu_seqlens_q, "cu_seqlens_q"), ck = to_view(cu_seqlens_k, "cu_seqlens_k");
  const TensorView ov = to_view(out, "out", true), lv = to_view(lse, "lse", true);
  const Options o = make_options(softmax_scale, causal, window_left, window_right, softcap, alibi_slopes,
                                 dropout_p, seed, offset, false);
  nb::gil_scoped_release release;
  varlen_forward(qv, kv, vv, cq, ck, max_seqlen_q, max_seqlen_k, ov, lv, o, as_stream(stream));
}

void varlen_backward_binding(nb::handle dout, nb::handle q, nb::handle k, nb::handle v, nb::handle out,
                             nb::handle lse, nb::handle cu_seqlens_q, nb::handle cu_seqlens_k, int max_seqlen_q,
                             int max_seqlen_k, nb::handle dq, nb::handle dk, nb::handle dv,
                             std::optional<double> softmax_scale, bool causal, int window_left, int window_right,
                             double softcap, nb::handle alibi_slopes, double dropout_p, std::uint64_t seed,
                             std::uint64_t offset, bool deterministic, std::uintptr_t stream) {
  const TensorView dov = to_view(dout, "dout"), qv = to_view(q, "q"), kv = to_view(k, "k"), vv = to_view(v, "v");
  const TensorView ov = to_view(out, "out"), lv = to_view(lse, "lse");
  const TensorView cq = to_view(cu_seqlens_q, "cu_seqlens_q"), ck = to_view(cu_seqlens_k, "cu_seqlens_k");
  const TensorView dqv = to_view(dq, "dq", true), dkv = to_view(dk, "dk", true), dvv = to_view(dv, "dv", true);
  const Options o = make_options(softmax_scale, causal, window_left, window_right, softcap, alibi_slopes,
                                 dropout_p, seed, offset, deterministic);
  nb::gil_scoped_release release;
  varlen_backward(dov, qv, kv, vv, ov, lv, cq, ck, max_seqlen_q, max_seqlen_k, dqv, dkv, dvv, o,
                  as_stream(stream));
}

void merge_states_binding(nb::handle o_parts, nb::handle lse_parts, nb::handle out, nb::handle lse,
                          std::uintptr_t stream) {
  const TensorView op = to_view(o_parts, "o_parts"), lp = to_view(lse_parts, "lse_parts");
  const TensorView ov = to_view(out, "out", true), lv = to_view(lse, "lse", true);
  nb::gil_scoped_release release;
  merge_states(op, lp, ov, lv, as_stream(stream));
}

// What the library receives for `obj`: lets tests check that views are passed through
// without copies (same pointer, same strides).
nb::dict describe(nb::handle obj) {
  const TensorView t = to_view(obj, "obj");
  nb::dict d;
  d["data_ptr"] = reinterpret_cast<std::uintptr_t>(t.data);
  d["dtype"] = dtype_name(t.dtype);
  d["device"] = t.device.type == DeviceType::cpu ? std::string("cpu") : "cuda:" + std::to_string(t.device.index);
  nb::list sizes, strides;
  for (int i = 0; i < t.rank; ++i) {
    sizes.append(t.sizes[i]);
    strides.append(t.strides[i]);
  }
  d["sizes"] = nb::tuple(sizes);
  d["strides"] = nb::tuple(strides);
  return d;
}

void bind_attention(nb::module_& m) {
  m.def("forward", &forward_binding, "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a.none(), "softmax_scale"_a.none(),
        "causal"_a, "window_left"_a, "window_right"_a, "softcap"_a, "alibi_slopes"_a.none(), "dropout_p"_a,
        "seed"_a, "offset"_a, "stream"_a,
        "flashattn::forward on (batch, seqlen, heads, head_dim) views; writes out and lse.");
  m.def("forward_bhsd", &forward_bhsd_binding, "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a.none(),
        "softmax_scale"_a.none(), "causal"_a, "window_left"_a, "window_right"_a, "softcap"_a,
        "alibi_slopes"_a.none(), "dropout_p"_a, "seed"_a, "offset"_a, "stream"_a,
        "forward on (batch, heads, seqlen, head_dim) tensors (read as BSHD views, no copies).");
  m.def("backward", &backward_binding, "dout"_a, "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a, "dq"_a, "dk"_a, "dv"_a,
        "softmax_scale"_a.none(), "causal"_a, "window_left"_a, "window_right"_a, "softcap"_a,
        "alibi_slopes"_a.none(), "dropout_p"_a, "seed"_a, "offset"_a, "deterministic"_a, "stream"_a,
        "flashattn::backward; writes dq, dk, dv.");
  m.def("varlen_forward", &varlen_forward_binding, "q"_a, "k"_a, "v"_a, "cu_seqlens_q"_a, "cu_seqlens_k"_a,
        "max_seqlen_q"_a, "max_seqlen_k"_a, "out"_a, "lse"_a.none(), "softmax_scale"_a.none(), "causal"_a,
        "window_left"_a, "window_right"_a, "softcap"_a, "alibi_slopes"_a.none(), "dropout_p"_a, "seed"_a,
        "offset"_a, "stream"_a, "flashattn::varlen_forward on packed (total, heads, head_dim) views.");
  m.def("varlen_backward", &varlen_backward_binding, "dout"_a, "q"_a, "k"_a, "v"_a, "out"_a, "lse"_a,
        "cu_seqlens_q"_a, "cu_seqlens_k"_a, "max_seqlen_q"_a, "max_seqlen_k"_a, "dq"_a, "dk"_a, "dv"_a,
        "softmax_scale"_a.none(), "causal"_a, "window_left"_a, "window_right"_a, "softcap"_a,
        "alibi_slopes"_a.none(), "dropout_p"_a, "seed"_a, "offset"_a, "deterministic"_a, "stream"_a,
        "flashattn::varlen_backward.");
  m.def("merge_states", &merge_states_binding, "o_parts"_a, "lse_parts"_a, "out"_a, "lse"_a.none(), "stream"_a,
        "flashattn::merge_states: combine partial (O, LSE) states over disjoint key sets.");
  m.def(
      "backend_name", [](nb::handle q) { return std::string(backend_name(to_view(q, "q"))); }, "q"_a,
      "Name of the engine a call on this tensor would run on (honours FLASHATTN_BACKEND).");
  m.def("describe", &describe, "obj"_a, "The TensorView the library would receive for this tensor.");
}

const BindingRegistrar registrar("attention", &bind_attention);

}  // namespace
}  // namespace flashattn::python
