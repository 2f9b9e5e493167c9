// The start of a CTA's key range brought into L2 while the grid before it in the stream is still
// running (programmatic dependent launch, sm_90). A decode step is a few microseconds of DRAM
// stream behind a tail that streams nothing: the previous grid's last CTAs merging their splits
// (batch 1) or its part-filled last wave (large batches). A CTA that becomes resident during that
// tail may not read anything the previous grid writes before griddepcontrol.wait, but a prefetch
// reads nothing: it only warms L2, which is the point of coherence, so a line the previous grid
// writes afterwards is simply updated there. The rows' addresses come from hint reads of
// cache_seqlens and the block table made before the wait; a stale hint costs a wasted prefetch,
// never a wrong value, and CacheRows clamps every address into the cache.
#pragma once

#include <cstdint>

#include "cuda/ptx/cp_async_bulk_prefetch.cuh"
#include "inference/decode_params.hpp"

namespace flashattn::detail::decode {

// Keys [k0, k1) of KV head kvh of sequence b, K and V rows, one bulk prefetch per row and
// tensor, spread over the CTA's `threads` threads.
template <typename T>
__device__ __forceinline__ void prefetch_cache_rows_to_l2(const DecodeParams& p, int b, int kvh, int k0, int k1,
                                                          int threads) {
  const std::uint32_t bytes = static_cast<std::uint32_t>(p.head_dim * sizeof(T));
  const T* k = static_cast<const T*>(p.k_cache);
  const T* v = static_cast<const T*>(p.v_cache);
  for (int pos = k0 + static_cast<int>(threadIdx.x); pos < k1; pos += threads) {
    ptx::cp_async_bulk_prefetch_l2(k + p.k_rows.offset(b, pos, kvh), bytes);
    ptx::cp_async_bulk_prefetch_l2(v + p.v_rows.offset(b, pos, kvh), bytes);
  }
}

}  // namespace flashattn::detail::decode
