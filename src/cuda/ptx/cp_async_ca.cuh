// Small asynchronous global->shared copies (PTX ISA 9.7.9.25 "cp.async", .ca, sm_80+).
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// cp.async.ca.shared.global [dst], [src], 4, src_bytes: one 4-byte word (no alignment
// beyond 4 bytes needed); src_bytes 0 zero-fills the word.
__device__ __forceinline__ void cp_async_ca_4(std::uint32_t smem_dst, const void* gmem_src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int src_bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_dst), "l"(gmem_src), "r"(src_bytes));
#endif
}

}  // namespace flashattn::ptx
