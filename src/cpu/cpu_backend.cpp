// Registers the CPU engine in the backend table and keeps its scratch statistics.
#include <mutex>

#include "cpu/cpu_engine.hpp"
#include "cpu/scratch_stats.hpp"
#include "dispatch/backend.hpp"

namespace flashattn::detail {
namespace {
std::mutex g_stats_mutex;
CpuScratchStats g_stats;

bool cpu_supports(const AttentionParams& p) {
  return (p.dtype == DType::f32 || p.dtype == DType::f16 || p.dtype == DType::bf16) && p.head_dim % 8 == 0 &&
         p.head_dim <= 256;
}
}  // namespace

CpuScratchStats last_cpu_scratch() {
  std::lock_guard<std::mutex> lock(g_stats_mutex);
  return g_stats;
}
void record_cpu_scratch(const CpuScratchStats& s) {
  std::lock_guard<std::mutex> lock(g_stats_mutex);
  g_stats = s;
}

const Backend& cpu_backend() {
  static const Backend b{"cpu", cpu_supports, cpu_forward, cpu_backward, cpu_merge_states,
                         "fp32, fp16 or bf16; head_dim a multiple of 8 up to 256"};
  return b;
}

}  // namespace flashattn::detail
