// Registers the sm80 engine in the backend table.
#include "cuda/common/engines.hpp"
#include "cuda/sm80/sm80_engine.hpp"

namespace flashattn::detail {

const Backend& sm80_backend() {
  static const Backend b{"sm80", sm80_supports, sm80_forward, sm80_backward, sm80_merge_states,
                         "fp16 or bf16; head_dim a multiple of 8 up to 256; q, k, v, out (and gradients) "
                         "16-byte aligned with strides that are multiples of 8 elements"};
  return b;
}

}  // namespace flashattn::detail
