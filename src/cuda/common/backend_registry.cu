// Picks the CUDA engine for a device: by name when FLASHATTN_BACKEND forces one, else the
// best built engine for the device's compute capability.
#include <cuda_runtime.h>

#include <atomic>
#include <cstring>

#include "cuda/common/engines.hpp"
#include "dispatch/backend.hpp"

namespace flashattn::detail {
namespace {

// Compute capability per device ordinal, read once: cudaGetDeviceProperties costs
// microseconds, which would show in the per-call overhead of small problems.
int compute_capability(int device) {
  constexpr int kMaxDevices = 64;
  static std::atomic<int> cache[kMaxDevices];  // 0 = not read yet, -1 = no such device
  const bool cacheable = device >= 0 && device < kMaxDevices;
  if (cacheable) {
    const int cc = cache[device].load(std::memory_order_relaxed);
    if (cc != 0) return cc;
  }
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    cudaGetLastError();  // leave no error behind for the caller's next CUDA call
    return -1;           // not cached: the device may appear later (e.g. a driver reload)
  }
  const int cc = major * 10 + minor;
  if (cacheable) cache[device].store(cc, std::memory_order_relaxed);
  return cc;
}

}  // namespace

const Backend* cuda_backend(const char* name, int device) {
  const int cc = compute_capability(device);
  if (cc < 0) return nullptr;
  const bool any = name == nullptr || name[0] == '\0';
  if ((any || std::strcmp(name, "sm80") == 0) && cc >= 80) return &sm80_backend();
  return nullptr;
}

}  // namespace flashattn::detail
