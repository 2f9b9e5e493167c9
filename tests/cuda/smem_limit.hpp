// Lowers the shared memory per block the CUDA engines size their tiles by, for one scope
// (src/cuda/common/device_smem.hpp): the tiles of A100 and sm_86 / sm_89 run on the GPU at hand.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <optional>
#include <string>

namespace flashattn::testing {

// Sets FLASHATTN_MAX_SMEM_PER_BLOCK for its lifetime (0: unsets it), then restores what was
// there (or unsets it).
class SmemLimit {
 public:
  explicit SmemLimit(std::size_t bytes) {
    if (const char* old = std::getenv(kVar)) previous_ = old;
    if (bytes > 0)
      setenv(kVar, std::to_string(bytes).c_str(), 1);
    else
      unsetenv(kVar);
  }
  ~SmemLimit() {
    if (previous_)
      setenv(kVar, previous_->c_str(), 1);
    else
      unsetenv(kVar);
  }
  SmemLimit(const SmemLimit&) = delete;
  SmemLimit& operator=(const SmemLimit&) = delete;

 private:
  static constexpr const char* kVar = "FLASHATTN_MAX_SMEM_PER_BLOCK";
  std::optional<std::string> previous_;
};

}  // namespace flashattn::testing
