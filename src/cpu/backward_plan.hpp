// How the CPU backward divides its work among the workers.
//
// two_pass: pass 1 gives each worker one (batch, kv head, key tile) and accumulates dK / dV
//   over every q tile of the GQA group; pass 2 gives each worker one (batch, q head, q tile)
//   and accumulates dQ over the key tiles. Seven tile products per (q tile, key tile) pair:
//   pass 2 recomputes S and dP. Scratch is O(tile) per worker and there are many small
//   items, so it balances on any shape.
// one_pass: each worker owns a whole (batch, kv head): for every key tile it accumulates dK /
//   dV in tile buffers and adds dS K into fp32 dQ rows of the group's q heads (group x seqlen_q
//   x D floats per worker, O(N d), like the GPU's dQ accumulator). Five products per pair; no
//   worker shares an output row with another, so the sums stay in one fixed order.
// Both are deterministic. one_pass pays off when the (batch, kv head) items split evenly over
// the workers; otherwise the idle workers cost more than pass 2's two extra products.
#pragma once

#include <cstddef>

#include "core/attention_params.hpp"

namespace flashattn::detail {

enum class BackwardPlan { one_pass, two_pass };

// Per-worker bytes of one_pass's dQ rows: group x (longest q sequence) x D floats.
std::size_t one_pass_dq_bytes(const AttentionParams& p);

// FLASHATTN_CPU_BACKWARD=one_pass | two_pass forces a plan (for measurement); auto or unset
// chooses by the rule above. Any other value: an Error naming the variable.
BackwardPlan choose_backward_plan(const AttentionParams& p, int workers);

}  // namespace flashattn::detail
