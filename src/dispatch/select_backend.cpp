#include <cstdlib>
#include <string>

#include "api/validate.hpp"
#include "dispatch/backend.hpp"

namespace flashattn::detail {

const Backend& select_backend(Device device) {
  const char* forced = std::getenv("FLASHATTN_BACKEND");
  const std::string want = forced ? forced : "";
  if (device.type == DeviceType::cpu) {
    if (!want.empty() && want != "cpu" && want != "auto")
      unsupported("FLASHATTN_BACKEND", "'" + want + "' cannot run tensors in host memory; use cpu");
    return cpu_backend();
  }
  if (want == "cpu") unsupported("FLASHATTN_BACKEND", "'cpu' cannot run CUDA tensors");
  const Backend* b = cuda_backend(want == "auto" ? "" : want.c_str(), device.index);
  if (b == nullptr) {
    if (!want.empty() && want != "auto")
      unsupported("FLASHATTN_BACKEND", "backend '" + want + "' is not built or not usable on cuda:" +
                                           std::to_string(device.index));
    unsupported("device", "no CUDA engine in this build can run on cuda:" + std::to_string(device.index));
  }
  return *b;
}

}  // namespace flashattn::detail
