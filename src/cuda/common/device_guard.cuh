// Makes a call's device current for its scope and restores the caller's device afterwards,
// also when the call throws.
#pragma once

#include <cuda_runtime.h>

#include "cuda/common/cuda_check.cuh"

namespace flashattn::detail {

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    FLASHATTN_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) FLASHATTN_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() {
    int now = previous_;
    cudaGetDevice(&now);
    if (now != previous_) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace flashattn::detail
