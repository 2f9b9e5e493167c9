// A register-only FMA loop: the ceiling the CPU engine's GFLOP/s are read against.
#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "bench_types.hpp"
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace flashattn::bench {
namespace {

double fma_loop(long iters) {
#if defined(__AVX2__) && defined(__FMA__)
  // 10 independent accumulators hide the FMA latency (4 cycles x 2 pipes).
  __m256 a[10];
  for (int i = 0; i < 10; ++i) a[i] = _mm256_set1_ps(1.f + i * 1e-3f);
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 10; ++i) a[i] = _mm256_fmadd_ps(a[i], x, y);
  float sink = 0;
  for (int i = 0; i < 10; ++i) sink += _mm256_cvtss_f32(a[i]);
  return sink + iters * 10.0 * 16.0;  // FLOPs (8 lanes x 2)
#else
  float a[10];
  for (int i = 0; i < 10; ++i) a[i] = 1.f + i * 1e-3f;
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < 10; ++i) a[i] = a[i] * 0.999999f + 1e-7f;
  return a[0] * 0 + iters * 10.0 * 2.0;
#endif
}

}  // namespace

namespace {
double measure_once(int threads) {
  const long iters = 50'000'000;
  std::vector<double> flops(threads);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back([&, t] { flops[t] = fma_loop(iters); });
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double total = 0;
  for (double f : flops) total += f;
  return total / s * 1e-9;
}
}  // namespace

// Best of three: a ceiling must not be understated by a moment of contention.
double measure_cpu_fma_peak_gflops(int threads) {
  double best = 0;
  for (int i = 0; i < 3; ++i) best = std::max(best, measure_once(threads));
  return best;
}

}  // namespace flashattn::bench
