// Writes the new keys (after rotary) and values into the cache at positions
// cache_seqlens[b] .. + seqlen_new. One block per (b, new token); threads over heads x dims.
#pragma once

#include "cuda/decode/decode_rotary.cuh"
#include "cuda/ptx/griddepcontrol.cuh"

namespace flashattn::detail::decode {

template <typename T>
__global__ void __launch_bounds__(128) append_kv_kernel(const DecodeParams p, bool programmatic) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  // The attention kernel after it may start now and prefetch while this grid and the one before
  // it finish (decode_l2_prefetch.cuh); launched programmatically itself, this grid reads and
  // writes nothing before the grid ahead of it is done.
  ptx::griddepcontrol_launch_dependents();
  if (programmatic) ptx::griddepcontrol_wait();
#else
  if (programmatic) __trap();  // the host launches programmatically only sm_90 code
#endif
  const int b = blockIdx.x / p.seqlen_new, i = blockIdx.x % p.seqlen_new;
  const int base = p.cache_seqlens[b] < 0 ? 0 : p.cache_seqlens[b];
  const int pos = base + i;
  if (pos >= p.k_rows.capacity()) return;
  const T* kn = static_cast<const T*>(p.k_new);
  const T* vn = static_cast<const T*>(p.v_new);
  T* kc = static_cast<T*>(p.k_cache);
  T* vc = static_cast<T*>(p.v_cache);
  for (int e = threadIdx.x; e < p.heads_kv * p.head_dim; e += blockDim.x) {
    const int h = e / p.head_dim, d = e % p.head_dim;
    const std::int64_t krow = b * p.kn_batch_stride + i * p.kn_row_stride + h * p.kn_head_stride;
    const std::int64_t vrow = b * p.vn_batch_stride + i * p.vn_row_stride + h * p.vn_head_stride;
    const float k = rotary_element<T>(p, pos, d, [&](int j) { return ElementTraits<T>::to_float(kn[krow + j]); });
    kc[p.k_rows.offset(b, pos, h) + d] = ElementTraits<T>::from_float(k);
    vc[p.v_rows.offset(b, pos, h) + d] = vn[vrow + d];
  }
}

}  // namespace flashattn::detail::decode
