// Decode attention kernels for head dims up to 128 (fp16, bf16).
#include "cuda/decode/decode_launch_template.cuh"

namespace flashattn::detail::decode {
template void launch_attention<__half, 128>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template void launch_attention<__nv_bfloat16, 128>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template int decode_occupancy<128>();
}  // namespace flashattn::detail::decode
