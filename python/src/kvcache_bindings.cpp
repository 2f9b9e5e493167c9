// Bindings of the KV-cache inference API: forward_with_kvcache (tensors as views of the
// caller's memory, see tensor_convert.hpp) and the BlockManager. The Python wrappers live in
// python/flashattn/kvcache.py. Registered with the module by a static BindingRegistrar.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "flashattn/kvcache.hpp"
#include "module_registry.hpp"
#include "tensor_convert.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace flashattn::python {
namespace {

void fwd_kvcache_binding(nb::handle q, nb::handle k_cache, nb::handle v_cache, nb::handle k, nb::handle v,
                         nb::handle rotary_cos, nb::handle rotary_sin, nb::handle cache_seqlens,
                         nb::handle cache_batch_idx, nb::handle block_table, nb::handle out, nb::handle lse,
                         std::optional<double> softmax_scale, bool causal, int window_left, int window_right,
                         double softcap, bool rotary_interleaved, nb::handle alibi_slopes, int num_splits,
                         std::uintptr_t stream) {
  const TensorView qv = to_view(q, "q");
  const TensorView kc = to_view(k_cache, "k_cache", true), vc = to_view(v_cache, "v_cache", true);
  KVCacheInputs in;
  in.k_new = to_view(k, "k");
  in.v_new = to_view(v, "v");
  in.rotary_cos = to_view(rotary_cos, "rotary_cos");
  in.rotary_sin = to_view(rotary_sin, "rotary_sin");
  in.cache_seqlens = to_view(cache_seqlens, "cache_seqlens");
  in.cache_batch_idx = to_view(cache_batch_idx, "cache_batch_idx");
  in.block_table = to_view(block_table, "block_table");
  const TensorView ov = to_view(out, "out", true), lv = to_view(lse, "lse", true);
  KVCacheOptions o;
  if (softmax_scale) o.softmax_scale = static_cast<float>(*softmax_scale);
  o.causal = causal;
  o.window_left = window_left;
  o.window_right = window_right;
  o.softcap = static_cast<float>(softcap);
  o.rotary_interleaved = rotary_interleaved;
  o.alibi_slopes = to_view(alibi_slopes, "alibi_slopes");
  o.num_splits = num_splits;
  nb::gil_scoped_release release;
  forward_with_kvcache(qv, kc, vc, in, ov, lv, o, reinterpret_cast<StreamHandle>(stream));
}

nb::dict append_result(const BlockManager::Append& a) {
  nb::dict d;
  d["slots"] = a.slots;
  d["cached_tokens"] = a.cached_tokens;
  return d;
}

void bind_kvcache(nb::module_& m) {
  m.def("fwd_kvcache", &fwd_kvcache_binding, "q"_a, "k_cache"_a, "v_cache"_a, "k"_a.none(), "v"_a.none(),
        "rotary_cos"_a.none(), "rotary_sin"_a.none(), "cache_seqlens"_a, "cache_batch_idx"_a.none(),
        "block_table"_a.none(), "out"_a, "lse"_a.none(), "softmax_scale"_a.none(), "causal"_a, "window_left"_a,
        "window_right"_a, "softcap"_a, "rotary_interleaved"_a, "alibi_slopes"_a.none(), "num_splits"_a,
        "stream"_a, "Decode attention over a KV cache (flashattn::forward_with_kvcache).");
  m.def(
      "decode_num_splits",
      [](nb::handle q, int heads_kv, int max_seqlen_k) {
        return decode_num_splits_heuristic(to_view(q, "q"), heads_kv, max_seqlen_k);
      },
      "q"_a, "heads_kv"_a, "max_seqlen_k"_a);

  nb::class_<BlockManager>(m, "BlockManager")
      .def(nb::init<int, int>(), "num_blocks"_a, "block_size"_a)
      .def(
          "attach_cache",
          [](BlockManager& bm, nb::handle k, nb::handle v, std::uintptr_t stream) {
            bm.attach_cache(to_view(k, "k_cache", true), to_view(v, "v_cache", true),
                            reinterpret_cast<StreamHandle>(stream));
          },
          "k_cache"_a, "v_cache"_a, "stream"_a = 0)
      .def("allocate", [](BlockManager& bm) { return bm.allocate(); })
      .def("append", [](BlockManager& bm, std::int64_t seq, int n) { return append_result(bm.append(seq, n)); },
           "seq"_a, "n_tokens"_a)
      .def(
          "append_tokens",
          [](BlockManager& bm, std::int64_t seq, const std::vector<std::int32_t>& ids) {
            return append_result(bm.append_tokens(seq, ids));
          },
          "seq"_a, "token_ids"_a)
      .def("fork", &BlockManager::fork, "parent"_a)
      .def("free", &BlockManager::free, "seq"_a)
      .def("contains", &BlockManager::contains, "seq"_a)
      .def("num_tokens", &BlockManager::num_tokens, "seq"_a)
      .def(
          "block_table",
          [](const BlockManager& bm, std::int64_t seq) {
            auto t = bm.block_table(seq);
            return std::vector<std::int32_t>(t.begin(), t.end());
          },
          "seq"_a)
      .def(
          "batch_block_table",
          [](const BlockManager& bm, const std::vector<std::int64_t>& seqs, int max_blocks, std::int32_t pad) {
            return bm.batch_block_table(seqs, max_blocks, pad);
          },
          "seqs"_a, "max_blocks"_a, "pad"_a = 0)
      .def("ref_count", &BlockManager::ref_count, "block"_a)
      .def("blocks_needed", &BlockManager::blocks_needed, "seq"_a, "n_tokens"_a)
      .def("stats",
           [](const BlockManager& bm) {
             const auto s = bm.stats();
             nb::dict d;
             d["total"] = s.total, d["used"] = s.used, d["shared"] = s.shared, d["free"] = s.free;
             d["block_refs"] = s.block_refs;
             return d;
           })
      .def_prop_ro("num_blocks", &BlockManager::num_blocks)
      .def_prop_ro("block_size", &BlockManager::block_size);
}

const BindingRegistrar registrar("kvcache", &bind_kvcache);

}  // namespace
}  // namespace flashattn::python
