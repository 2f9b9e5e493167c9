// Bulk global->shared copies by the tensor memory accelerator (PTX ISA 9.7.9.25.4
// "cp.async.bulk" / "cp.async.bulk.tensor", sm_90), completing on an mbarrier.
#pragma once

#include <cstdint>

namespace flashattn::ptx {

// cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [dst], [src], bytes, [bar]:
// a contiguous copy (16-byte aligned ends, bytes a multiple of 16).
__device__ __forceinline__ void cp_async_bulk_g2s(std::uint32_t smem_dst, const void* gmem_src, std::uint32_t bytes,
                                                  std::uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_dst),
               "l"(gmem_src), "r"(bytes), "r"(bar)
               : "memory");
#endif
}

// cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [dst], [map, {c0..c3}], [bar]:
// one box of a tensor map (elements outside the tensor are zero-filled, and count as copied bytes).
__device__ __forceinline__ void cp_async_bulk_tensor_4d_g2s(std::uint32_t smem_dst, const void* tensor_map, int c0,
                                                            int c1, int c2, int c3, std::uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(smem_dst),
      "l"(tensor_map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
#endif
}

}  // namespace flashattn::ptx
