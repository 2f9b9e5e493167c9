// Decode attention kernels for head dims up to 256 (fp16, bf16).
#include "cuda/decode/decode_launch_template.cuh"

namespace flashattn::detail::decode {
template void launch_attention<__half, 256>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template void launch_attention<__nv_bfloat16, 256>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template int decode_occupancy<256>();
}  // namespace flashattn::detail::decode
