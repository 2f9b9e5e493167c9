// What the last CPU call allocated beyond its inputs and outputs, so tests can check that
// scratch stays O(tile) per worker (plus O(N) row statistics in the backward, and O(N d) dQ
// rows per worker in its one_pass plan), never O(N^2).
#pragma once

#include <cstddef>

namespace flashattn::detail {

struct CpuScratchStats {
  std::size_t per_worker_bytes = 0;  // tile buffers of one worker
  int workers = 0;
  std::size_t row_stat_bytes = 0;    // D = rowsum(dO * O), one float per (row, head)
  std::size_t dq_row_bytes = 0;      // one-pass backward: all fp32 dQ rows of the call (one set
                                     // per worker, or per (item, key chunk)), O(N d) each
};

CpuScratchStats last_cpu_scratch();
void record_cpu_scratch(const CpuScratchStats& s);

}  // namespace flashattn::detail
