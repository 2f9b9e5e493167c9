/// @file kvcache.hpp
/// Inference with a KV cache: a paged block manager (PagedAttention-style bookkeeping with
/// fork, copy-on-write and prefix sharing) and the decode call that attends 1..16 new query
/// tokens per sequence to a contiguous or paged cache, optionally appending new keys and
/// values (with rotary embedding) in the same call. Free of CUDA types.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "flashattn/error.hpp"
#include "flashattn/options.hpp"
#include "flashattn/tensor_view.hpp"

namespace flashattn {

// ------------------------------------------------------------------------ decode call

/// Optional tensors of `forward_with_kvcache`. Absent = default-constructed TensorView.
struct KVCacheInputs {
  /// New keys / values, (batch, seqlen_new, heads_kv, head_dim), q's dtype. When given they
  /// are written (k after rotary) into the cache at positions cache_seqlens[b] .. +seqlen_new
  /// before attention, and the attention sees cache_seqlens[b] + seqlen_new keys.
  TensorView k_new, v_new;
  /// Rotary tables (rotary_seqlen, rotary_dim / 2), fp32 or q's dtype; needs k_new. Applied to
  /// the new keys at positions cache_seqlens[b] + i and to q at cache_seqlens[b] + t when
  /// causal or windowed, else at cache_seqlens[b] for every query token (FlashAttention 2's rule).
  TensorView rotary_cos, rotary_sin;
  /// int32 (batch): tokens already in the cache of each sequence. Required.
  TensorView cache_seqlens;
  /// int32 (batch): which row of a contiguous cache each sequence uses (default b).
  TensorView cache_batch_idx;
  /// int32 (batch, max_blocks_per_seq): the blocks of a paged cache. When given, k_cache and
  /// v_cache are pages (num_blocks, block_size, heads_kv, head_dim), any block_size >= 1.
  TensorView block_table;
};

/// Options of `forward_with_kvcache`: the attention Options (dropout must be 0) plus these.
struct KVCacheOptions : Options {
  /// Rotary pairs (2i, 2i+1) when true (GPT-J), (i, i + rotary_dim/2) when false (GPT-NeoX).
  bool rotary_interleaved = true;
  /// Splits of the key range merged with the online-softmax merge; 0 = heuristic from the
  /// device (1 on the CPU), 1 = no split. At most 128.
  int num_splits = 0;
};

/// Decode attention over a KV cache.
///   q:        (batch, seqlen_q, heads_q, head_dim), 1 <= seqlen_q <= 16 not required but the
///             engines are tuned for it; fp16 / bf16 (fp32 on the CPU).
///   k_cache, v_cache: contiguous (batch_cache, seqlen_cache, heads_kv, head_dim) or, with
///             block_table, paged (num_blocks, block_size, heads_kv, head_dim); q's dtype.
///             Written only at the appended positions.
///   out:      like q.  lse: optional fp32 (batch, heads_q, seqlen_q), natural log.
/// Query token t of sequence b sees cache positions <= seqlen_k - seqlen_q + t when causal
/// (bottom-right alignment), seqlen_k = cache_seqlens[b] + seqlen_new.
/// All shapes, dtypes, devices and options are validated first and nothing is written on bad
/// input. For host tensors the values of cache_seqlens, cache_batch_idx and block_table are
/// checked too; for CUDA tensors they are trusted (reading them back would cost a device sync
/// on every decode step) and the kernels clamp them so that a bad value cannot touch memory
/// outside the cache.
void forward_with_kvcache(const TensorView& q, const TensorView& k_cache, const TensorView& v_cache,
                          const KVCacheInputs& inputs, const TensorView& out, const TensorView& lse,
                          const KVCacheOptions& opts = {}, StreamHandle stream = nullptr);

/// The split count the CUDA heuristic picks for this problem (1 for host tensors): exposed
/// for benchmarks and tests.
int decode_num_splits_heuristic(const TensorView& q, int heads_kv, int max_seqlen_k);

// ------------------------------------------------------------------------ block manager

/// Bookkeeping of a paged KV cache: `num_blocks` blocks of `block_size` token slots each.
/// Sequences own lists of blocks (their block tables); blocks are reference counted so that
/// forked sequences (parallel sampling, beam search) and sequences with a common prompt prefix
/// share them. A sequence that appends into a block it shares first gets a private copy
/// (copy-on-write); when caches are attached the copy of the block's K/V rows runs where the
/// cache lives (memcpy on the host, cudaMemcpyAsync on the GPU).
///
/// Slot s of the cache is block s / block_size, row s % block_size. Every call checks its
/// arguments and the free blocks it needs before changing anything: on error (flashattn::Error)
/// the state is unchanged.
class BlockManager {
 public:
  using SeqId = std::int64_t;

  struct Stats {
    int total = 0;   ///< num_blocks
    int used = 0;    ///< blocks with reference count > 0
    int shared = 0;  ///< blocks with reference count > 1
    int free = 0;    ///< blocks on the free list
    std::int64_t block_refs = 0;  ///< sum of reference counts (= blocks if nothing were shared)
  };

  /// What `append` reserved: one cache slot per new token, in order. The first
  /// `cached_tokens` slots lie in blocks found by prefix sharing: their K/V is already in the
  /// cache and must not be written again.
  struct Append {
    std::vector<std::int64_t> slots;
    int cached_tokens = 0;
  };

  BlockManager(int num_blocks, int block_size);

  /// Optional: the K and V caches (num_blocks, block_size, heads_kv, head_dim), each block
  /// contiguous, on the host or a CUDA device; copy-on-write then copies block contents.
  /// `stream` orders the device copies.
  void attach_cache(const TensorView& k_cache, const TensorView& v_cache, StreamHandle stream = nullptr);

  /// A new, empty sequence.
  SeqId allocate();
  /// Reserves `n_tokens` slots at the end of `seq` (no prefix sharing for these tokens).
  Append append(SeqId seq, int n_tokens);
  /// Reserves one slot per token id; every block these tokens fill is registered under the
  /// hash chain of the sequence's token ids so that later sequences with the same prefix
  /// share it, and full blocks already registered are reused (refcount + 1) instead of taken.
  Append append_tokens(SeqId seq, std::span<const std::int32_t> token_ids);
  /// A new sequence sharing all of `parent`'s blocks and tokens.
  SeqId fork(SeqId parent);
  /// Releases the sequence; blocks return to the free list when their count reaches 0.
  void free(SeqId seq);

  bool contains(SeqId seq) const { return seqs_.count(seq) != 0; }
  std::int64_t num_tokens(SeqId seq) const;
  /// The sequence's block table (block ids in order).
  std::span<const std::int32_t> block_table(SeqId seq) const;
  /// Rows of a (batch, max_blocks) int32 block table for `seqs`, padded with `pad`.
  std::vector<std::int32_t> batch_block_table(std::span<const SeqId> seqs, int max_blocks, std::int32_t pad = 0) const;
  int ref_count(int block) const;
  Stats stats() const;
  int num_blocks() const { return static_cast<int>(refs_.size()); }
  int block_size() const { return block_size_; }
  /// Blocks `append` of n tokens to `seq` would take from the free list (copy-on-write included).
  int blocks_needed(SeqId seq, int n_tokens) const;

 private:
  struct Sequence {
    std::vector<std::int32_t> blocks;
    std::int64_t tokens = 0;
    bool hashable = true;                      // all tokens known (append_tokens only)
    std::uint64_t chain = 0;                   // hash of all full blocks so far
    std::vector<std::int32_t> partial_tokens;  // token ids in the last, partial block
  };
  const Sequence& seq_ref(SeqId seq, const char* name) const;
  int take_block();
  void release_block(int block);
  void copy_block(int dst, int src);
  Append reserve(Sequence& s, int n, const std::int32_t* ids);

  int block_size_;
  std::vector<int> refs_;
  std::vector<std::int32_t> free_list_;
  std::unordered_map<SeqId, Sequence> seqs_;
  // Prefix sharing: chain hash -> full block, and what each registered block holds (the
  // previous chain and its token ids) so that a hash collision is never taken for a match.
  struct PrefixKey {
    bool registered = false;
    std::uint64_t hash = 0, prev = 0;
    std::vector<std::int32_t> tokens;
  };
  std::unordered_map<std::uint64_t, std::int32_t> prefix_blocks_;
  std::vector<PrefixKey> prefix_key_;  // per block
  SeqId next_id_ = 0;
  TensorView k_cache_, v_cache_;
  StreamHandle stream_ = nullptr;
};

}  // namespace flashattn
