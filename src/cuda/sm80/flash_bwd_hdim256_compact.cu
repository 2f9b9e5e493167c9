// Instantiates the sm80 backward kernel for head dims padded to 256 with the compact tile of
// 99 KiB GPUs (BwdTile<256, true>: 64 x 32, V in registers; fp16 and bf16).
#include "cuda/sm80/flash_bwd_launch_template.cuh"

namespace flashattn::detail::sm80_bwd {

template void run_bwd_main<__half, 256, true>(const AttentionParams&, const BwdScratch&, cudaStream_t);
template void run_bwd_main<__nv_bfloat16, 256, true>(const AttentionParams&, const BwdScratch&, cudaStream_t);

}  // namespace flashattn::detail::sm80_bwd
