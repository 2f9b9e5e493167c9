// Append (with rotary) of the new keys / values into the cache.
#include "cuda/common/cuda_check.cuh"
#include "cuda/decode/decode_append_kernel.cuh"
#include "cuda/decode/decode_instances.hpp"

namespace flashattn::detail::decode {

template <typename T>
void launch_append(const DecodeParams& p, cudaStream_t stream) {
  append_kv_kernel<T><<<static_cast<unsigned>(p.batch * p.seqlen_new), 128, 0, stream>>>(p);
  FLASHATTN_CUDA_CHECK(cudaGetLastError());
}
template void launch_append<__half>(const DecodeParams&, cudaStream_t);
template void launch_append<__nv_bfloat16>(const DecodeParams&, cudaStream_t);

}  // namespace flashattn::detail::decode
