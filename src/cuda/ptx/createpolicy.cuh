// L2 cache eviction policies for the .L2::cache_hint forms of loads and copies (PTX ISA
// "createpolicy", sm_80+).
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// createpolicy.fractional.L2::evict_first.b64: every line the hinted access brings into L2 is
// the first to go, so a read-once stream does not push out what other accesses reuse.
__device__ __forceinline__ std::uint64_t createpolicy_evict_first() {
  std::uint64_t policy = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;\n" : "=l"(policy));
#endif
  return policy;
}

}  // namespace flashattn::ptx
