// Picks the CUDA engine for a device: by name when FLASHATTN_BACKEND forces one, else the
// best built engine for the device's compute capability.
#include <cuda_runtime.h>

#include <cstring>

#include "cuda/common/engines.hpp"
#include "dispatch/backend.hpp"

namespace flashattn::detail {

const Backend* cuda_backend(const char* name, int device) {
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls are unaffected
    return nullptr;
  }
  const int cc = prop.major * 10 + prop.minor;
  const bool any = name == nullptr || name[0] == '\0';
  if ((any || std::strcmp(name, "sm80") == 0) && cc >= 80) return &sm80_backend();
  return nullptr;
}

}  // namespace flashattn::detail
