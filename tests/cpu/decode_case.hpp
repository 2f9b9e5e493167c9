// One random decode problem for the CPU and CUDA decode tests: cache (contiguous, with or
// without cache_batch_idx, or paged with a shuffled block table), new tokens, rotary tables,
// options; and its expected results from the fp64 oracle. The oracle sees the equivalent
// dense problem: every sequence's cache gathered into packed (varlen) K/V after the append,
// with rotary applied in fp64 (src/cpu/reference.hpp). The baseline of the error standard is
// the same naive attention in the input dtype over the inputs rounded to that dtype.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/error_standard.hpp"
#include "common/test_tensors.hpp"
#include "cpu/element_access.hpp"
#include "cpu/reference.hpp"
#include "flashattn/kvcache.hpp"

namespace flashattn::testing {

struct DecodeConfig {
  DType dtype = DType::bf16;
  int batch = 2, seqlen_q = 1, heads_q = 4, heads_kv = 2, head_dim = 64;
  std::vector<int> cache_seqlens;  // empty: random in [0, max_cache]
  int max_cache = 100;
  int seqlen_new = 0;
  enum class Layout { contiguous, batch_idx, paged } layout = Layout::contiguous;
  int block_size = 16;
  int rotary_dim = 0;
  bool interleaved = true;
  bool rotary_table_in_dtype = false;
  bool causal = false;
  int window_left = -1, window_right = -1;
  float softcap = 0.f;
  bool alibi = false;
  bool with_lse = true;
  int num_splits = 1;

  std::string name() const {
    std::ostringstream s;
    s << dtype_name(dtype) << " B" << batch << " Sq" << seqlen_q << " H" << heads_q << "/" << heads_kv << " D"
      << head_dim << " new" << seqlen_new << " layout" << static_cast<int>(layout) << " bs" << block_size << " rot"
      << rotary_dim << (interleaved ? "i" : "n") << " causal" << causal << " win(" << window_left << ","
      << window_right << ") cap" << softcap << " alibi" << alibi << " splits" << num_splits;
    return s.str();
  }
};

class DecodeCase {
 public:
  DecodeConfig c;
  std::vector<int> seqlens;  // cache_seqlens
  int capacity = 0;          // positions per sequence
  HostTensor q, k_cache, v_cache, k_new, v_new, rot_cos, rot_sin, cache_seqlens, batch_idx, block_table, alibi;
  HostTensor out, lse;
  HostTensor k_cache_before, v_cache_before;
  // Oracle and baseline outputs: o (B, Sq, Hq, D), lse (B, Hq, Sq).
  std::vector<double> oracle_o, oracle_lse, base_o, base_lse;
  // Expected cache rows after the append: (b, i, h) -> exact rotated k, v.
  std::vector<double> new_k_exact, new_v_exact;

  DecodeCase(const DecodeConfig& cfg, std::mt19937_64& rng) : c(cfg) {
    const int B = c.batch, Hkv = c.heads_kv, D = c.head_dim;
    std::uniform_int_distribution<int> len(0, c.max_cache);
    seqlens = c.cache_seqlens;
    if (seqlens.empty())
      for (int b = 0; b < B; ++b) seqlens.push_back(len(rng));
    int longest = 0;
    for (int s : seqlens) longest = std::max(longest, s + c.seqlen_new);
    capacity = longest + 3;  // a little room past the longest sequence

    q = HostTensor(c.dtype, {B, c.seqlen_q, c.heads_q, D});
    q.fill_random(rng);
    cache_seqlens = HostTensor(DType::i32, {B});
    for (int b = 0; b < B; ++b) cache_seqlens.set(b, static_cast<float>(seqlens[b]));
    if (c.layout == DecodeConfig::Layout::paged) {
      const int bs = c.block_size, max_blocks = (capacity + bs - 1) / bs;
      capacity = max_blocks * bs;
      const int num_blocks = B * max_blocks + 5;
      k_cache = HostTensor(c.dtype, {num_blocks, bs, Hkv, D});
      v_cache = HostTensor(c.dtype, {num_blocks, bs, Hkv, D});
      std::vector<int> perm(static_cast<std::size_t>(num_blocks));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      block_table = HostTensor(DType::i32, {B, max_blocks});
      for (int i = 0; i < B * max_blocks; ++i) block_table.set(i, static_cast<float>(perm[i]));
    } else {
      const int rows = c.layout == DecodeConfig::Layout::batch_idx ? B + 3 : B;
      k_cache = HostTensor(c.dtype, {rows, capacity, Hkv, D}, 8);  // padded rows: strided views
      v_cache = HostTensor(c.dtype, {rows, capacity, Hkv, D});
      if (c.layout == DecodeConfig::Layout::batch_idx) {
        std::vector<int> perm(static_cast<std::size_t>(rows));
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        batch_idx = HostTensor(DType::i32, {B});
        for (int b = 0; b < B; ++b) batch_idx.set(b, static_cast<float>(perm[b]));
      }
    }
    k_cache.fill_random(rng);
    v_cache.fill_random(rng);
    k_cache_before = k_cache;
    v_cache_before = v_cache;
    if (c.seqlen_new > 0) {
      k_new = HostTensor(c.dtype, {B, c.seqlen_new, Hkv, D});
      v_new = HostTensor(c.dtype, {B, c.seqlen_new, Hkv, D});
      k_new.fill_random(rng);
      v_new.fill_random(rng);
    }
    if (c.rotary_dim > 0) {
      const int rows = capacity + c.seqlen_q + 4, half = c.rotary_dim / 2;
      const DType td = c.rotary_table_in_dtype ? c.dtype : DType::f32;
      rot_cos = HostTensor(td, {rows, half});
      rot_sin = HostTensor(td, {rows, half});
      for (int p = 0; p < rows; ++p)
        for (int i = 0; i < half; ++i) {
          const double th = p * std::pow(10000.0, -2.0 * i / c.rotary_dim);
          rot_cos.set(p * half + i, static_cast<float>(std::cos(th)));
          rot_sin.set(p * half + i, static_cast<float>(std::sin(th)));
        }
    }
    if (c.alibi) {
      alibi = HostTensor(DType::f32, {B, c.heads_q});
      alibi.fill_random(rng, 0.f, 0.5f);
    }
    out = HostTensor(c.dtype, {B, c.seqlen_q, c.heads_q, D});
    lse = HostTensor(DType::f32, {B, c.heads_q, c.seqlen_q});
    out.poison();
    lse.poison();
    build_expected();
  }

  KVCacheOptions options() const {
    KVCacheOptions o;
    o.causal = c.causal;
    o.window_left = c.window_left;
    o.window_right = c.window_right;
    o.softcap = c.softcap;
    o.rotary_interleaved = c.interleaved;
    o.num_splits = c.num_splits;
    return o;
  }

  // The call's arguments, with every tensor mapped through `view` (host or device mirror).
  void run(const std::function<TensorView(const HostTensor&)>& view, StreamHandle stream = nullptr) {
    KVCacheInputs in;
    in.cache_seqlens = view(cache_seqlens);
    if (c.seqlen_new > 0) in.k_new = view(k_new), in.v_new = view(v_new);
    if (c.rotary_dim > 0) in.rotary_cos = view(rot_cos), in.rotary_sin = view(rot_sin);
    if (c.layout == DecodeConfig::Layout::paged) in.block_table = view(block_table);
    if (c.layout == DecodeConfig::Layout::batch_idx) in.cache_batch_idx = view(batch_idx);
    KVCacheOptions o = options();
    if (c.alibi) o.alibi_slopes = view(alibi);
    forward_with_kvcache(view(q), view(k_cache), view(v_cache), in, view(out), c.with_lse ? view(lse) : TensorView{}, o,
                         stream);
  }

  // (block, row) of position pos of sequence b in the cache tensors.
  std::pair<int, int> where(int b, int pos) const {
    if (c.layout == DecodeConfig::Layout::paged) {
      const int mb = static_cast<int>(block_table.shape()[1]);
      return {static_cast<int>(block_table.get(b * mb + pos / c.block_size)), pos % c.block_size};
    }
    return {c.layout == DecodeConfig::Layout::batch_idx ? static_cast<int>(batch_idx.get(b)) : b, pos};
  }
  std::int64_t cache_index(int blk, int row, int h, int d) const {
    const auto& s = k_cache.shape();
    return ((static_cast<std::int64_t>(blk) * s[1] + row) * s[2] + h) * s[3] + d;
  }

  // The same logical problem over a contiguous cache (same inputs, the cache rows copied out
  // of this case's blocks), for checking that paged and contiguous outputs are bit-identical.
  DecodeCase contiguous_twin(std::mt19937_64& rng) const {
    DecodeConfig cc = c;
    cc.layout = DecodeConfig::Layout::contiguous;
    cc.cache_seqlens = seqlens;
    DecodeCase twin(cc, rng);
    twin.q = q, twin.k_new = k_new, twin.v_new = v_new, twin.alibi = alibi;
    twin.rot_cos = rot_cos, twin.rot_sin = rot_sin;
    for (int b = 0; b < c.batch; ++b)
      for (int pos = 0; pos < seqlens[b]; ++pos) {
        auto [blk, row] = where(b, pos);
        for (int h = 0; h < c.heads_kv; ++h)
          for (int d = 0; d < c.head_dim; ++d) {
            twin.k_cache.set(twin.cache_index(b, pos, h, d), k_cache.get(cache_index(blk, row, h, d)));
            twin.v_cache.set(twin.cache_index(b, pos, h, d), v_cache.get(cache_index(blk, row, h, d)));
          }
      }
    return twin;
  }

  // Checks the engine's results (out/lse and the cache after the append) against the oracle.
  void check(const std::string& where_) const {
    SCOPED_TRACE(where_ + " " + c.name());
    const Verdict vo = judge(out.to_double(), base_o, oracle_o, c.dtype, "out");
    EXPECT_TRUE(vo.ok) << vo.message << " engine_err=" << vo.engine_err << " baseline_err=" << vo.baseline_err;
    if (c.with_lse) {
      const Verdict vl = judge(lse.to_double(), base_lse, oracle_lse, DType::f32, "lse", 50.0);
      EXPECT_TRUE(vl.ok) << vl.message;
    }
    check_cache();
  }

  void check_cache() const {
    const int Hkv = c.heads_kv, D = c.head_dim;
    std::set<std::pair<int, int>> appended;
    const double eps = c.dtype == DType::bf16 ? 1.0 / 128 : (c.dtype == DType::f16 ? 1.0 / 1024 : 1e-6);
    int bad = 0;
    for (int b = 0; b < c.batch; ++b)
      for (int i = 0; i < c.seqlen_new; ++i) {
        auto [blk, row] = where(b, seqlens[b] + i);
        appended.insert({blk, row});
        for (int h = 0; h < Hkv; ++h)
          for (int d = 0; d < D; ++d) {
            const std::size_t e = ((static_cast<std::size_t>(b) * c.seqlen_new + i) * Hkv + h) * D + d;
            const double kx = new_k_exact[e], vx = new_v_exact[e];
            const double kg = k_cache.get(cache_index(blk, row, h, d)), vg = v_cache.get(cache_index(blk, row, h, d));
            if (std::abs(kg - kx) > eps * (std::abs(kx) + 1e-3) + 1e-6 || vg != vx) {
              if (bad++ < 3) ADD_FAILURE() << "appended row b=" << b << " i=" << i << " h=" << h << " d=" << d << ": k "
                                           << kg << " vs " << kx << ", v " << vg << " vs " << vx;
            }
          }
      }
    // Everything else is untouched.
    const auto& s = k_cache.shape();
    for (std::int64_t e = 0; e < k_cache.numel(); ++e) {
      const int row = static_cast<int>((e / (s[2] * s[3])) % s[1]), blk = static_cast<int>(e / (s[1] * s[2] * s[3]));
      if (appended.count({blk, row})) continue;
      if (k_cache.get(e) != k_cache_before.get(e) || v_cache.get(e) != v_cache_before.get(e)) {
        if (bad++ < 3) ADD_FAILURE() << "cache element " << e << " changed outside the appended rows";
      }
    }
    EXPECT_EQ(bad, 0);
  }

  // The oracle and baseline from the inputs as they are now (the constructor's; a test that
  // replaces inputs calls it again).
  void build_expected() {
    const int B = c.batch, Sq = c.seqlen_q, Hq = c.heads_q, Hkv = c.heads_kv, D = c.head_dim, n = c.seqlen_new;
    const bool per_token = c.causal || c.window_left >= 0 || c.window_right >= 0;
    auto rotate = [&](std::vector<double>& x, int pos) {
      const int half = c.rotary_dim / 2;
      for (int i = 0; i < half; ++i) {
        const int a = c.interleaved ? 2 * i : i, bb = c.interleaved ? 2 * i + 1 : i + half;
        const double co = rot_cos.get(pos * half + i), si = rot_sin.get(pos * half + i);
        const double x0 = x[a], x1 = x[bb];
        x[a] = x0 * co - x1 * si;
        x[bb] = x0 * si + x1 * co;
      }
    };
    std::vector<int> cu_q(B + 1, 0), cu_k(B + 1, 0);
    for (int b = 0; b < B; ++b) {
      cu_q[b + 1] = cu_q[b] + Sq;
      cu_k[b + 1] = cu_k[b] + seqlens[b] + n;
    }
    const int total_k = cu_k[B];
    // Exact (fp64 -> f32) and dtype-rounded dense tensors.
    HostTensor qx(DType::f32, {B * Sq, Hq, D}), qr(c.dtype, {B * Sq, Hq, D});
    HostTensor kx(DType::f32, {std::max(total_k, 1), Hkv, D}), kr(c.dtype, {std::max(total_k, 1), Hkv, D});
    HostTensor vx(DType::f32, {std::max(total_k, 1), Hkv, D}), vr(c.dtype, {std::max(total_k, 1), Hkv, D});
    std::vector<double> row(static_cast<std::size_t>(D));
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < Sq; ++t)
        for (int h = 0; h < Hq; ++h) {
          const std::int64_t base = ((static_cast<std::int64_t>(b) * Sq + t) * Hq + h) * D;
          for (int d = 0; d < D; ++d) row[d] = q.get(base + d);
          if (c.rotary_dim > 0) rotate(row, seqlens[b] + (per_token ? t : 0));
          for (int d = 0; d < D; ++d) qx.set(base + d, static_cast<float>(row[d])), qr.set(base + d, static_cast<float>(row[d]));
        }
    new_k_exact.assign(static_cast<std::size_t>(B) * n * Hkv * D, 0);
    new_v_exact.assign(new_k_exact.size(), 0);
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < seqlens[b] + n; ++j)
        for (int h = 0; h < Hkv; ++h) {
          const std::int64_t dst = (static_cast<std::int64_t>(cu_k[b] + j) * Hkv + h) * D;
          std::vector<double> vrow(static_cast<std::size_t>(D));
          if (j < seqlens[b]) {
            auto [blk, r] = where(b, j);
            for (int d = 0; d < D; ++d) row[d] = k_cache.get(cache_index(blk, r, h, d)), vrow[d] = v_cache.get(cache_index(blk, r, h, d));
          } else {
            const int i = j - seqlens[b];
            const std::int64_t src = ((static_cast<std::int64_t>(b) * n + i) * Hkv + h) * D;
            for (int d = 0; d < D; ++d) row[d] = k_new.get(src + d), vrow[d] = v_new.get(src + d);
            if (c.rotary_dim > 0) rotate(row, j);
            for (int d = 0; d < D; ++d) new_k_exact[src + d] = row[d], new_v_exact[src + d] = vrow[d];
          }
          for (int d = 0; d < D; ++d) {
            kx.set(dst + d, static_cast<float>(row[d])), kr.set(dst + d, static_cast<float>(row[d]));
            vx.set(dst + d, static_cast<float>(vrow[d])), vr.set(dst + d, static_cast<float>(vrow[d]));
          }
        }
    auto params = [&](const HostTensor& qq, const HostTensor& kk, const HostTensor& vv) {
      detail::AttentionParams p;
      p.q = qq.data(), p.k = kk.data(), p.v = vv.data();
      p.q_row_stride = Hq * D, p.q_head_stride = D;
      p.k_row_stride = p.v_row_stride = Hkv * D, p.k_head_stride = p.v_head_stride = D;
      p.batch = B, p.seqlen_q = Sq, p.seqlen_k = 0;
      for (int b = 0; b < B; ++b) p.seqlen_k = std::max(p.seqlen_k, cu_k[b + 1] - cu_k[b]);
      p.heads_q = Hq, p.heads_kv = Hkv, p.head_dim = D;
      p.cu_seqlens_q = cu_q.data(), p.cu_seqlens_k = cu_k.data();
      p.scale = 1.0f / std::sqrt(static_cast<float>(D));
      p.scale_log2 = p.scale * 1.4426950408889634f;
      p.causal = c.causal;
      p.window_left = c.window_left;
      p.window_right = c.causal ? 0 : c.window_right;
      p.softcap = c.softcap;
      if (c.alibi) p.alibi_slopes = static_cast<const float*>(alibi.data()), p.alibi_batch_stride = Hq;
      p.dtype = qq.dtype();
      return p;
    };
    const auto ro = detail::reference_forward(params(qx, kx, vx), detail::RefPrecision::fp64);
    const auto rb = detail::reference_forward(params(qr, kr, vr), detail::RefPrecision::input_dtype);
    oracle_o = ro.o;
    base_o = rb.o;
    // lse (Hq, total_q) -> (B, Hq, Sq)
    oracle_lse.assign(static_cast<std::size_t>(B) * Hq * Sq, 0);
    base_lse.assign(oracle_lse.size(), 0);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < Hq; ++h)
        for (int t = 0; t < Sq; ++t) {
          const std::size_t dst = (static_cast<std::size_t>(b) * Hq + h) * Sq + t;
          const std::size_t src = static_cast<std::size_t>(h) * B * Sq + b * Sq + t;
          oracle_lse[dst] = ro.lse[src];
          base_lse[dst] = rb.lse[src];
        }
  }
};

// Bitwise comparison of two engines' outputs of the same logical problem.
inline bool same_bits(const HostTensor& a, const HostTensor& b) {
  const auto x = a.to_double(), y = b.to_double();
  if (x.size() != y.size()) return false;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (!(x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i])))) return false;
  return true;
}

// Max |a - b| relative to the dtype's rounding; split and unsplit runs must agree within it.
inline double max_ulps_apart(const HostTensor& a, const HostTensor& b, DType t) {
  const double eps = t == DType::bf16 ? 1.0 / 256 : (t == DType::f16 ? 1.0 / 2048 : 1.2e-7);
  const auto x = a.to_double(), y = b.to_double();
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isinf(x[i]) && x[i] == y[i]) continue;
    worst = std::max(worst, std::abs(x[i] - y[i]) / (eps * std::max(1.0, std::abs(x[i]))));
  }
  return worst;
}

}  // namespace flashattn::testing
