// Registers the sm80 engine in the backend table.
#include "cuda/common/engines.hpp"
#include "cuda/sm80/sm80_engine.hpp"

namespace flashattn::detail {

const Backend& sm80_backend() {
  static const Backend b{"sm80", sm80_supports, sm80_forward, sm80_backward, sm80_merge_states};
  return b;
}

}  // namespace flashattn::detail
