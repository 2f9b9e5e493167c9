// Which kernels of this build run sm_90 code on a device: the host asks before it takes a path
// that only the sm_90 code of a kernel has.
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <mutex>
#include <utility>

namespace flashattn::detail {

// Whether `kernel`'s image on the current device was compiled from sm_90 code (its PTX virtual
// architecture is 9.0 or later). A build that reaches a Hopper GPU through compute_80 code
// (-gencode arch=compute_80,code=sm_90, which runs the sm_80 paths on a Hopper GPU for testing,
// or a driver JIT of compute_80 PTX) holds only the trap stubs of the sm_90 paths (TMA loads,
// clusters, programmatic launch). Asked once per kernel and device.
inline bool kernel_built_for_sm90(const void* kernel, int device) {
  static std::mutex mu;
  static std::map<std::pair<const void*, int>, bool> known;
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find({kernel, device});
  if (it == known.end()) {
    cudaFuncAttributes a{};
    const bool ok = cudaFuncGetAttributes(&a, kernel) == cudaSuccess;
    if (!ok) cudaGetLastError();  // no image for this device: no sm_90 path (the launch reports it)
    it = known.emplace(std::pair{kernel, device}, ok && a.ptxVersion >= 90).first;
  }
  return it->second;
}

}  // namespace flashattn::detail
