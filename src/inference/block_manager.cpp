// Block manager of the paged KV cache: free list, reference counts, fork, copy-on-write,
// prefix sharing by a hash chain over the token ids of full blocks.
//
// Every mutating call runs in two phases: plan (count the free blocks it needs, validate)
// and commit. Only the plan may throw, so a failed call leaves the state unchanged.
#include <cstring>
#include <string>

#include "api/validate.hpp"
#include "flashattn/kvcache.hpp"
#include "inference/decode_engines.hpp"

namespace flashattn {
namespace {

std::uint64_t mix(std::uint64_t h, std::uint64_t x) {
  // splitmix64 finaliser over an FNV-style fold: cheap and well spread.
  h ^= x + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 27;
  h *= 0x94D049BB133111EBull;
  h ^= h >> 31;
  return h;
}

std::uint64_t chain_hash(std::uint64_t prev, const std::int32_t* tokens, int n) {
  std::uint64_t h = mix(prev, 0x5EEDull + static_cast<std::uint64_t>(n));
  for (int i = 0; i < n; ++i) h = mix(h, static_cast<std::uint32_t>(tokens[i]));
  return h == 0 ? 1 : h;  // 0 means "no hash"
}

}  // namespace

BlockManager::BlockManager(int num_blocks, int block_size) : block_size_(block_size) {
  if (num_blocks < 1) detail::fail("num_blocks", "must be >= 1, got " + std::to_string(num_blocks));
  if (block_size < 1) detail::fail("block_size", "must be >= 1, got " + std::to_string(block_size));
  refs_.assign(static_cast<std::size_t>(num_blocks), 0);
  prefix_key_.resize(static_cast<std::size_t>(num_blocks));
  free_list_.reserve(static_cast<std::size_t>(num_blocks));
  // Low ids are handed out first (the free list is a stack).
  for (int b = num_blocks - 1; b >= 0; --b) free_list_.push_back(b);
}

void BlockManager::attach_cache(const TensorView& k_cache, const TensorView& v_cache, StreamHandle stream) {
  for (auto [t, name] : {std::pair{&k_cache, "k_cache"}, {&v_cache, "v_cache"}}) {
    detail::check_defined(*t, name);
    detail::check_rank(*t, 4, name);
    if (t->sizes[0] != num_blocks() || t->sizes[1] != block_size_)
      detail::fail(name, "expected (num_blocks=" + std::to_string(num_blocks()) + ", block_size=" +
                             std::to_string(block_size_) + ", heads_kv, head_dim), got " + detail::shape_string(*t));
    // Rows of one block must be one contiguous run so that a block copies with one memcpy.
    if (t->strides[3] != 1 || t->strides[2] != t->sizes[3] || t->strides[1] != t->sizes[2] * t->sizes[3])
      detail::fail(name, "each block must be contiguous (strides (*, heads*head_dim, head_dim, 1))");
#if !FLASHATTN_WITH_CUDA
    if (t->device.type != DeviceType::cpu) detail::unsupported(name, "this build of flashattn has no CUDA support");
#endif
  }
  detail::check_same_device(v_cache, k_cache, "v_cache", "k_cache");
  if (v_cache.dtype != k_cache.dtype) detail::fail("v_cache", "dtype differs from k_cache's");
  k_cache_ = k_cache;
  v_cache_ = v_cache;
  stream_ = stream;
}

const BlockManager::Sequence& BlockManager::seq_ref(SeqId seq, const char* name) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) detail::fail(name, "no live sequence with id " + std::to_string(seq));
  return it->second;
}

BlockManager::SeqId BlockManager::allocate() {
  const SeqId id = next_id_++;
  seqs_.emplace(id, Sequence{});
  return id;
}

int BlockManager::take_block() {
  const int b = free_list_.back();
  free_list_.pop_back();
  refs_[static_cast<std::size_t>(b)] = 1;
  return b;
}

void BlockManager::release_block(int block) {
  int& r = refs_[static_cast<std::size_t>(block)];
  if (--r > 0) return;
  PrefixKey& key = prefix_key_[static_cast<std::size_t>(block)];
  if (key.registered) {
    auto it = prefix_blocks_.find(key.hash);
    if (it != prefix_blocks_.end() && it->second == block) prefix_blocks_.erase(it);
    key = PrefixKey{};
  }
  free_list_.push_back(block);
}

void BlockManager::copy_block(int dst, int src) {
  if (!k_cache_.defined()) return;
  for (const TensorView* t : {&k_cache_, &v_cache_}) {
    const std::size_t row_bytes = static_cast<std::size_t>(t->sizes[2] * t->sizes[3]) * dtype_size(t->dtype);
    const std::size_t bytes = row_bytes * static_cast<std::size_t>(block_size_);
    const std::size_t stride = static_cast<std::size_t>(t->strides[0]) * dtype_size(t->dtype);
    auto* base = static_cast<std::uint8_t*>(t->data);
    if (t->device.type == DeviceType::cpu) {
      std::memcpy(base + dst * stride, base + src * stride, bytes);
    } else {
#if FLASHATTN_WITH_CUDA
      detail::cuda_copy_async(base + dst * stride, base + src * stride, bytes, t->device.index, stream_);
#endif
    }
  }
}

int BlockManager::blocks_needed(SeqId seq, int n_tokens) const {
  const Sequence& s = seq_ref(seq, "seq");
  if (n_tokens <= 0) return 0;
  const int in_last = static_cast<int>(s.tokens % block_size_);
  int need = 0, left = n_tokens;
  if (in_last != 0) {
    if (refs_[static_cast<std::size_t>(s.blocks.back())] > 1) need = 1;  // copy-on-write
    left -= std::min(left, block_size_ - in_last);
  }
  return need + (left + block_size_ - 1) / block_size_;
}

BlockManager::Append BlockManager::reserve(Sequence& s, int n, const std::int32_t* ids) {
  const int bs = block_size_;
  // ---- plan: count blocks taken from the free list; nothing changes here.
  const int in_last = static_cast<int>(s.tokens % bs);
  int need = 0;
  int pos = 0;  // tokens of this append placed so far
  if (in_last != 0) {
    if (refs_[static_cast<std::size_t>(s.blocks.back())] > 1) ++need;
    pos = std::min(n, bs - in_last);
  }
  // Prefix sharing: only whole blocks at the start of the append can come from the cache.
  std::vector<std::int32_t> reuse;
  std::uint64_t chain = s.chain;
  const bool try_share = ids != nullptr && s.hashable && in_last == 0;
  while (try_share && n - pos >= bs) {
    const std::uint64_t h = chain_hash(chain, ids + pos, bs);
    auto it = prefix_blocks_.find(h);
    if (it == prefix_blocks_.end()) break;
    const PrefixKey& key = prefix_key_[static_cast<std::size_t>(it->second)];
    if (key.prev != chain || !std::equal(key.tokens.begin(), key.tokens.end(), ids + pos)) break;
    reuse.push_back(it->second);
    chain = h;
    pos += bs;
  }
  need += (n - pos + bs - 1) / bs;
  if (need > static_cast<int>(free_list_.size()))
    throw Error(Error::Kind::runtime, "n_tokens",
                "out of KV-cache blocks: appending " + std::to_string(n) + " tokens needs " + std::to_string(need) +
                    " free blocks, " + std::to_string(free_list_.size()) + " are free");

  // ---- commit.
  Append out;
  out.slots.reserve(static_cast<std::size_t>(n));
  if (in_last != 0) {
    int& last = s.blocks.back();
    if (refs_[static_cast<std::size_t>(last)] > 1) {
      const int fresh = take_block();
      copy_block(fresh, last);
      --refs_[static_cast<std::size_t>(last)];  // still > 0: others hold it
      last = fresh;
    }
  }
  for (int b : reuse) {  // whole shared blocks: their K/V is already written
    ++refs_[static_cast<std::size_t>(b)];
    s.blocks.push_back(b);
    for (int r = 0; r < bs; ++r) out.slots.push_back(static_cast<std::int64_t>(b) * bs + r);
  }
  out.cached_tokens = static_cast<int>(reuse.size()) * bs;
  s.chain = chain;
  s.tokens += out.cached_tokens;
  for (int i = out.cached_tokens; i < n; ++i) {
    const int row = static_cast<int>(s.tokens % bs);
    if (row == 0) s.blocks.push_back(take_block());
    const int blk = s.blocks.back();
    out.slots.push_back(static_cast<std::int64_t>(blk) * bs + row);
    ++s.tokens;
    if (ids == nullptr) continue;
    s.partial_tokens.push_back(ids[i]);
    if (row == bs - 1 && s.hashable) {  // the block just filled: register it for sharing
      const std::uint64_t h = chain_hash(s.chain, s.partial_tokens.data(), bs);
      PrefixKey& key = prefix_key_[static_cast<std::size_t>(blk)];
      if (prefix_blocks_.emplace(h, blk).second) {
        key.registered = true;
        key.hash = h;
        key.prev = s.chain;
        key.tokens = s.partial_tokens;
      }
      s.chain = h;
      s.partial_tokens.clear();
    }
  }
  if (ids == nullptr) {
    s.hashable = false;
    s.partial_tokens.clear();
  }
  return out;
}

BlockManager::Append BlockManager::append(SeqId seq, int n_tokens) {
  seq_ref(seq, "seq");
  if (n_tokens < 0) detail::fail("n_tokens", "must be >= 0, got " + std::to_string(n_tokens));
  return reserve(seqs_.at(seq), n_tokens, nullptr);
}

BlockManager::Append BlockManager::append_tokens(SeqId seq, std::span<const std::int32_t> token_ids) {
  seq_ref(seq, "seq");
  if (token_ids.size() > static_cast<std::size_t>(INT32_MAX)) detail::fail("token_ids", "too many tokens");
  return reserve(seqs_.at(seq), static_cast<int>(token_ids.size()), token_ids.data());
}

BlockManager::SeqId BlockManager::fork(SeqId parent) {
  const Sequence copy = seq_ref(parent, "parent");
  for (int b : copy.blocks) ++refs_[static_cast<std::size_t>(b)];
  const SeqId id = next_id_++;
  seqs_.emplace(id, copy);
  return id;
}

void BlockManager::free(SeqId seq) {
  const Sequence& s = seq_ref(seq, "seq");
  for (int b : s.blocks) release_block(b);
  seqs_.erase(seq);
}

std::int64_t BlockManager::num_tokens(SeqId seq) const { return seq_ref(seq, "seq").tokens; }

std::span<const std::int32_t> BlockManager::block_table(SeqId seq) const {
  const Sequence& s = seq_ref(seq, "seq");
  return {s.blocks.data(), s.blocks.size()};
}

std::vector<std::int32_t> BlockManager::batch_block_table(std::span<const SeqId> seqs, int max_blocks,
                                                          std::int32_t pad) const {
  for (SeqId id : seqs) {
    const Sequence& s = seq_ref(id, "seqs");
    if (static_cast<int>(s.blocks.size()) > max_blocks)
      detail::fail("max_blocks", "sequence " + std::to_string(id) + " has " + std::to_string(s.blocks.size()) +
                                     " blocks, more than " + std::to_string(max_blocks));
  }
  std::vector<std::int32_t> t(seqs.size() * static_cast<std::size_t>(max_blocks), pad);
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    const Sequence& s = seqs_.at(seqs[i]);
    std::copy(s.blocks.begin(), s.blocks.end(), t.begin() + static_cast<std::ptrdiff_t>(i * max_blocks));
  }
  return t;
}

int BlockManager::ref_count(int block) const {
  if (block < 0 || block >= num_blocks()) detail::fail("block", "out of range: " + std::to_string(block));
  return refs_[static_cast<std::size_t>(block)];
}

BlockManager::Stats BlockManager::stats() const {
  Stats st;
  st.total = num_blocks();
  st.free = static_cast<int>(free_list_.size());
  for (int r : refs_) {
    st.used += r > 0;
    st.shared += r > 1;
    st.block_refs += r;
  }
  return st;
}

}  // namespace flashattn
