// L2 prefetch by the tensor memory accelerator (PTX ISA 9.7.9.25.4.3 "cp.async.bulk.prefetch", sm_90).
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// cp.async.bulk.prefetch.L2.global [src], bytes: brings a contiguous range (16-byte aligned,
// bytes a multiple of 16) into L2 and returns at once; nothing waits for it, and it changes no
// value anyone reads (L2 is the device's point of coherence). A no-op below sm_90.
__device__ __forceinline__ void cp_async_bulk_prefetch_l2(const void* gmem_src, std::uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(gmem_src), "r"(bytes) : "memory");
#endif
}

}  // namespace flashattn::ptx
