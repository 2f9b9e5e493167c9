// CPU sweep: the FlashAttention CPU engine beside naive standard attention (S = QK^T and
// P = softmax(S) materialised for every (batch, head), as standard attention does), both
// on the same micro-kernel and threads, so the table shows the O(N) vs O(N^2) memory
// and what tiling costs or saves in time.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "api/params_builder.hpp"
#include "bench_types.hpp"
#include "cpu/element_access.hpp"
#include "cpu/reference.hpp"
#include "cpu/scratch_stats.hpp"
#include "cpu/thread_pool.hpp"
#include "cpu/tile_gemm.hpp"
#include "cpu/vector_math.hpp"
#include "flashattn/flashattn.hpp"

namespace flashattn::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Buffer {
  std::vector<std::uint8_t> bytes;
  DType t;
  std::vector<std::int64_t> shape;
  Buffer(DType type, std::vector<std::int64_t> s) : t(type), shape(std::move(s)) {
    std::int64_t n = 1;
    for (auto x : shape) n *= x;
    bytes.resize(static_cast<std::size_t>(n) * dtype_size(t));
  }
  std::int64_t numel() const { return static_cast<std::int64_t>(bytes.size() / dtype_size(t)); }
  TensorView view() {
    TensorView v;
    v.data = bytes.data();
    v.dtype = t;
    v.rank = static_cast<int>(shape.size());
    std::int64_t st = 1;
    for (int d = v.rank - 1; d >= 0; --d) {
      v.sizes[d] = shape[d];
      v.strides[d] = st;
      st *= shape[d];
    }
    return v;
  }
  void randomize(std::mt19937_64& rng) {
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (std::int64_t i = 0; i < numel(); ++i) detail::store_f32(bytes.data(), t, i, u(rng));
  }
};

template <typename F>
double median_ms(int reps, F&& f) {
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Standard attention: S = scale * Q K^T (B*H*N*N floats), P = softmax(S) in place, O = P V.
void naive_attention(const BenchConfig& c, int n, Buffer& q, Buffer& k, Buffer& v, Buffer& o, std::vector<float>& S) {
  const int D = c.head_dim, H = c.heads;
  const float scale = 1.f / std::sqrt(float(D));
  auto& pool = detail::ThreadPool::instance();
  const std::int64_t heads = std::int64_t(c.batch) * H;
  std::vector<float> kt(std::size_t(heads) * D * n), vf(std::size_t(heads) * n * D), qf(std::size_t(heads) * n * D);
  pool.parallel_for(heads, [&](std::int64_t bh, int) {
    const int b = int(bh / H), h = int(bh % H);
    for (int i = 0; i < n; ++i)
      for (int d = 0; d < D; ++d) {
        const std::int64_t idx = ((std::int64_t(b) * n + i) * H + h) * D + d;
        kt[(bh * D + d) * n + i] = detail::load_f32(k.bytes.data(), k.t, idx);
        vf[(bh * n + i) * D + d] = detail::load_f32(v.bytes.data(), v.t, idx);
        qf[(bh * n + i) * D + d] = detail::load_f32(q.bytes.data(), q.t, idx) * scale;
      }
  });
  constexpr int R = 64;
  const std::int64_t blocks = (n + R - 1) / R;
  pool.parallel_for(heads * blocks, [&](std::int64_t item, int) {
    const std::int64_t bh = item / blocks;
    const int r0 = int(item % blocks) * R, m = std::min(R, n - r0);
    float* s = S.data() + (bh * n + r0) * std::int64_t(n);
    detail::gemm_nn(m, n, D, qf.data() + (bh * n + r0) * D, D, kt.data() + bh * D * n, n, s, n, false);
    for (int i = 0; i < m; ++i) {
      float* row = s + std::int64_t(i) * n;
      if (c.causal)
        for (int j = r0 + i + 1; j < n; ++j) row[j] = -INFINITY;
      float mx = *std::max_element(row, row + n);
      for (int j = 0; j < n; ++j) row[j] = (row[j] - mx) * 1.4426950408889634f;
      const float sum = detail::exp2_sub_sum(row, 0.f, row, n);
      for (int j = 0; j < n; ++j) row[j] /= sum;
    }
    std::vector<float> out(std::size_t(m) * D);
    detail::gemm_nn(m, D, n, s, n, vf.data() + bh * n * D, D, out.data(), D, false);
    const int b = int(bh / c.heads), h = int(bh % c.heads);
    for (int i = 0; i < m; ++i)
      for (int d = 0; d < D; ++d)
        detail::store_f32(o.bytes.data(), o.t, ((std::int64_t(b) * n + r0 + i) * c.heads + h) * D + d, out[i * D + d]);
  });
}

}  // namespace

std::vector<BenchRow> run_cpu_sweep(const BenchConfig& c, const Progress& progress) {
  std::vector<BenchRow> rows;
  std::mt19937_64 rng(42);
  int idx = 0;
  for (int n : c.sizes) {
    ++idx;
    const std::string tag = "[" + std::to_string(idx) + "/" + std::to_string(c.sizes.size()) + "] N=" + std::to_string(n);
    BenchRow row;
    row.n = n;
    row.batch = c.batch;
    row.engine = "cpu";
    Buffer q(c.dtype, {c.batch, n, c.heads, c.head_dim}), k = q, v = q, o = q, dout = q, dq = q, dk = q, dv = q;
    Buffer lse(DType::f32, {c.batch, c.heads, n});
    q.randomize(rng);
    k.randomize(rng);
    v.randomize(rng);
    dout.randomize(rng);
    Options opts;
    opts.causal = c.causal;
    progress(tag + " flash forward");
    auto run_fwd = [&] { forward(q.view(), k.view(), v.view(), o.view(), lse.view(), opts); };
    run_fwd();  // warm-up (thread pool start, page faults)
    row.flash_ms = median_ms(c.reps, run_fwd);
    row.flash_gflops = attention_flops(c, n) / (row.flash_ms * 1e6);
    const double io_bytes = double(q.bytes.size()) * 4 + lse.bytes.size();
    row.flash_mem_mb = (io_bytes + detail::last_cpu_scratch().per_worker_bytes * detail::last_cpu_scratch().workers) / 1e6;
    if (c.backward) {
      progress(tag + " flash backward");
      auto run_bwd = [&] {
        backward(dout.view(), q.view(), k.view(), v.view(), o.view(), lse.view(), dq.view(), dk.view(), dv.view(), opts);
      };
      row.flash_bwd_ms = median_ms(c.reps, run_bwd);
      row.flash_bwd_gflops = 2.5 * attention_flops(c, n) / (row.flash_bwd_ms * 1e6);
    }
    if (n <= c.check_max) {
      progress(tag + " oracle check");
      detail::AttentionParams p = detail::make_params(q.view(), k.view(), v.view(), opts, nullptr);
      const auto ref = detail::reference_forward(p, detail::RefPrecision::fp64);
      const auto base = detail::reference_forward(p, detail::RefPrecision::input_dtype);
      double err = 0, berr = 0;
      for (std::size_t i = 0; i < ref.o.size(); ++i) {
        const double e = detail::load_f32(o.bytes.data(), o.t, static_cast<std::int64_t>(i));
        err = std::max(err, std::isnan(e) ? INFINITY : std::abs(e - ref.o[i]));
        berr = std::max(berr, std::abs(base.o[i] - ref.o[i]));
      }
      const double atol = c.dtype == DType::f32 ? 2e-5 : c.dtype == DType::f16 ? 2e-3 : 1.6e-2;
      row.max_err = err;
      row.err_bound = 2 * berr + atol;
      row.check = err <= row.err_bound ? "pass" : "FAIL";
    }
    const double s_bytes = 4.0 * c.batch * c.heads * double(n) * n;
    if (s_bytes <= double(c.naive_max_bytes)) {
      progress(tag + " naive standard attention");
      std::vector<float> S(static_cast<std::size_t>(double(c.batch) * c.heads * n * n));
      Buffer o2 = o;
      auto run_naive = [&] { naive_attention(c, n, q, k, v, o2, S); };
      run_naive();
      row.naive_ms = median_ms(c.reps, run_naive);
      row.naive_gflops = attention_flops(c, n) / (row.naive_ms * 1e6);
      row.naive_mem_mb = (io_bytes + s_bytes + 3.0 * 4 * c.batch * c.heads * n * c.head_dim) / 1e6;
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace flashattn::bench
