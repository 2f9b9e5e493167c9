// CPU FlashAttention forward: one work item per (batch, head, 64-row q tile); K/V tiles
// stream through an online softmax, so S and P exist only as one 64 x 64 tile per worker.
// Reading fp32 V rows in place at their stride instead of copying the tile measured no
// faster (this 2-core VM, H = 4, N = 1024: d64 149-154 vs 152, d128 160-161 vs 163-165
// GFLOP/s): the copy's contiguous rows feed the micro-kernel better than 2 KiB-strided ones.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_engine.hpp"
#include "cpu/score_tile.hpp"
#include "cpu/scratch_stats.hpp"
#include "cpu/thread_pool.hpp"
#include "cpu/tile_loader.hpp"
#include "cpu/vector_math.hpp"
#include "cpu/work_list.hpp"

namespace flashattn::detail {
namespace {

constexpr int Br = kCpuBlockQ, Bc = kCpuBlockK;

struct ForwardScratch {
  std::vector<float> q, kt, v, s, keep, o, row_buf;
  std::vector<SoftmaxStats> stats;
  explicit ForwardScratch(int D)
      : q(Br * D), kt(D * Bc), v(Bc * D), s(Br * Bc), keep(Br * Bc), o(Br * D), row_buf(8 * D), stats(Br) {}
  static std::size_t bytes(int D) {
    return sizeof(float) * (Br * D + D * Bc + Bc * D + 2 * Br * Bc + Br * D + 8 * D) + sizeof(SoftmaxStats) * Br;
  }
};

void forward_tile(const AttentionParams& p, const WorkItem& w, ForwardScratch& sc) {
  const int D = p.head_dim;
  const int hk = w.h / (p.heads_q / p.heads_kv);
  const SeqGeometry g = seq_geometry(p, w.b);
  const int r0 = w.tile * Br, M = std::min(Br, g.seqlen_q - r0);
  const ScoreContext ctx(p, g, w.b, w.h);

  load_tile(p.q, p.dtype, [&](int r) { return q_offset(p, w.b, g.q_row0, r0 + r, w.h); }, M, M, D, sc.q.data(), D);
  std::fill(sc.o.begin(), sc.o.begin() + M * D, 0.f);
  for (int i = 0; i < M; ++i) sc.stats[i] = SoftmaxStats{};

  const KeyRange keys = ctx.mask.keys_of_rows(r0, r0 + M);
  for (int c0 = keys.lo / Bc * Bc; c0 < keys.hi; c0 += Bc) {
    const int N = std::min(Bc, g.seqlen_k - c0);
    const TileKind kind = classify_tile(ctx.mask, r0, r0 + M, c0, c0 + N);
    if (kind == TileKind::empty) continue;
    load_tile_transposed(p.k, p.dtype, [&](int r) { return k_offset(p, w.b, g.k_row0, c0 + r, hk); }, N, Bc, D,
                         sc.row_buf.data(), sc.kt.data(), Bc);
    load_tile(p.v, p.dtype, [&](int r) { return v_offset(p, w.b, g.k_row0, c0 + r, hk); }, N, Bc, D, sc.v.data(), D);

    gemm_nn(M, Bc, D, sc.q.data(), D, sc.kt.data(), Bc, sc.s.data(), Bc, false);
    scores_to_logits(sc.s.data(), M, r0, c0, N, kind == TileKind::full && N == Bc ? TileKind::full : TileKind::partial,
                     ctx, nullptr);
    if (p.dropout_p > 0.f) dropout_scale_tile(sc.keep.data(), M, r0, c0, ctx);

    for (int i = 0; i < M; ++i) {
      float* s = sc.s.data() + i * Bc;
      SoftmaxStats& st = sc.stats[i];
      const float factor = st.rescale_to(row_max(s, Bc));
      float* o = sc.o.data() + i * D;
      if (factor != 1.f)
        for (int d = 0; d < D; ++d) o[d] *= factor;
      if (st.m == -INFINITY) {  // nothing visible yet: P row is all zero
        std::fill(s, s + Bc, 0.f);
        continue;
      }
      st.l += exp2_sub_sum(s, st.m, s, Bc);  // s now holds P (unnormalised)
      if (p.dropout_p > 0.f)
        for (int j = 0; j < Bc; ++j) s[j] *= sc.keep[i * Bc + j];
    }
    gemm_nn(M, D, Bc, sc.s.data(), Bc, sc.v.data(), D, sc.o.data(), D, true);
  }

  for (int i = 0; i < M; ++i) {
    const SoftmaxStats& st = sc.stats[i];
    const float inv = st.inv_sum();
    float* o = sc.o.data() + i * D;
    for (int d = 0; d < D; ++d) o[d] *= inv;
    store_row(o, p.dtype, element_ptr(p.o, p.dtype, o_offset(p, w.b, g.q_row0, r0 + i, w.h)), D);
    if (p.lse) p.lse[lse_offset(p, w.b, g.q_row0, r0 + i, w.h)] = st.lse();
  }
}

}  // namespace

void cpu_forward(const AttentionParams& p) {
  ThreadPool& pool = ThreadPool::instance();
  const WorkList work(p, p.heads_q, Br, /*by_keys=*/false);
  std::vector<ForwardScratch> scratch;
  scratch.reserve(pool.size());
  for (int t = 0; t < pool.size(); ++t) scratch.emplace_back(p.head_dim);
  record_cpu_scratch({ForwardScratch::bytes(p.head_dim), pool.size(), 0});
  pool.parallel_for(work.size(), [&](std::int64_t item, int worker) { forward_tile(p, work[item], scratch[worker]); });
}

}  // namespace flashattn::detail
