// Device memory access for the API layer (cu_seqlens checks) and library scratch.
#include <cuda_runtime.h>

#include <cstring>

#include "cuda/common/cuda_check.cuh"
#include "dispatch/device_memory.hpp"
#include "flashattn/attention.hpp"

namespace flashattn::detail {

DeviceAllocator& current_allocator();

void copy_to_host(void* dst, const void* src, std::size_t bytes, Device device) {
  if (bytes == 0) return;
  if (device.type == DeviceType::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
  int previous = 0;
  FLASHATTN_CUDA_CHECK(cudaGetDevice(&previous));
  FLASHATTN_CUDA_CHECK(cudaSetDevice(device.index));
  const cudaError_t err = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
  cudaSetDevice(previous);
  FLASHATTN_CUDA_CHECK(err);
}

void* device_allocate(std::size_t bytes, int device, StreamHandle stream) {
  const DeviceAllocator& a = current_allocator();
  if (a.allocate) return a.allocate(bytes, device, stream, a.ctx);
  void* p = nullptr;
  FLASHATTN_CUDA_CHECK(cudaMallocAsync(&p, bytes, static_cast<cudaStream_t>(stream)));
  return p;
}

bool device_allocator_is_default() {
  const DeviceAllocator& a = current_allocator();
  return a.allocate == nullptr;
}

void device_free(void* ptr, int device, StreamHandle stream) {
  if (ptr == nullptr) return;
  const DeviceAllocator& a = current_allocator();
  if (a.deallocate) {
    a.deallocate(ptr, device, stream, a.ctx);
    return;
  }
  cudaFreeAsync(ptr, static_cast<cudaStream_t>(stream));
}

}  // namespace flashattn::detail
