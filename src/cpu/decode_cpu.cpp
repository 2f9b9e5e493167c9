// CPU decode engine: append (with rotary) into the cache, then attention of the new query
// tokens over the cache. Work items are (batch, kv head, split): all query heads of one KV
// head are processed together so each cached K/V row is converted to fp32 once per item.
// Keys are visited in tiles of kTile from the start of the visible range, split ranges are
// whole tiles (decode_split_range), and partial states are merged with SoftmaxStats::merge.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/logits_transform.hpp"
#include "core/mask.hpp"
#include "core/online_softmax.hpp"
#include "cpu/element_access.hpp"
#include "cpu/thread_pool.hpp"
#include "cpu/tile_loader.hpp"
#include "cpu/vector_math.hpp"
#include "inference/decode_engines.hpp"

namespace flashattn::detail {
namespace {

constexpr int kTile = 64;

float rotary_value(const DecodeParams& p, const void* table, int pos, int i) {
  pos = std::clamp(pos, 0, p.rotary_seqlen - 1);
  return load_f32(table, p.rotary_dtype, static_cast<std::int64_t>(pos) * p.rotary_row_stride + i);
}

// Rotates x[0, head_dim) in place (fp32) at table position pos.
void apply_rotary(const DecodeParams& p, float* x, int pos) {
  const int half = p.rotary_dim / 2;
  for (int i = 0; i < half; ++i) {
    const int a = p.rotary_interleaved ? 2 * i : i;
    const int b = p.rotary_interleaved ? 2 * i + 1 : i + half;
    const float c = rotary_value(p, p.rotary_cos, pos, i), s = rotary_value(p, p.rotary_sin, pos, i);
    const float x0 = x[a], x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
  }
}

void append_new_tokens(const DecodeParams& p) {
  const int D = p.head_dim;
  ThreadPool::instance().parallel_for(static_cast<std::int64_t>(p.batch) * p.seqlen_new, [&](std::int64_t item, int) {
    const int b = static_cast<int>(item / p.seqlen_new), i = static_cast<int>(item % p.seqlen_new);
    const int pos = std::max(p.cache_seqlens[b], 0) + i;
    if (pos >= p.k_rows.capacity()) return;
    std::vector<float> row(static_cast<std::size_t>(D));
    for (int h = 0; h < p.heads_kv; ++h) {
      const std::int64_t kn = b * p.kn_batch_stride + i * p.kn_row_stride + h * p.kn_head_stride;
      const std::int64_t vn = b * p.vn_batch_stride + i * p.vn_row_stride + h * p.vn_head_stride;
      for (int d = 0; d < D; ++d) row[d] = load_f32(p.k_new, p.dtype, kn + d);
      if (p.rotary_dim > 0) apply_rotary(p, row.data(), pos);
      const std::int64_t ko = p.k_rows.offset(b, pos, h), vo = p.v_rows.offset(b, pos, h);
      for (int d = 0; d < D; ++d) store_f32(p.k_cache, p.dtype, ko + d, row[d]);
      for (int d = 0; d < D; ++d) store_f32(p.v_cache, p.dtype, vo + d, load_f32(p.v_new, p.dtype, vn + d));
    }
  });
}

// Unnormalised output and statistics of every row of one item, rows r = t * group + g.
struct ItemState {
  std::vector<float> acc;  // rows x D
  std::vector<SoftmaxStats> stats;
};

void attend_item(const DecodeParams& p, int b, int kvh, int split, int splits, ItemState& st) {
  const int D = p.head_dim, group = p.heads_q / p.heads_kv, Sq = p.seqlen_q, rows = group * Sq;
  const int L = p.seqlen_k(b);
  st.acc.assign(static_cast<std::size_t>(rows) * D, 0.f);
  st.stats.assign(static_cast<std::size_t>(rows), SoftmaxStats{});
  const MaskBounds mb{Sq, L, p.window_left, p.window_right};
  const KeyRange all = mb.keys_of_rows(0, Sq);
  int k0, k1;
  decode_split_range(all.lo, all.hi, kTile, splits, split, k0, k1);
  if (k0 >= k1) return;

  // q rows after rotary, rounded to the input dtype as the GPU engine stores them.
  std::vector<float> q(static_cast<std::size_t>(rows) * D);
  std::vector<float> slope(static_cast<std::size_t>(rows), 0.f);
  for (int t = 0; t < Sq; ++t)
    for (int g = 0; g < group; ++g) {
      const int h = kvh * group + g, r = t * group + g;
      float* x = &q[static_cast<std::size_t>(r) * D];
      const std::int64_t qo = b * p.q_batch_stride + t * p.q_row_stride + h * p.q_head_stride;
      for (int d = 0; d < D; ++d) x[d] = load_f32(p.q, p.dtype, qo + d);
      if (p.rotary_dim > 0) {
        apply_rotary(p, x, rotary_q_position(p, b, t));
        for (int d = 0; d < D; ++d) x[d] = round_to(p.dtype, x[d]);
      }
      if (p.alibi_slopes) slope[r] = p.alibi_slopes[b * p.alibi_batch_stride + h];
    }

  std::vector<float> kt(static_cast<std::size_t>(kTile) * D), vt(static_cast<std::size_t>(kTile) * D);
  std::vector<float> s(static_cast<std::size_t>(kTile));
  const float* krow[kTile];
  const float* vrow[kTile];
  for (int c0 = k0; c0 < k1; c0 += kTile) {
    const int n = std::min(kTile, k1 - c0);
    // fp32 rows are read where they lie; fp16 / bf16 rows are converted once per tile.
    for (int j = 0; j < n; ++j) {
      const std::int64_t ko = p.k_rows.offset(b, c0 + j, kvh), vo = p.v_rows.offset(b, c0 + j, kvh);
      if (p.dtype == DType::f32) {
        krow[j] = static_cast<const float*>(p.k_cache) + ko;
        vrow[j] = static_cast<const float*>(p.v_cache) + vo;
      } else {
        float* kd = &kt[static_cast<std::size_t>(j) * D];
        float* vd = &vt[static_cast<std::size_t>(j) * D];
        convert_row(element_ptr(p.k_cache, p.dtype, ko), p.dtype, kd, D);
        convert_row(element_ptr(p.v_cache, p.dtype, vo), p.dtype, vd, D);
        krow[j] = kd, vrow[j] = vd;
      }
    }
    for (int r = 0; r < rows; ++r) {
      const int t = r / group;
      const KeyRange kr = mb.keys_of_row(t);
      const float* x = &q[static_cast<std::size_t>(r) * D];
      float tile_max = -INFINITY;
      for (int j = 0; j < n; ++j) {
        const int key = c0 + j;
        if (key < kr.lo || key >= kr.hi) {
          s[j] = -INFINITY;
          continue;
        }
        float logit = apply_scale_softcap(dot(x, krow[j], D), p.scale, p.softcap);
        if (p.alibi_slopes) logit += alibi_bias(slope[r], t, key, Sq, L);
        s[j] = logit * kLog2e;
        tile_max = std::max(tile_max, s[j]);
      }
      if (tile_max == -INFINITY) continue;
      SoftmaxStats& ss = st.stats[r];
      const float factor = ss.rescale_to(tile_max);
      float* acc = &st.acc[static_cast<std::size_t>(r) * D];
      if (factor != 1.f)
        for (int d = 0; d < D; ++d) acc[d] *= factor;
      for (int j = 0; j < n; ++j) {
        if (s[j] == -INFINITY) continue;
        const float e = exp2f(s[j] - ss.m);
        ss.l += e;
        const float* v = vrow[j];
        for (int d = 0; d < D; ++d) acc[d] += e * v[d];
      }
    }
  }
}

}  // namespace

void cpu_decode(const DecodeParams& p) {
  if (p.k_new != nullptr && p.seqlen_new > 0 && p.batch > 0) append_new_tokens(p);
  if (p.batch == 0 || p.seqlen_q == 0) return;
  const int D = p.head_dim, group = p.heads_q / p.heads_kv, Sq = p.seqlen_q, rows = group * Sq;
  const int splits = std::max(1, p.num_splits);
  const std::int64_t items = static_cast<std::int64_t>(p.batch) * p.heads_kv;

  // Partial states of every split, merged in a fixed order (split 0, 1, ...).
  std::vector<ItemState> parts(static_cast<std::size_t>(items * splits));
  ThreadPool::instance().parallel_for(items * splits, [&](std::int64_t it, int) {
    const int split = static_cast<int>(it % splits);
    const std::int64_t bh = it / splits;
    attend_item(p, static_cast<int>(bh / p.heads_kv), static_cast<int>(bh % p.heads_kv), split, splits,
                parts[static_cast<std::size_t>(it)]);
  });
  ThreadPool::instance().parallel_for(items, [&](std::int64_t bh, int) {
    const int b = static_cast<int>(bh / p.heads_kv), kvh = static_cast<int>(bh % p.heads_kv);
    ItemState& first = parts[static_cast<std::size_t>(bh * splits)];
    for (int sp = 1; sp < splits; ++sp) {
      const ItemState& other = parts[static_cast<std::size_t>(bh * splits + sp)];
      for (int r = 0; r < rows; ++r) {
        float fa, fb;
        first.stats[r].merge(other.stats[r], fa, fb);
        float* a = &first.acc[static_cast<std::size_t>(r) * D];
        const float* o = &other.acc[static_cast<std::size_t>(r) * D];
        for (int d = 0; d < D; ++d) a[d] = a[d] * fa + o[d] * fb;
      }
    }
    for (int r = 0; r < rows; ++r) {
      const int t = r / group, h = kvh * group + r % group;
      const float inv = first.stats[r].inv_sum();
      const float* a = &first.acc[static_cast<std::size_t>(r) * D];
      const std::int64_t oo = b * p.o_batch_stride + t * p.o_row_stride + h * p.o_head_stride;
      for (int d = 0; d < D; ++d) store_f32(p.o, p.dtype, oo + d, a[d] * inv);
      if (p.lse) p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + t * p.lse_row_stride] = first.stats[r].lse();
    }
  });
}

}  // namespace flashattn::detail
