// GPU-scope acquire loads, release stores and acq_rel atomics (PTX ISA 9.7.9.8 "ld", 9.7.9.10 "st",
// 9.7.13.5 "atom",
// memory consistency model section 8): block-to-block hand-offs through global flags.
#pragma once

namespace flashattn::ptx {

// ld.acquire.gpu.global.b32: later memory accesses of this thread happen after the load.
__device__ __forceinline__ int ld_acquire_gpu_s32(const int* addr) {
  int v = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(addr) : "memory");
#endif
  return v;
}

// ld.acquire.gpu.global.b32, unsigned: the same for arrival counters.
__device__ __forceinline__ unsigned ld_acquire_gpu_u32(const unsigned* addr) {
  unsigned v = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(addr) : "memory");
#endif
  return v;
}

// st.release.gpu.global.b32: earlier memory accesses (made visible to this thread, e.g.
// by a fence and a block barrier) happen before the store.
__device__ __forceinline__ void st_release_gpu_s32(int* addr, int v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  asm volatile("st.release.gpu.global.b32 [%0], %1;\n" ::"l"(addr), "r"(v) : "memory");
#endif
}

// atom.acq_rel.gpu.global.add.u32: an arrival counter that publishes this thread's earlier
// accesses (and those a block barrier made visible to it) and sees those of earlier arrivals.
__device__ __forceinline__ unsigned atom_add_acq_rel_gpu_u32(unsigned* addr, unsigned v) {
  unsigned old = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 700
  asm volatile("atom.acq_rel.gpu.global.add.u32 %0, [%1], %2;\n" : "=r"(old) : "l"(addr), "r"(v) : "memory");
#endif
  return old;
}

}  // namespace flashattn::ptx
