// Score-tile hooks of the CPU engine, shared by forward and backward: raw dot products
// -> base-2 logits (scale, softcap, ALiBi, causal/window mask, sequence end), and the
// dropout keep mask. Full tiles skip the per-element mask.
#pragma once

#include <cmath>

#include "core/attention_params.hpp"
#include "core/logits_transform.hpp"
#include "core/mask.hpp"
#include "core/online_softmax.hpp"
#include "core/philox.hpp"
#include "cpu/tile_config.hpp"
#include "cpu/vector_math.hpp"

namespace flashattn::detail {

struct ScoreContext {
  const AttentionParams& p;
  MaskBounds mask;
  float alibi_slope;  // of this (batch, head); 0 = off
  DropoutRng rng;
  int bh;  // batch * heads_q + head, the dropout counter's head word

  ScoreContext(const AttentionParams& prm, const SeqGeometry& g, int b, int h)
      : p(prm),
        mask{g.seqlen_q, g.seqlen_k, prm.window_left, prm.window_right},
        alibi_slope(prm.alibi_slopes ? prm.alibi_slopes[b * prm.alibi_batch_stride + h] : 0.f),
        rng(make_dropout_rng(prm.seed, prm.offset, prm.dropout_p)),
        bh(b * prm.heads_q + h) {}
};

// S (M x kCpuBlockK): raw q.k for rows r0.. and keys c0..c0+N. In place -> base-2 logits.
// With softcap, `tanh_out` (same layout, may be null) receives tanh(scale*s/softcap).
inline void scores_to_logits(float* S, int M, int r0, int c0, int N, TileKind kind, const ScoreContext& ctx,
                             float* tanh_out) {
  constexpr int ld = kCpuBlockK;
  const AttentionParams& p = ctx.p;
  for (int i = 0; i < M; ++i) {
    float* s = S + i * ld;
    if (p.softcap > 0.f) {
      const float k = p.scale / p.softcap;
      for (int j = 0; j < ld; ++j) s[j] *= k;
      tanh_inplace(s, ld);
      if (tanh_out)
        for (int j = 0; j < ld; ++j) tanh_out[i * ld + j] = s[j];
      const float c = p.softcap * kLog2e;
      for (int j = 0; j < ld; ++j) s[j] *= c;
    } else {
      for (int j = 0; j < ld; ++j) s[j] *= p.scale_log2;
    }
    if (p.alibi_slopes) {
      for (int j = 0; j < N; ++j)
        s[j] += kLog2e * alibi_bias(ctx.alibi_slope, r0 + i, c0 + j, ctx.mask.seqlen_q, ctx.mask.seqlen_k);
    }
    if (kind != TileKind::full) {
      const KeyRange r = ctx.mask.keys_of_row(r0 + i);
      for (int j = 0; j < ld; ++j) {
        const int col = c0 + j;
        if (j >= N || col < r.lo || col >= r.hi) s[j] = -INFINITY;
      }
    }
  }
}

// keep[i][j] = 1/(1-p) or 0 for the tile's (row, key) pairs.
inline void dropout_scale_tile(float* keep, int M, int r0, int c0, const ScoreContext& ctx) {
  constexpr int ld = kCpuBlockK;
  const float rp = 1.f / (1.f - ctx.p.dropout_p);
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < ld; j += 4) {
      const Philox4 w = ctx.rng.words(ctx.bh, r0 + i, c0 + j);
      for (int t = 0; t < 4; ++t) keep[i * ld + j + t] = ctx.rng.keep_word(w.x[t]) ? rp : 0.f;
    }
}

}  // namespace flashattn::detail
