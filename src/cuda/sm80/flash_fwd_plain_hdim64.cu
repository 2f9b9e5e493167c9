// The plain forward kernel (no hooks, no dropout; FwdConfig::Plain), fp16 and bf16, d = 64.
#include "cuda/sm80/flash_fwd_launch_template.cuh"

namespace flashattn::detail::sm80 {

template void run_flash_fwd_plain<64, __half>(const AttentionParams&);
template void run_flash_fwd_plain<64, __nv_bfloat16>(const AttentionParams&);

}  // namespace flashattn::detail::sm80
