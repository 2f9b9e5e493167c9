// Decode attention kernels for head dims up to 128 (fp16, bf16), the tiles for 163 KiB and
// 99 KiB of shared memory.
#include "cuda/decode/decode_launch_template.cuh"

namespace flashattn::detail::decode {
template void launch_attention<__half, 128, SmemTier::kib163>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template void launch_attention<__nv_bfloat16, 128, SmemTier::kib163>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template int decode_occupancy<128, SmemTier::kib163>();
template void launch_attention<__half, 128, SmemTier::kib99>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template void launch_attention<__nv_bfloat16, 128, SmemTier::kib99>(const DecodeParams&, float*, float*, unsigned*, cudaStream_t);
template int decode_occupancy<128, SmemTier::kib99>();
}  // namespace flashattn::detail::decode
