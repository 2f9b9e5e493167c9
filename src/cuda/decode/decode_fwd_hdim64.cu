// Decode attention kernels for head dims up to 64 (fp16, bf16).
#include "cuda/decode/decode_launch_template.cuh"

namespace flashattn::detail::decode {
template void launch_attention<__half, 64>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template void launch_attention<__nv_bfloat16, 64>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template int decode_occupancy<64>();
}  // namespace flashattn::detail::decode
