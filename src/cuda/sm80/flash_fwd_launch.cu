// sm80 forward entry points: which problems the engine takes, and the dispatch from the
// runtime (dtype, head dim) to the instantiated kernels of flash_fwd_hdim*.cu.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/common/cuda_check.cuh"
#include "cuda/common/device_guard.cuh"
#include "cuda/sm80/kernel_traits.cuh"
#include "cuda/sm80/sm80_engine.hpp"

namespace flashattn::detail {
namespace sm80 {

template <int kHeadDim, typename Elem>
void run_flash_fwd(const AttentionParams& p);
template <int kHeadDim, typename Elem>
void run_flash_fwd_plain(const AttentionParams& p);
template <int kHeadDim, typename Elem>
bool run_flash_fwd_tma(const AttentionParams& p);

namespace {

bool aligned16(const void* ptr) { return ptr == nullptr || reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; }
bool multiple_of_8(std::int64_t s) { return s % 8 == 0; }

template <typename Elem>
void dispatch_head_dim(const AttentionParams& p) {
  // Plain calls try the sm_90 TMA kernel first (run_flash_fwd_tma declines where it does not apply).
  const bool plain = fwd_is_plain(p);
  switch (fwd_kernel_head_dim(p.head_dim)) {
    case 32: return run_flash_fwd<32, Elem>(p);
    case 64:
      if (plain && run_flash_fwd_tma<64, Elem>(p)) return;
      return plain ? run_flash_fwd_plain<64, Elem>(p) : run_flash_fwd<64, Elem>(p);
    case 96: return run_flash_fwd<96, Elem>(p);
    case 128:
      if (plain && run_flash_fwd_tma<128, Elem>(p)) return;
      return plain ? run_flash_fwd_plain<128, Elem>(p) : run_flash_fwd<128, Elem>(p);
    case 192:
      if (plain && run_flash_fwd_tma<192, Elem>(p)) return;
      return run_flash_fwd<192, Elem>(p);
    default:
      if (plain && run_flash_fwd_tma<256, Elem>(p)) return;
      return run_flash_fwd<256, Elem>(p);
  }
}

}  // namespace
}  // namespace sm80

// fp16 / bf16, head_dim a multiple of 8 up to 256, and 16-byte aligned rows (cp.async and
// the vector stores of O move 16 bytes at a time): base pointers aligned, strides multiples
// of 8 elements.
bool sm80_supports(const AttentionParams& p) {
  if (p.dtype != DType::f16 && p.dtype != DType::bf16) return false;
  if (p.head_dim <= 0 || p.head_dim % 8 != 0 || p.head_dim > 256) return false;
  if (p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0) return false;
  using sm80::aligned16;
  using sm80::multiple_of_8;
  for (const void* ptr : {p.q, p.k, p.v, static_cast<const void*>(p.o), p.dout, static_cast<const void*>(p.dq),
                          static_cast<const void*>(p.dk), static_cast<const void*>(p.dv)})
    if (!aligned16(ptr)) return false;
  for (std::int64_t s : {p.q_row_stride, p.q_head_stride, p.k_row_stride, p.k_head_stride, p.v_row_stride,
                         p.v_head_stride, p.o_row_stride, p.o_head_stride, p.do_row_stride, p.do_head_stride,
                         p.dq_row_stride, p.dq_head_stride, p.dk_row_stride, p.dk_head_stride, p.dv_row_stride,
                         p.dv_head_stride})
    if (!multiple_of_8(s)) return false;
  if (!p.is_varlen())
    for (std::int64_t s : {p.q_batch_stride, p.k_batch_stride, p.v_batch_stride, p.o_batch_stride,
                           p.do_batch_stride, p.dq_batch_stride, p.dk_batch_stride, p.dv_batch_stride})
      if (!multiple_of_8(s)) return false;
  return true;
}

void sm80_forward(const AttentionParams& p) {
  const DeviceGuard guard(p.device.index);
  if (p.dtype == DType::f16)
    sm80::dispatch_head_dim<__half>(p);
  else
    sm80::dispatch_head_dim<__nv_bfloat16>(p);
}

}  // namespace flashattn::detail
