// Programmatic dependent launch from the device side (PTX ISA 9.7.13.13 "griddepcontrol", sm_90).
#pragma once

namespace flashattn::ptx {

// griddepcontrol.launch_dependents: once every CTA of this grid has issued it (or exited), a grid
// launched after it with programmatic stream serialization may start; it says nothing about the
// visibility of this grid's writes. A no-op below sm_90 and where no dependent was set up.
__device__ __forceinline__ void griddepcontrol_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// griddepcontrol.wait: blocks until every grid this one depends on programmatically has completed
// and its writes are visible; returns at once where there is none. A no-op below sm_90.
__device__ __forceinline__ void griddepcontrol_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

}  // namespace flashattn::ptx
