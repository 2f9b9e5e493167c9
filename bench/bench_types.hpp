// What one flashattn-bench sweep asks for and what each size reports.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "flashattn/dtype.hpp"

namespace flashattn::bench {

struct BenchConfig {
  std::string device = "auto";  // cpu | cuda | auto (cuda when a GPU is present)
  DType dtype = DType::f32;
  int head_dim = 128;
  int heads = 1;
  int batch = 1;
  bool causal = false;
  bool backward = false;           // also time the backward pass
  std::vector<int> sizes;          // sequence lengths (seqlen_q = seqlen_k)
  int reps = 3;                    // timed repetitions; the median is reported
  int check_max = 1024;            // check against the fp64 oracle up to this N
  long long naive_max_bytes = 4LL << 30;  // skip naive attention when S would exceed this
  // When > 0, batch = tokens_per_batch / N for each N (the anchors' 16k tokens per batch).
  int tokens_per_batch = 0;

  int batch_for(int n) const { return tokens_per_batch > 0 ? (tokens_per_batch / n > 0 ? tokens_per_batch / n : 1) : batch; }
};

struct BenchRow {
  int n = 0;
  int batch = 1;
  std::string engine;              // "cpu", "sm80", ...
  double flash_ms = 0, flash_gflops = 0;
  double flash_bwd_ms = -1, flash_bwd_gflops = -1;
  double naive_ms = -1, naive_gflops = -1;  // -1: skipped (would not fit)
  double flash_mem_mb = 0;         // inputs + outputs + the engine's scratch
  double naive_mem_mb = -1;        // inputs + outputs + the materialised S / P
  std::string check = "skipped";   // pass | FAIL | skipped
  double max_err = 0, err_bound = 0;
};

using Progress = std::function<void(const std::string&)>;

std::vector<BenchRow> run_cpu_sweep(const BenchConfig& cfg, const Progress& progress);
// GPU sweep: the CUDA engine beside a naive cuBLAS + softmax baseline. Throws
// flashattn::Error when this build has no CUDA engine or no GPU is present.
std::vector<BenchRow> run_gpu_sweep(const BenchConfig& cfg, const Progress& progress);
bool gpu_present();
std::string gpu_name();

// Measured fp32 FMA throughput of this host (all threads), GFLOP/s.
double measure_cpu_fma_peak_gflops(int threads);

// FLOPs of one forward: 4 * B * H * N^2 * D, halved when causal.
inline double attention_flops(const BenchConfig& c, int n) {
  const double f = 4.0 * c.batch_for(n) * c.heads * double(n) * n * c.head_dim;
  return c.causal ? f / 2 : f;
}

}  // namespace flashattn::bench
