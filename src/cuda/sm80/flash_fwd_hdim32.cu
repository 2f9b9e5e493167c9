// One translation unit per head dim keeps the build parallel: fp16 and bf16 kernels, d = 32.
#include "cuda/sm80/flash_fwd_launch_template.cuh"

namespace flashattn::detail::sm80 {

template void run_flash_fwd<32, __half>(const AttentionParams&);
template void run_flash_fwd<32, __nv_bfloat16>(const AttentionParams&);

}  // namespace flashattn::detail::sm80
