// Shared-memory transaction barriers (PTX ISA 9.7.13.15 "mbarrier", sm_90 forms).
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// mbarrier.init.shared::cta.b64 [bar], count: a barrier that completes a phase after `count` arrivals.
__device__ __forceinline__ void mbarrier_init(std::uint32_t bar, std::uint32_t count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
#endif
}

// fence.mbarrier_init.release.cluster: makes the inits visible to the async proxy (bulk copies).
__device__ __forceinline__ void fence_mbarrier_init() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

// mbarrier.arrive.expect_tx.shared::cta.b64 _, [bar], bytes: one arrival that also expects `bytes`
// of bulk-copy completions before the phase can complete.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(std::uint32_t bar, std::uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
#endif
}

// mbarrier.try_wait.parity.shared::cta.b64 (looped): waits until the phase of parity `parity` has completed.
__device__ __forceinline__ void mbarrier_wait_parity(std::uint32_t bar, std::uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT_%=;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
#endif
}

}  // namespace flashattn::ptx
