// flashattn::forward_with_kvcache: validate every argument (shapes, dtypes, devices, options
// and, for host tensors, the index values), build DecodeParams, run the engine.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "api/params_builder.hpp"
#include "api/validate.hpp"
#include "core/online_softmax.hpp"
#include "dispatch/backend.hpp"
#include "flashattn/kvcache.hpp"
#include "inference/decode_engines.hpp"

namespace flashattn {
namespace {

using namespace detail;

std::string num(std::int64_t x) { return std::to_string(x); }

void check_like_q(const TensorView& t, const TensorView& q, int rank, const char* name) {
  check_defined(t, name);
  check_rank(t, rank, name);
  if (t.dtype != q.dtype) fail(name, std::string("dtype ") + dtype_name(t.dtype) + " differs from q's " + dtype_name(q.dtype));
  check_same_device(t, q, name, "q");
  check_last_dim_contiguous(t, name);
}

void check_index(const TensorView& t, const TensorView& q, std::initializer_list<std::int64_t> shape, const char* name) {
  check_rank(t, static_cast<int>(shape.size()), name);
  check_dtype(t, DType::i32, name);
  check_same_device(t, q, name, "q");
  check_sizes(t, shape, name);
  check_last_dim_contiguous(t, name);
}

template <typename T>
std::vector<T> host_copy(const TensorView& t) {
  // Only for host tensors: device values are trusted (see kvcache.hpp).
  std::vector<T> v;
  if (t.rank == 1) {
    v.resize(static_cast<std::size_t>(t.sizes[0]));
    for (std::int64_t i = 0; i < t.sizes[0]; ++i) v[i] = static_cast<const T*>(t.data)[i * t.strides[0]];
  }
  return v;
}

}  // namespace

void forward_with_kvcache(const TensorView& q, const TensorView& k_cache, const TensorView& v_cache,
                          const KVCacheInputs& in, const TensorView& out, const TensorView& lse,
                          const KVCacheOptions& opts, StreamHandle stream) {
  // ---------------------------------------------------------------- shapes, dtypes, devices
  check_defined(q, "q");
  check_rank(q, 4, "q");
  check_attention_dtype(q, "q");
  check_last_dim_contiguous(q, "q");
  const bool paged = in.block_table.defined();
  check_like_q(k_cache, q, 4, "k_cache");
  check_like_q(v_cache, q, 4, "v_cache");
  const std::int64_t B = q.sizes[0], Sq = q.sizes[1], Hq = q.sizes[2], D = q.sizes[3];
  check_head_dim(D, "q");
  const std::int64_t Hkv = k_cache.sizes[2];
  if (k_cache.sizes[3] != D) fail("k_cache", "head_dim " + num(k_cache.sizes[3]) + " differs from q's " + num(D));
  for (int d = 0; d < 4; ++d)
    if (v_cache.sizes[d] != k_cache.sizes[d])
      fail("v_cache", "expected the shape of k_cache " + shape_string(k_cache) + ", got " + shape_string(v_cache));
  if (Hq < 1) fail("q", "has zero heads");
  if (Hkv < 1) fail("k_cache", "has zero heads");
  if (Hq % Hkv != 0) fail("k_cache", "heads_q (" + num(Hq) + ") must be a multiple of heads_kv (" + num(Hkv) + ")");
  if (Sq > 4096) fail("q", "seqlen_q " + num(Sq) + " is too long for the decode path (at most 4096); use forward");
  if (B > INT_MAX / 2 || k_cache.sizes[0] > INT_MAX || k_cache.sizes[1] > INT_MAX)
    fail("k_cache", "sizes must fit in int32");

  check_defined(in.cache_seqlens, "cache_seqlens");
  check_index(in.cache_seqlens, q, {B}, "cache_seqlens");
  std::int64_t max_blocks = 0;
  if (paged) {
    if (in.cache_batch_idx.defined()) fail("cache_batch_idx", "cannot be combined with block_table");
    check_rank(in.block_table, 2, "block_table");
    max_blocks = in.block_table.sizes[1];
    check_index(in.block_table, q, {B, max_blocks}, "block_table");
    if (k_cache.sizes[0] < 1 || k_cache.sizes[1] < 1) fail("k_cache", "paged cache needs num_blocks >= 1 and block_size >= 1");
    if (max_blocks * k_cache.sizes[1] > INT_MAX) fail("block_table", "max_blocks * block_size must fit in int32");
  } else {
    if (in.cache_batch_idx.defined()) {
      check_index(in.cache_batch_idx, q, {B}, "cache_batch_idx");
    } else if (in.cache_batch_idx.rank != 0) {
      fail("cache_batch_idx", "is null but has a shape");
    } else if (k_cache.sizes[0] != B) {
      fail("k_cache", "batch " + num(k_cache.sizes[0]) + " differs from q's " + num(B) + " (pass cache_batch_idx to pick rows)");
    }
  }

  const bool append = in.k_new.defined() || in.v_new.defined();
  std::int64_t Snew = 0;
  if (append) {
    check_like_q(in.k_new, q, 4, "k_new");
    check_like_q(in.v_new, q, 4, "v_new");
    Snew = in.k_new.sizes[1];
    check_sizes(in.k_new, {B, Snew, Hkv, D}, "k_new");
    check_sizes(in.v_new, {B, Snew, Hkv, D}, "v_new");
  }
  const bool rotary = in.rotary_cos.defined() || in.rotary_sin.defined();
  std::int64_t rot_dim = 0, rot_len = 0;
  if (rotary) {
    if (!append) fail("rotary_cos", "rotary embedding needs the new keys k_new (it rotates them and q)");
    check_defined(in.rotary_cos, "rotary_cos");
    check_defined(in.rotary_sin, "rotary_sin");
    check_rank(in.rotary_cos, 2, "rotary_cos");
    rot_len = in.rotary_cos.sizes[0];
    rot_dim = 2 * in.rotary_cos.sizes[1];
    for (auto [t, name] : {std::pair{&in.rotary_cos, "rotary_cos"}, {&in.rotary_sin, "rotary_sin"}}) {
      if (t->dtype != DType::f32 && t->dtype != q.dtype) fail(name, "dtype must be fp32 or q's dtype");
      check_same_device(*t, q, name, "q");
      check_sizes(*t, {rot_len, rot_dim / 2}, name);
      if (t->sizes[1] > 1 && t->strides[1] != 1) fail(name, "last dimension must be contiguous");
      if (t->strides[0] < 0) fail(name, "negative stride");
    }
    if (in.rotary_sin.dtype != in.rotary_cos.dtype) fail("rotary_sin", "dtype differs from rotary_cos's");
    if (in.rotary_sin.strides[0] != in.rotary_cos.strides[0]) fail("rotary_sin", "row stride differs from rotary_cos's");
    if (rot_dim < 2 || rot_dim > D) fail("rotary_cos", "rotary_dim (2 * columns = " + num(rot_dim) + ") must be in [2, head_dim]");
  }

  check_defined(out, "out");
  check_sizes(out, {B, Sq, Hq, D}, "out");
  if (out.dtype != q.dtype) fail("out", "dtype differs from q's");
  check_same_device(out, q, "out", "q");
  check_last_dim_contiguous(out, "out");
  check_non_overlapping(out, "out");
  if (lse.defined()) {
    check_rank(lse, 3, "lse");
    check_dtype(lse, DType::f32, "lse");
    check_same_device(lse, q, "lse", "q");
    check_sizes(lse, {B, Hq, Sq}, "lse");
    check_strides_valid(lse, "lse");
    check_non_overlapping(lse, "lse");
  } else if (lse.rank != 0) {
    fail("lse", "is null but has a shape");
  }
  check_options(opts, q, B, Hq);
  if (opts.dropout_p != 0.f) fail("dropout_p", "must be 0 for decode (inference only)");
  if (opts.num_splits < 0 || opts.num_splits > 128) fail("num_splits", "must be in [0, 128], got " + num(opts.num_splits));

  const std::pair<const TensorView*, const char*> reads[] = {
      {&q, "q"}, {&in.k_new, "k_new"}, {&in.v_new, "v_new"}, {&in.rotary_cos, "rotary_cos"},
      {&in.rotary_sin, "rotary_sin"}, {&in.cache_seqlens, "cache_seqlens"}, {&in.cache_batch_idx, "cache_batch_idx"},
      {&in.block_table, "block_table"}, {&opts.alibi_slopes, "alibi_slopes"}, {&k_cache, "k_cache"}, {&v_cache, "v_cache"}};
  for (auto [t, name] : reads) {
    check_no_alias(out, "out", *t, name);
    check_no_alias(lse, "lse", *t, name);
    if (append && t != &k_cache && t != &v_cache) {
      check_no_alias(k_cache, "k_cache", *t, name);
      check_no_alias(v_cache, "v_cache", *t, name);
    }
  }
  check_no_alias(lse, "lse", out, "out");
  if (append) check_no_alias(k_cache, "k_cache", v_cache, "v_cache");

  const bool on_gpu = q.device.type == DeviceType::cuda;
  // Honour FLASHATTN_BACKEND like every call; without it the CUDA engine checks the device
  // itself (select_backend's device query costs more than a whole decode step).
  if (!on_gpu || std::getenv("FLASHATTN_BACKEND") != nullptr) select_backend(q.device);
  if (on_gpu && q.dtype == DType::f32) unsupported("q", "the CUDA decode engine needs fp16 or bf16");
  if (on_gpu && B > 65535) unsupported("q", "the CUDA decode engine runs at most 65535 sequences per call (grid y)");
  if (on_gpu) {
    // The kernel streams the cache with 16-byte cp.async copies.
    for (auto [t, name] : {std::pair{&k_cache, "k_cache"}, {&v_cache, "v_cache"}}) {
      if (reinterpret_cast<std::uintptr_t>(t->data) % 16 != 0)
        unsupported(name, "the CUDA decode engine needs a 16-byte aligned cache");
      for (int d = 0; d < 3; ++d)
        if (t->strides[d] % 8 != 0)
          unsupported(name, "the CUDA decode engine needs strides that are multiples of 8 elements (16 bytes)");
    }
  }

  // ---------------------------------------------------------------- values (host tensors)
  const std::int64_t capacity = paged ? max_blocks * k_cache.sizes[1] : k_cache.sizes[1];
  if (!on_gpu) {
    const std::vector<int> seqlens = host_copy<int>(in.cache_seqlens);
    const std::vector<int> bidx = in.cache_batch_idx.defined() ? host_copy<int>(in.cache_batch_idx) : std::vector<int>{};
    for (std::int64_t b = 0; b < B; ++b) {
      const std::int64_t s = seqlens[b];
      if (s < 0 || s + Snew > capacity)
        fail("cache_seqlens", "cache_seqlens[" + num(b) + "] = " + num(s) + (Snew ? " plus " + num(Snew) + " new tokens" : "") +
                                  " exceeds the cache's " + num(capacity) + " positions");
      if (!bidx.empty() && (bidx[b] < 0 || bidx[b] >= k_cache.sizes[0]))
        fail("cache_batch_idx", "cache_batch_idx[" + num(b) + "] = " + num(bidx[b]) + " is not a row of k_cache (" +
                                    num(k_cache.sizes[0]) + " rows)");
      if (paged) {
        const std::int64_t used = (s + Snew + k_cache.sizes[1] - 1) / k_cache.sizes[1];
        for (std::int64_t i = 0; i < used; ++i) {
          const int blk = static_cast<const int*>(in.block_table.data)[b * in.block_table.strides[0] + i * in.block_table.strides[1]];
          if (blk < 0 || blk >= k_cache.sizes[0])
            fail("block_table", "block_table[" + num(b) + ", " + num(i) + "] = " + num(blk) + " is not a block of k_cache (" +
                                    num(k_cache.sizes[0]) + " blocks)");
        }
      }
      if (rotary) {
        const std::int64_t need = s + std::max(Snew, Sq);
        if (need > rot_len)
          fail("rotary_cos", "has " + num(rot_len) + " positions but sequence " + num(b) + " needs " + num(need));
      }
    }
  }

  // ---------------------------------------------------------------- params
  DecodeParams p;
  p.q = q.data;
  p.k_cache = k_cache.data;
  p.v_cache = v_cache.data;
  p.o = out.data;
  p.lse = static_cast<float*>(lse.data);
  p.q_batch_stride = q.strides[0], p.q_row_stride = q.strides[1], p.q_head_stride = q.strides[2];
  p.o_batch_stride = out.strides[0], p.o_row_stride = out.strides[1], p.o_head_stride = out.strides[2];
  if (lse.defined()) p.lse_batch_stride = lse.strides[0], p.lse_head_stride = lse.strides[1], p.lse_row_stride = lse.strides[2];
  if (append) {
    p.k_new = in.k_new.data;
    p.v_new = in.v_new.data;
    p.kn_batch_stride = in.k_new.strides[0], p.kn_row_stride = in.k_new.strides[1], p.kn_head_stride = in.k_new.strides[2];
    p.vn_batch_stride = in.v_new.strides[0], p.vn_row_stride = in.v_new.strides[1], p.vn_head_stride = in.v_new.strides[2];
  }
  for (auto [rows, t] : {std::pair{&p.k_rows, &k_cache}, {&p.v_rows, &v_cache}}) {
    rows->block_stride = t->strides[0];
    rows->row_stride = t->strides[1];
    rows->head_stride = t->strides[2];
    rows->num_blocks = static_cast<int>(t->sizes[0]);
    rows->block_size = static_cast<int>(t->sizes[1]);
    if (paged) {
      rows->block_table = static_cast<const int*>(in.block_table.data);
      rows->block_table_stride = in.block_table.strides[0];
      rows->max_blocks = static_cast<int>(max_blocks);
    } else {
      rows->batch_idx = static_cast<const int*>(in.cache_batch_idx.data);
    }
  }
  p.cache_seqlens = static_cast<const int*>(in.cache_seqlens.data);
  if (rotary) {
    p.rotary_cos = in.rotary_cos.data;
    p.rotary_sin = in.rotary_sin.data;
    p.rotary_dtype = in.rotary_cos.dtype;
    p.rotary_row_stride = in.rotary_cos.strides[0];
    p.rotary_dim = static_cast<int>(rot_dim);
    p.rotary_seqlen = static_cast<int>(rot_len);
    p.rotary_interleaved = opts.rotary_interleaved;
    p.rotary_q_per_token = opts.causal || opts.window_left >= 0 || opts.window_right >= 0;
  }
  p.batch = static_cast<int>(B);
  p.seqlen_q = static_cast<int>(Sq);
  p.seqlen_new = static_cast<int>(Snew);
  p.heads_q = static_cast<int>(Hq);
  p.heads_kv = static_cast<int>(Hkv);
  p.head_dim = static_cast<int>(D);
  resolve_logit_options(p, opts, static_cast<int>(D));
  p.num_splits = opts.num_splits;
  if (paged) {
    const std::int64_t bs = k_cache.sizes[1];
    if ((bs & (bs - 1)) == 0) {
      p.block_shift = 0;
      while ((std::int64_t(1) << p.block_shift) < bs) ++p.block_shift;
    }
  }
  p.q_aligned16 = reinterpret_cast<std::uintptr_t>(q.data) % 16 == 0 && q.strides[0] % 8 == 0 &&
                  q.strides[1] % 8 == 0 && q.strides[2] % 8 == 0;
  p.dtype = q.dtype;
  p.device = q.device;
  p.stream = stream;
  if (B == 0 || Sq == 0) {
    if (!append) return;
  }

  if (!on_gpu) {
    cpu_decode(p);
    return;
  }
#if FLASHATTN_WITH_CUDA
  cuda_decode(p);
#else
  unsupported("q", "this build of flashattn has no CUDA support");
#endif
}

int decode_num_splits_heuristic(const TensorView& q, int heads_kv, int max_seqlen_k) {
  if (q.device.type != DeviceType::cuda || q.rank != 4) return 1;
#if FLASHATTN_WITH_CUDA
  return detail::cuda_decode_num_splits(q.device.index, static_cast<int>(q.sizes[0]), heads_kv,
                                        static_cast<int>(q.sizes[2]), static_cast<int>(q.sizes[1]), max_seqlen_k,
                                        static_cast<int>(q.sizes[3]));
#else
  return 1;
#endif
}

}  // namespace flashattn
