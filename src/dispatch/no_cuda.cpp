// Stand-ins used when the library is built without CUDA (-DFLASHATTN_CUDA=OFF or no nvcc):
// CUDA tensors are then reported as unsupported, never silently run elsewhere.
#include <cstring>

#include "api/validate.hpp"
#include "dispatch/backend.hpp"
#include "dispatch/device_memory.hpp"

namespace flashattn::detail {

const Backend* cuda_backend(const char*, int) { return nullptr; }

void copy_to_host(void* dst, const void* src, std::size_t bytes, Device device) {
  if (device.type != DeviceType::cpu) unsupported("device", "this build of flashattn has no CUDA support");
  if (bytes) std::memcpy(dst, src, bytes);
}

void* device_allocate(std::size_t, int, StreamHandle) {
  unsupported("device", "this build of flashattn has no CUDA support");
}
void device_free(void*, int, StreamHandle) {}

}  // namespace flashattn::detail
