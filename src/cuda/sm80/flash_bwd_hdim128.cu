// Instantiates the sm80 backward kernel for head dims padded to 128 (fp16 and bf16).
#include "cuda/sm80/flash_bwd_launch_template.cuh"

namespace flashattn::detail::sm80_bwd {

template void run_bwd_main<__half, 128, false>(const AttentionParams&, const BwdScratch&, cudaStream_t);
template void run_bwd_main<__nv_bfloat16, 128, false>(const AttentionParams&, const BwdScratch&, cudaStream_t);

}  // namespace flashattn::detail::sm80_bwd
