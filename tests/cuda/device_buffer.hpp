// GPU test helpers: device copies of HostTensors (same strides and padding), NaN poisoning
// on the device, read-back, and a skip when no GPU is present.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>

#include "common/test_tensors.hpp"

namespace flashattn::testing {

inline bool gpu_available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

#define FLASHATTN_REQUIRE_GPU()                                   \
  do {                                                            \
    if (!::flashattn::testing::gpu_available()) GTEST_SKIP() << "no CUDA GPU present"; \
  } while (0)

// Device mirror of a HostTensor's storage (strides and padding included).
class DeviceBuffer {
 public:
  explicit DeviceBuffer(const HostTensor& h) : host_(&h), bytes_(h.bytes()) {
    if (cudaMalloc(&ptr_, bytes_ ? bytes_ : 1) != cudaSuccess) throw std::runtime_error("cudaMalloc failed");
    upload();
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void upload() { cudaMemcpy(ptr_, host_->data(), bytes_, cudaMemcpyHostToDevice); }
  // Copies device storage back into `h` (which must have the same layout).
  void download(HostTensor& h) const { cudaMemcpy(h.data(), ptr_, bytes_, cudaMemcpyDeviceToHost); }
  TensorView view(int device = 0) const {
    TensorView v = host_->view(Device::cuda(device));
    v.data = ptr_;
    return v;
  }
  void* data() const { return ptr_; }
  // `host_view` (a view of this buffer's HostTensor with the caller's shape / strides, e.g. a
  // test case's layout) pointed at the device copy.
  TensorView on_device(TensorView host_view, int device = 0) const {
    host_view.data = ptr_;
    host_view.device = Device::cuda(device);
    return host_view;
  }

 private:
  const HostTensor* host_;
  std::size_t bytes_;
  void* ptr_ = nullptr;
};

}  // namespace flashattn::testing
