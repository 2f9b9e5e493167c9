// The sm_90 TMA forward kernel (plain calls, padded batches; FwdConfig::Tma), fp16 and bf16,
// d = 256: its own translation unit keeps the build parallel (its sm_80 code is an empty stub).
#include "cuda/sm80/flash_fwd_launch_template.cuh"

namespace flashattn::detail::sm80 {

template bool run_flash_fwd_tma<256, __half>(const AttentionParams&);
template bool run_flash_fwd_tma<256, __nv_bfloat16>(const AttentionParams&);

}  // namespace flashattn::detail::sm80
