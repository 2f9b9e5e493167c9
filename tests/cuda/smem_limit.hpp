// Lowers the shared memory per block the CUDA engines size their tiles by, for one scope
// (src/cuda/common/device_smem.hpp): the tiles of A100 and sm_86 / sm_89 run on the GPU at hand.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "cuda/scoped_env.hpp"

namespace flashattn::testing {

// FLASHATTN_MAX_SMEM_PER_BLOCK = bytes for its lifetime (0: unset).
class SmemLimit : public ScopedEnv {
 public:
  explicit SmemLimit(std::size_t bytes)
      : ScopedEnv("FLASHATTN_MAX_SMEM_PER_BLOCK",
                  bytes > 0 ? std::optional<std::string>(std::to_string(bytes)) : std::nullopt) {}
};

}  // namespace flashattn::testing
