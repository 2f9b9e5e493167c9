// Named CTA barriers (PTX ISA 9.7.13.1 "bar / barrier"): a subset of the CTA's warps meets
// without stopping the others. Barrier 0 is __syncthreads'; callers use ids 1-15.
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// bar.sync id, threads: waits until `threads` (a multiple of 32) threads have arrived at barrier `id`.
__device__ __forceinline__ void bar_sync(std::uint32_t id, std::uint32_t threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace flashattn::ptx
