// CPU FlashAttention backward. P is recomputed from the saved LSE, never stored.
//   preprocess: Drow = rowsum(dO * O) per (row, head), O(N) floats;
//   then one of two plans (backward_plan.hpp), both with one fixed reduction order:
//   two_pass: pass 1, one item per (batch, kv head, 64-key tile): dK and dV accumulate in
//             the worker's tile buffers over every q tile of every q head of the GQA group;
//             pass 2, one item per (batch, q head, 64-row q tile): dQ accumulates over kv tiles;
//   one pass: one item per (batch, kv head), or per key chunk of it when there are too few
//             of those for the workers: pass 1's walk over its key tiles, adding dS K into
//             fp32 dQ rows as it goes (five products per pair, not seven); chunks' rows are
//             summed in chunk order at the end.
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "cpu/backward_plan.hpp"
#include "cpu/cpu_engine.hpp"
#include "cpu/score_tile.hpp"
#include "cpu/scratch_stats.hpp"
#include "cpu/thread_pool.hpp"
#include "cpu/tile_loader.hpp"
#include "cpu/work_list.hpp"

namespace flashattn::detail {
namespace {

constexpr int Br = kCpuBlockQ, Bc = kCpuBlockK;

struct BackwardScratch {
  std::vector<float> q, dout, kt, vt, k, s, t, dp, keep, pt, dst, acc_a, acc_b, row_buf, lse2, drow;
  explicit BackwardScratch(int D)
      : q(Br * D), dout(Br * D), kt(D * Bc), vt(D * Bc), k(Bc * D), s(Br * Bc), t(Br * Bc), dp(Br * Bc),
        keep(Br * Bc), pt(Bc * Br), dst(Bc * Br), acc_a(std::max(Br, Bc) * D), acc_b(Bc * D), row_buf(8 * D),
        lse2(Br), drow(Br) {}
  static std::size_t bytes(int D) {
    return sizeof(float) * (2 * Br * D + 2 * D * Bc + Bc * D + 4 * Br * Bc + 2 * Bc * Br + std::max(Br, Bc) * D +
                            Bc * D + 8 * D + 2 * Br);
  }
};

struct Problem {
  const AttentionParams& p;
  const float* drow;  // (heads_q, rows) laid out as row_index(b, i) * heads_q + h
  std::vector<std::int64_t> row_base;  // first row of each sequence in drow

  std::int64_t drow_index(int b, int i, int h) const { return (row_base[b] + i) * p.heads_q + h; }
};

// Loads the q-side tiles of (b, h, rows r0..r0+M): Q, dO, LSE (base 2) and Drow. The copies
// are repeated for every kv tile of pass 1, but reading fp32 rows in place instead (row stride
// H * D) measured no faster (this 2-core VM, d128, H = 4, N = 1-2k: 58-61 vs 60-61 GFLOP/s):
// the four products of a pair then read strided rows instead of one contiguous tile.
void load_q_side(const Problem& pr, int b, int h, const SeqGeometry& g, int r0, int M, BackwardScratch& sc) {
  const AttentionParams& p = pr.p;
  const int D = p.head_dim;
  load_tile(p.q, p.dtype, [&](int r) { return q_offset(p, b, g.q_row0, r0 + r, h); }, M, M, D, sc.q.data(), D);
  load_tile(p.dout, p.dtype, [&](int r) { return do_offset(p, b, g.q_row0, r0 + r, h); }, M, M, D, sc.dout.data(), D);
  for (int i = 0; i < M; ++i) {
    sc.lse2[i] = p.lse[lse_offset(p, b, g.q_row0, r0 + i, h)] * kLog2e;
    sc.drow[i] = pr.drow[pr.drow_index(b, r0 + i, h)];
  }
}

// Recomputes P (into s) and dS (into dp) for a (q tile, kv tile) pair whose q side and
// kt / vt are loaded. dS is with respect to the raw q.k (scale and softcap folded in).
void recompute_tile(const Problem& pr, const ScoreContext& ctx, int r0, int M, int c0, int N, TileKind kind,
                    BackwardScratch& sc) {
  const AttentionParams& p = pr.p;
  const int D = p.head_dim;
  const bool capped = p.softcap > 0.f;
  gemm_nn(M, Bc, D, sc.q.data(), D, sc.kt.data(), Bc, sc.s.data(), Bc, false);
  scores_to_logits(sc.s.data(), M, r0, c0, N, kind == TileKind::full && N == Bc ? TileKind::full : TileKind::partial,
                   ctx, capped ? sc.t.data() : nullptr);
  for (int i = 0; i < M; ++i) {
    float* s = sc.s.data() + i * Bc;
    if (sc.lse2[i] == -INFINITY) std::fill(s, s + Bc, 0.f);
    else exp2_sub_sum(s, sc.lse2[i], s, Bc);  // P
  }
  gemm_nn(M, Bc, D, sc.dout.data(), D, sc.vt.data(), Bc, sc.dp.data(), Bc, false);  // dP (of dropped P)
  if (p.dropout_p > 0.f) dropout_scale_tile(sc.keep.data(), M, r0, c0, ctx);
  for (int i = 0; i < M; ++i) {
    const float* P = sc.s.data() + i * Bc;
    float* dp = sc.dp.data() + i * Bc;
    const float* keep = sc.keep.data() + i * Bc;
    const float* t = sc.t.data() + i * Bc;
    const float dr = sc.drow[i];
    for (int j = 0; j < Bc; ++j) {
      const float dpj = p.dropout_p > 0.f ? dp[j] * keep[j] : dp[j];
      const float grad = capped ? p.scale * (1.f - t[j] * t[j]) : p.scale;
      dp[j] = P[j] * (dpj - dr) * grad;
    }
  }
}

// dK and dV of key tile c0 (N keys) of kv head hk, over every q tile of the GQA group's
// heads, stored to the outputs. With dq_rows (one_pass), also dQ += dS K into the fp32 rows
// of the group's heads: dq_rows[(h - first head) * seqlen_q + row][D].
void kv_tile_gradients(const Problem& pr, int b, int hk, const SeqGeometry& g, int c0, BackwardScratch& sc,
                       float* dq_rows) {
  const AttentionParams& p = pr.p;
  const int D = p.head_dim, group = p.heads_q / p.heads_kv;
  const int N = std::min(Bc, g.seqlen_k - c0);
  const auto k_row = [&](int r) { return k_offset(p, b, g.k_row0, c0 + r, hk); };
  load_tile_transposed(p.k, p.dtype, k_row, N, Bc, D, sc.row_buf.data(), sc.kt.data(), Bc);
  load_tile_transposed(p.v, p.dtype, [&](int r) { return v_offset(p, b, g.k_row0, c0 + r, hk); }, N, Bc, D,
                       sc.row_buf.data(), sc.vt.data(), Bc);
  if (dq_rows) load_tile(p.k, p.dtype, k_row, N, Bc, D, sc.k.data(), D);
  float* dk = sc.acc_a.data();
  float* dv = sc.acc_b.data();
  std::fill(dk, dk + Bc * D, 0.f);
  std::fill(dv, dv + Bc * D, 0.f);
  const MaskBounds mb{g.seqlen_q, g.seqlen_k, p.window_left, p.window_right};
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    const ScoreContext ctx(p, g, b, h);
    for (int r0 = 0; r0 < g.seqlen_q; r0 += Br) {
      const int M = std::min(Br, g.seqlen_q - r0);
      const TileKind kind = classify_tile(mb, r0, r0 + M, c0, c0 + N);
      if (kind == TileKind::empty) continue;
      load_q_side(pr, b, h, g, r0, M, sc);
      recompute_tile(pr, ctx, r0, M, c0, N, kind, sc);
      // dQ += dS K (before dS is transposed; rows past M are not touched).
      if (dq_rows)
        gemm_nn(M, D, Bc, sc.dp.data(), Bc, sc.k.data(), D,
                dq_rows + (std::size_t(h - hk * group) * g.seqlen_q + r0) * D, D, true);
      // dV += (P * keep)^T dO ; dK += dS^T Q.
      if (p.dropout_p > 0.f)
        for (int i = 0; i < M * Bc; ++i) sc.s[i] *= sc.keep[i];
      transpose(M, Bc, sc.s.data(), Bc, sc.pt.data(), Br);
      transpose(M, Bc, sc.dp.data(), Bc, sc.dst.data(), Br);
      gemm_nn(Bc, D, M, sc.pt.data(), Br, sc.dout.data(), D, dv, D, true);
      gemm_nn(Bc, D, M, sc.dst.data(), Br, sc.q.data(), D, dk, D, true);
    }
  }
  for (int j = 0; j < N; ++j) {
    store_row(dk + j * D, p.dtype, element_ptr(p.dk, p.dtype, dk_offset(p, b, g.k_row0, c0 + j, hk)), D);
    store_row(dv + j * D, p.dtype, element_ptr(p.dv, p.dtype, dv_offset(p, b, g.k_row0, c0 + j, hk)), D);
  }
}

// One pass over key tiles [t_lo, t_hi) of (b, hk): dK / dV stored, dS K added into dq_rows
// (group x seqlen_q x D floats, zeroed here).
void kv_range_gradients(const Problem& pr, int b, int hk, int t_lo, int t_hi, BackwardScratch& sc, float* dq_rows) {
  const AttentionParams& p = pr.p;
  const SeqGeometry g = seq_geometry(p, b);
  std::fill(dq_rows, dq_rows + std::size_t(p.heads_q / p.heads_kv) * g.seqlen_q * p.head_dim, 0.f);
  for (int t = t_lo; t < t_hi; ++t) kv_tile_gradients(pr, b, hk, g, t * Bc, sc, dq_rows);
}

// dQ of (b, head h) from `parts` fp32 row sets (one per key chunk of its kv head), summed in
// chunk order: row i of the group's j-th head sits at (j * seqlen_q + i) * D of each set.
void store_dq(const Problem& pr, int b, int h, const float* parts, int n_parts, std::size_t part_stride,
              float* row_buf) {
  const AttentionParams& p = pr.p;
  const int D = p.head_dim, group = p.heads_q / p.heads_kv;
  const SeqGeometry g = seq_geometry(p, b);
  for (int i = 0; i < g.seqlen_q; ++i) {
    const std::size_t off = (std::size_t(h % group) * g.seqlen_q + i) * D;
    const float* row = parts + off;
    if (n_parts > 1) {
      std::copy(row, row + D, row_buf);
      for (int c = 1; c < n_parts; ++c) {
        const float* add = parts + c * part_stride + off;
        for (int x = 0; x < D; ++x) row_buf[x] += add[x];
      }
      row = row_buf;
    }
    store_row(row, p.dtype, element_ptr(p.dq, p.dtype, dq_offset(p, b, g.q_row0, i, h)), D);
  }
}

void dq_tile(const Problem& pr, const WorkItem& w, BackwardScratch& sc) {
  const AttentionParams& p = pr.p;
  const int D = p.head_dim, hk = w.h / (p.heads_q / p.heads_kv);
  const SeqGeometry g = seq_geometry(p, w.b);
  const int r0 = w.tile * Br, M = std::min(Br, g.seqlen_q - r0);
  const ScoreContext ctx(p, g, w.b, w.h);
  load_q_side(pr, w.b, w.h, g, r0, M, sc);
  float* dq = sc.acc_a.data();
  std::fill(dq, dq + M * D, 0.f);
  const KeyRange keys = ctx.mask.keys_of_rows(r0, r0 + M);
  for (int c0 = keys.lo / Bc * Bc; c0 < keys.hi; c0 += Bc) {
    const int N = std::min(Bc, g.seqlen_k - c0);
    const TileKind kind = classify_tile(ctx.mask, r0, r0 + M, c0, c0 + N);
    if (kind == TileKind::empty) continue;
    load_tile_transposed(p.k, p.dtype, [&](int r) { return k_offset(p, w.b, g.k_row0, c0 + r, hk); }, N, Bc, D,
                         sc.row_buf.data(), sc.kt.data(), Bc);
    load_tile_transposed(p.v, p.dtype, [&](int r) { return v_offset(p, w.b, g.k_row0, c0 + r, hk); }, N, Bc, D,
                         sc.row_buf.data(), sc.vt.data(), Bc);
    load_tile(p.k, p.dtype, [&](int r) { return k_offset(p, w.b, g.k_row0, c0 + r, hk); }, N, Bc, D, sc.k.data(), D);
    recompute_tile(pr, ctx, r0, M, c0, N, kind, sc);
    gemm_nn(M, D, Bc, sc.dp.data(), Bc, sc.k.data(), D, dq, D, true);
  }
  for (int i = 0; i < M; ++i)
    store_row(dq + i * D, p.dtype, element_ptr(p.dq, p.dtype, dq_offset(p, w.b, g.q_row0, r0 + i, w.h)), D);
}

}  // namespace

void cpu_backward(const AttentionParams& p) {
  ThreadPool& pool = ThreadPool::instance();
  const BackwardPlan plan = choose_backward_plan(p, pool.size());  // may throw: before any write
  const int D = p.head_dim;
  Problem pr{p, nullptr, {}};
  pr.row_base.push_back(0);
  for (int b = 0; b < p.batch; ++b) pr.row_base.push_back(pr.row_base.back() + seq_geometry(p, b).seqlen_q);
  std::vector<float> drow(static_cast<std::size_t>(pr.row_base.back()) * p.heads_q);
  pr.drow = drow.data();

  // Drow = rowsum(dO * O), per (batch, q-row tile) item over all heads.
  const WorkList rows(p, 1, Br, false);
  pool.parallel_for(rows.size(), [&](std::int64_t item, int) {
    const WorkItem w = rows[item];
    const SeqGeometry g = seq_geometry(p, w.b);
    std::vector<float> o(D), d(D);
    for (int i = w.tile * Br; i < std::min(g.seqlen_q, (w.tile + 1) * Br); ++i)
      for (int h = 0; h < p.heads_q; ++h) {
        convert_row(element_ptr(p.o, p.dtype, o_offset(p, w.b, g.q_row0, i, h)), p.dtype, o.data(), D);
        convert_row(element_ptr(p.dout, p.dtype, do_offset(p, w.b, g.q_row0, i, h)), p.dtype, d.data(), D);
        float acc = 0.f;
        for (int x = 0; x < D; ++x) acc += o[x] * d[x];
        drow[pr.drow_index(w.b, i, h)] = acc;
      }
  });

  std::vector<BackwardScratch> scratch;
  scratch.reserve(pool.size());
  for (int t = 0; t < pool.size(); ++t) scratch.emplace_back(D);

  if (plan.pass == BackwardPass::one) {
    const std::size_t item_floats = one_pass_dq_bytes(p) / sizeof(float);
    const int group = p.heads_q / p.heads_kv, chunks = plan.kv_chunks;
    const std::int64_t items = std::int64_t(p.batch) * p.heads_kv;
    if (chunks == 1) {  // whole (batch, kv head) items: each worker's own dQ rows, stored at once
      // Uninitialised: kv_range_gradients zeroes the rows each item uses.
      std::vector<std::unique_ptr<float[]>> dq_rows(pool.size());
      for (auto& rows : dq_rows) rows.reset(new float[item_floats]);
      pool.parallel_for(items, [&](std::int64_t item, int worker) {
        const int b = static_cast<int>(item / p.heads_kv), hk = static_cast<int>(item % p.heads_kv);
        const int tiles = (seq_geometry(p, b).seqlen_k + Bc - 1) / Bc;
        kv_range_gradients(pr, b, hk, 0, tiles, scratch[worker], dq_rows[worker].get());
        for (int h = hk * group; h < (hk + 1) * group; ++h)
          store_dq(pr, b, h, dq_rows[worker].get(), 1, 0, nullptr);
      });
      record_cpu_scratch({BackwardScratch::bytes(D), pool.size(), drow.size() * sizeof(float),
                          pool.size() * item_floats * sizeof(float)});
      return;
    }
    // Key chunks: every (item, chunk) has its own dQ rows; the chunks are summed in order after.
    const std::size_t parts_floats = std::size_t(items) * chunks * item_floats;
    const std::unique_ptr<float[]> parts(new float[parts_floats]);  // each chunk zeroes its own rows
    pool.parallel_for(items * chunks, [&](std::int64_t i, int worker) {
      const std::int64_t item = i / chunks;
      const int c = static_cast<int>(i % chunks);
      const int b = static_cast<int>(item / p.heads_kv), hk = static_cast<int>(item % p.heads_kv);
      const int tiles = (seq_geometry(p, b).seqlen_k + Bc - 1) / Bc;
      kv_range_gradients(pr, b, hk, static_cast<int>(std::int64_t(tiles) * c / chunks),
                         static_cast<int>(std::int64_t(tiles) * (c + 1) / chunks), scratch[worker],
                         parts.get() + std::size_t(i) * item_floats);
    });
    pool.parallel_for(std::int64_t(p.batch) * p.heads_q, [&](std::int64_t i, int worker) {
      const int b = static_cast<int>(i / p.heads_q), h = static_cast<int>(i % p.heads_q);
      const std::int64_t item = std::int64_t(b) * p.heads_kv + h / group;
      store_dq(pr, b, h, parts.get() + std::size_t(item) * chunks * item_floats, chunks, item_floats,
               scratch[worker].row_buf.data());
    });
    record_cpu_scratch(
        {BackwardScratch::bytes(D), pool.size(), drow.size() * sizeof(float), parts_floats * sizeof(float)});
    return;
  }
  record_cpu_scratch({BackwardScratch::bytes(D), pool.size(), drow.size() * sizeof(float), 0});
  const WorkList kv_tiles(p, p.heads_kv, Bc, /*by_keys=*/true);
  pool.parallel_for(kv_tiles.size(), [&](std::int64_t item, int worker) {
    const WorkItem w = kv_tiles[item];
    kv_tile_gradients(pr, w.b, w.h, seq_geometry(p, w.b), w.tile * Bc, scratch[worker], nullptr);
  });
  const WorkList q_tiles(p, p.heads_q, Br, /*by_keys=*/false);
  pool.parallel_for(q_tiles.size(), [&](std::int64_t item, int worker) { dq_tile(pr, q_tiles[item], scratch[worker]); });
}

}  // namespace flashattn::detail
