// Asynchronous global->shared copies (PTX ISA 9.7.9.25 "cp.async", sm_80+).
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// cp.async.cg.shared.global [dst], [src], 16, src_bytes: 16-byte copy bypassing L1;
// bytes past src_bytes (0 or 16) are zero-filled, which pads tiles past the sequence end.
__device__ __forceinline__ void cp_async_cg_16(std::uint32_t smem_dst, const void* gmem_src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_dst), "l"(gmem_src), "r"(src_bytes));
#endif
}

// cp.async.cg.shared.global.L2::cache_hint [dst], [src], 16, src_bytes, policy: the copy above
// with an L2 eviction policy (createpolicy.cuh).
__device__ __forceinline__ void cp_async_cg_16_hint(std::uint32_t smem_dst, const void* gmem_src, bool valid,
                                                    std::uint64_t policy) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;\n" ::"r"(smem_dst), "l"(gmem_src),
               "r"(src_bytes), "l"(policy));
#endif
}

// cp.async.commit_group: closes the group of cp.async issued so far by this thread.
__device__ __forceinline__ void cp_async_commit_group() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// cp.async.wait_group N: waits until at most N of this thread's groups are pending.
template <int N>
__device__ __forceinline__ void cp_async_wait_group() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

}  // namespace flashattn::ptx
