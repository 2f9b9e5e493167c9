// How the CPU backward divides its work among the workers.
//
// two passes: pass 1 gives each worker one (batch, kv head, key tile) and accumulates dK / dV
//   over every q tile of the GQA group; pass 2 gives each worker one (batch, q head, q tile)
//   and accumulates dQ over the key tiles. Seven tile products per (q tile, key tile) pair:
//   pass 2 recomputes S and dP. Scratch is O(tile) per worker.
// one pass: a work item is a (batch, kv head) — or, with kv_chunks > 1, one of kv_chunks
//   contiguous ranges of its key tiles. For every key tile it accumulates dK / dV in tile
//   buffers and adds dS K into fp32 dQ rows of the group's q heads: five products per pair.
//   kv_chunks = 1: the rows are the worker's own (group x seqlen_q x D floats per worker, O(N d),
//   like the GPU's dQ accumulator) and are stored when the item ends. kv_chunks > 1 (too few
//   (batch, kv head) items for the workers): each item has its own rows, and the chunks' rows
//   are summed in chunk order afterwards.
// Every sum has one fixed order, so the CPU backward is deterministic in every plan.
#pragma once

#include <cstddef>

#include "core/attention_params.hpp"

namespace flashattn::detail {

enum class BackwardPass { one, two };

struct BackwardPlan {
  BackwardPass pass = BackwardPass::two;
  int kv_chunks = 1;  // one pass: key ranges per (batch, kv head)
};

// Bytes of one item's fp32 dQ rows: group x (longest q sequence) x D floats.
std::size_t one_pass_dq_bytes(const AttentionParams& p);

// FLASHATTN_CPU_BACKWARD=one_pass | one_pass:<key chunks> | two_pass forces a plan (for
// measurement and tests); auto or unset chooses: one pass whole (batch, kv head) items when they split evenly over the workers
// (busiest <= 1.2x the mean), else one pass over enough key chunks for ~4 items per worker
// while the chunks' dQ rows fit a budget, else two passes (budgets: 64 MiB of rows per item
// and 1 GiB over all workers for whole items, 256 MiB over all chunks). Any other value: an Error naming
// the variable.
BackwardPlan choose_backward_plan(const AttentionParams& p, int workers);

}  // namespace flashattn::detail
