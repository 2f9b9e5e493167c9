// The plain struct every decode engine reads, built once by src/inference/decode.cpp after
// validation. Strides are in elements. The cache is addressed through `CacheRows` so that
// contiguous and paged caches share one code path (and give bit-identical results).
#pragma once

#include <cstdint>

#include "core/host_device.hpp"
#include "flashattn/dtype.hpp"

namespace flashattn::detail {

// Where token position `pos` of sequence b lives in a cache: a contiguous cache is a paged
// one whose "block" is the batch row (block_size = its seqlen), so one formula serves both.
struct CacheRows {
  const int* block_table = nullptr;  // null: contiguous cache
  std::int64_t block_table_stride = 0;
  const int* batch_idx = nullptr;    // contiguous only; null = identity
  int block_size = 0;                // paged block size, or seqlen_cache
  int num_blocks = 0;                // pages, or batch_cache: ids are clamped into [0, num_blocks)
  int max_blocks = 0;                // block_table columns (paged)
  std::int64_t block_stride = 0, row_stride = 0, head_stride = 0;

  // Element offset of (b, pos, head). pos must be < capacity().
  FA_HOST_DEVICE std::int64_t offset(int b, int pos, int head) const {
    int blk, row;
    if (block_table != nullptr) {
      const int i = pos / block_size;
      row = pos - i * block_size;
      blk = block_table[b * block_table_stride + i];
    } else {
      blk = batch_idx != nullptr ? batch_idx[b] : b;
      row = pos;
    }
    blk = blk < 0 ? 0 : (blk >= num_blocks ? num_blocks - 1 : blk);  // memory safety on bad ids
    return blk * block_stride + static_cast<std::int64_t>(row) * row_stride + head * head_stride;
  }
  // Positions a sequence can hold.
  FA_HOST_DEVICE int capacity() const { return block_table != nullptr ? max_blocks * block_size : block_size; }
};

struct DecodeParams {
  const void* q = nullptr;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  const void* k_new = nullptr;  // null: no append
  const void* v_new = nullptr;
  void* o = nullptr;
  float* lse = nullptr;  // may be null

  std::int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  std::int64_t kn_batch_stride = 0, kn_row_stride = 0, kn_head_stride = 0;
  std::int64_t vn_batch_stride = 0, vn_row_stride = 0, vn_head_stride = 0;
  std::int64_t o_batch_stride = 0, o_row_stride = 0, o_head_stride = 0;
  std::int64_t lse_batch_stride = 0, lse_head_stride = 0, lse_row_stride = 1;
  CacheRows k_rows, v_rows;  // same geometry, possibly different strides

  const int* cache_seqlens = nullptr;  // (batch), tokens before the append

  // Rotary (rotary_dim == 0: off). Tables (rotary_seqlen, rotary_dim / 2).
  const void* rotary_cos = nullptr;
  const void* rotary_sin = nullptr;
  DType rotary_dtype = DType::f32;
  std::int64_t rotary_row_stride = 0;
  int rotary_dim = 0;
  int rotary_seqlen = 0;
  bool rotary_interleaved = true;
  bool rotary_q_per_token = false;  // causal or windowed: q token t at cache_seqlens + t

  int batch = 0;
  int seqlen_q = 0;
  int seqlen_new = 0;
  int heads_q = 0;
  int heads_kv = 0;
  int head_dim = 0;

  float scale = 0.f;
  float scale_log2 = 0.f;
  int window_left = -1;
  int window_right = -1;  // causal: 0
  float softcap = 0.f;
  const float* alibi_slopes = nullptr;
  std::int64_t alibi_batch_stride = 0;

  int num_splits = 1;  // 0 = heuristic (resolved by the engine)
  bool q_aligned16 = false;
  int block_shift = -1;  // log2(block_size) of a paged cache when a power of two, else -1  // q rows start on 16-byte boundaries: vector loads allowed

  DType dtype = DType::f32;
  Device device = Device::cpu();
  void* stream = nullptr;

  // Keys seen by sequence b after the append, clamped to the cache's capacity.
  FA_HOST_DEVICE int seqlen_k(int b) const {
    const int cap = k_rows.capacity();
    int s = cache_seqlens[b];
    s = s < 0 ? 0 : s;
    s += seqlen_new;
    return s > cap ? cap : s;
  }
};

// Split `s` of `splits` over the keys [lo, hi) in whole tiles of `tile` keys counted from lo:
// every engine splits the same way, so split and unsplit runs differ only by the merge.
FA_HOST_DEVICE void decode_split_range(int lo, int hi, int tile, int splits, int s, int& a, int& b) {
  const int tiles = hi > lo ? (hi - lo + tile - 1) / tile : 0;
  const int per = (tiles + splits - 1) / splits;
  a = lo + s * per * tile;
  b = a + per * tile;
  b = b < hi ? b : hi;
  a = a < b ? a : b;
}

// Position of query token t of sequence b in the rotary tables.
FA_HOST_DEVICE int rotary_q_position(const DecodeParams& p, int b, int t) {
  const int base = p.cache_seqlens[b] < 0 ? 0 : p.cache_seqlens[b];
  return p.rotary_q_per_token ? base + t : base;
}

}  // namespace flashattn::detail
