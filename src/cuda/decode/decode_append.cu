// Append (with rotary) of the new keys / values into the cache.
#include "cuda/common/cuda_check.cuh"
#include "cuda/common/kernel_built_for_sm90.hpp"
#include "cuda/decode/decode_append_kernel.cuh"
#include "cuda/decode/decode_instances.hpp"

namespace flashattn::detail::decode {

template <typename T>
void launch_append(const DecodeParams& p, bool programmatic, cudaStream_t stream) {
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(p.batch * p.seqlen_new));
  config.blockDim = dim3(128);
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  if (programmatic) {
    attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attribute.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &attribute;
    config.numAttrs = 1;
  }
  FLASHATTN_CUDA_CHECK(cudaLaunchKernelEx(&config, append_kv_kernel<T>, p, programmatic));
}
template void launch_append<__half>(const DecodeParams&, bool, cudaStream_t);
template void launch_append<__nv_bfloat16>(const DecodeParams&, bool, cudaStream_t);

template <typename T>
bool append_sm90_code(int device) {
  return kernel_built_for_sm90(reinterpret_cast<const void*>(&append_kv_kernel<T>), device);
}
template bool append_sm90_code<__half>(int);
template bool append_sm90_code<__nv_bfloat16>(int);

}  // namespace flashattn::detail::decode
