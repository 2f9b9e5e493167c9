// The CUDA engines built into the library. Each engine's translation units define its
// accessor; backend_registry.cu chooses among them.
#pragma once

#include "dispatch/backend.hpp"

namespace flashattn::detail {

const Backend& sm80_backend();  // mma.sync engine, src/cuda/sm80/

}  // namespace flashattn::detail
