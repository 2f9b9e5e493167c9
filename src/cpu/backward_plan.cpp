#include "cpu/backward_plan.hpp"

#include <cstdlib>
#include <string>

#include "flashattn/error.hpp"

namespace flashattn::detail {

namespace {
// one_pass's dQ rows above this per worker go back to two_pass (a 256k-token sequence with
// a group of 8 at D = 256 would need 2 GiB per worker).
constexpr std::size_t kMaxOnePassDqBytes = std::size_t(64) << 20;
// Busiest worker's items over the mean: above this, pass 2's extra products (7 vs 5 per
// pair, 1.4x) cost less than the idle workers.
constexpr double kMaxOnePassImbalance = 1.2;
}  // namespace

std::size_t one_pass_dq_bytes(const AttentionParams& p) {
  return sizeof(float) * std::size_t(p.heads_q / p.heads_kv) * std::size_t(p.seqlen_q) * std::size_t(p.head_dim);
}

BackwardPlan choose_backward_plan(const AttentionParams& p, int workers) {
  if (const char* env = std::getenv("FLASHATTN_CPU_BACKWARD")) {
    const std::string want = env;
    if (want == "one_pass") return BackwardPlan::one_pass;
    if (want == "two_pass") return BackwardPlan::two_pass;
    if (!want.empty() && want != "auto")
      throw Error(Error::Kind::invalid_argument, "FLASHATTN_CPU_BACKWARD",
                  "'" + want + "' is not a CPU backward plan; use one_pass, two_pass or auto");
  }
  if (one_pass_dq_bytes(p) > kMaxOnePassDqBytes) return BackwardPlan::two_pass;
  const long long items = static_cast<long long>(p.batch) * p.heads_kv;
  const long long rounds = (items + workers - 1) / workers;
  const double imbalance = static_cast<double>(rounds * workers) / static_cast<double>(items);
  return imbalance <= kMaxOnePassImbalance ? BackwardPlan::one_pass : BackwardPlan::two_pass;
}

}  // namespace flashattn::detail
