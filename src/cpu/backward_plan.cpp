#include "cpu/backward_plan.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "cpu/tile_config.hpp"
#include "flashattn/error.hpp"

namespace flashattn::detail {

namespace {
// Whole-item dQ rows above this per worker go back to two passes (a 256k-token sequence with
// a group of 8 at D = 256 would need 2 GiB per worker).
constexpr std::size_t kMaxItemDqBytes = std::size_t(64) << 20;
// All chunks' dQ rows of one call above this: two passes.
constexpr std::size_t kMaxChunkedDqBytes = std::size_t(256) << 20;
// Whole items: every worker holds one item's rows; all workers' rows above this: two passes.
constexpr std::size_t kMaxWorkersDqBytes = std::size_t(1) << 30;
// Busiest worker's items over the mean: above this, pass 2's extra products (7 vs 5 per
// pair, 1.4x) cost less than the idle workers.
constexpr double kMaxImbalance = 1.2;
// Key chunks aim at this many items per worker, so that causal masks (whose later key
// ranges have fewer visible rows) still balance under dynamic scheduling.
constexpr int kChunkItemsPerWorker = 4;

double imbalance(long long items, int workers) {
  const long long rounds = (items + workers - 1) / workers;
  return static_cast<double>(rounds * workers) / static_cast<double>(items);
}
}  // namespace

std::size_t one_pass_dq_bytes(const AttentionParams& p) {
  return sizeof(float) * std::size_t(p.heads_q / p.heads_kv) * std::size_t(p.seqlen_q) * std::size_t(p.head_dim);
}

BackwardPlan choose_backward_plan(const AttentionParams& p, int workers) {
  bool force_one = false;
  if (const char* env = std::getenv("FLASHATTN_CPU_BACKWARD")) {
    const std::string want = env;
    if (want == "two_pass") return {BackwardPass::two, 1};
    force_one = want == "one_pass";
    if (want.rfind("one_pass:", 0) == 0) {  // one_pass:<key chunks>
      const std::string n = want.substr(9);
      const bool digits = !n.empty() && n.size() <= 6 && n.find_first_not_of("0123456789") == std::string::npos;
      if (digits && std::stoi(n) >= 1) return {BackwardPass::one, std::stoi(n)};
    }
    if (!force_one && !want.empty() && want != "auto")
      throw Error(Error::Kind::invalid_argument, "FLASHATTN_CPU_BACKWARD",
                  "'" + want + "' is not a CPU backward plan; use one_pass, one_pass:<key chunks>, two_pass or auto");
  }
  const long long items = static_cast<long long>(p.batch) * p.heads_kv;
  const std::size_t item_bytes = one_pass_dq_bytes(p);
  const bool item_fits = item_bytes <= kMaxItemDqBytes && item_bytes * std::size_t(workers) <= kMaxWorkersDqBytes;
  if (imbalance(items, workers) <= kMaxImbalance && (item_fits || force_one)) return {BackwardPass::one, 1};
  const int key_tiles = (p.seqlen_k + kCpuBlockK - 1) / kCpuBlockK;
  const long long want = (static_cast<long long>(kChunkItemsPerWorker) * workers + items - 1) / items;
  const int chunks = static_cast<int>(std::max(1LL, std::min<long long>(want, key_tiles)));
  const bool fits = item_bytes * std::size_t(items) * std::size_t(chunks) <= kMaxChunkedDqBytes;
  if (chunks > 1 && (fits || force_one)) return {BackwardPass::one, chunks};
  return force_one ? BackwardPlan{BackwardPass::one, 1} : BackwardPlan{BackwardPass::two, 1};
}

}  // namespace flashattn::detail
