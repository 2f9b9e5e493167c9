#include "cuda/common/device_smem.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>

#include "cuda/common/cuda_check.cuh"

namespace flashattn::detail {

std::size_t smem_limit_from_env() {
  const char* env = std::getenv("FLASHATTN_MAX_SMEM_PER_BLOCK");
  if (env == nullptr || *env == '\0') return 0;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  return (end != nullptr && *end == '\0' && v > 0) ? static_cast<std::size_t>(v) : 0;
}

std::size_t device_smem_per_block(int device) {
  int optin = 0;
  FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  const std::size_t limit = smem_limit_from_env();
  return limit > 0 ? std::min(static_cast<std::size_t>(optin), limit) : static_cast<std::size_t>(optin);
}

}  // namespace flashattn::detail
