#include "cpu/reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/logits_transform.hpp"
#include "core/mask.hpp"
#include "core/philox.hpp"
#include "cpu/element_access.hpp"

namespace flashattn::detail {
namespace {

std::int64_t rows_in(const AttentionParams& p, const int* cu, int fixed_seqlen) {
  if (p.is_varlen()) return cu[p.batch];
  return static_cast<std::int64_t>(p.batch) * fixed_seqlen;
}

// One (batch, q-head) problem in plain matrices, computed in T with `rnd` applied where
// standard attention materialises a tensor.
template <typename T>
struct NaiveHead {
  const AttentionParams& p;
  RefPrecision prec;
  int b, h, hk;
  SeqGeometry g;
  int Sq, Sk, D;
  std::vector<T> Q, K, V, S, P, keep;  // keep: dropout mask scaled by 1/(1-p), or 1
  std::vector<bool> visible;

  NaiveHead(const AttentionParams& prm, RefPrecision pr, int b_, int h_)
      : p(prm), prec(pr), b(b_), h(h_), hk(h_ / (prm.heads_q / prm.heads_kv)), g(seq_geometry(prm, b_)),
        Sq(g.seqlen_q), Sk(g.seqlen_k), D(prm.head_dim) {}

  T rnd(T x) const {
    if (prec == RefPrecision::fp64) return x;
    return static_cast<T>(round_to(p.dtype, static_cast<float>(x)));
  }

  void load_inputs() {
    Q.resize(std::size_t(Sq) * D);
    K.resize(std::size_t(Sk) * D);
    V.resize(std::size_t(Sk) * D);
    for (int i = 0; i < Sq; ++i)
      for (int d = 0; d < D; ++d) Q[std::size_t(i) * D + d] = load_f32(p.q, p.dtype, q_offset(p, b, g.q_row0, i, h) + d);
    for (int j = 0; j < Sk; ++j)
      for (int d = 0; d < D; ++d) {
        K[std::size_t(j) * D + d] = load_f32(p.k, p.dtype, k_offset(p, b, g.k_row0, j, hk) + d);
        V[std::size_t(j) * D + d] = load_f32(p.v, p.dtype, v_offset(p, b, g.k_row0, j, hk) + d);
      }
  }

  // S (logits after scale, softcap, ALiBi; -inf where masked), P = softmax(S), keep.
  void scores_and_probs(std::vector<T>& lse_row) {
    const MaskBounds mb{Sq, Sk, p.window_left, p.window_right};
    const T slope = p.alibi_slopes ? T(p.alibi_slopes[b * p.alibi_batch_stride + h]) : T(0);
    const DropoutRng rng = make_dropout_rng(p.seed, p.offset, p.dropout_p);
    const int bh = b * p.heads_q + h;
    S.assign(std::size_t(Sq) * Sk, -std::numeric_limits<T>::infinity());
    P.assign(std::size_t(Sq) * Sk, T(0));
    keep.assign(std::size_t(Sq) * Sk, T(1));
    lse_row.assign(Sq, -std::numeric_limits<T>::infinity());
    for (int i = 0; i < Sq; ++i) {
      const KeyRange r = mb.keys_of_row(i);
      T mx = -std::numeric_limits<T>::infinity();
      for (int j = r.lo; j < r.hi; ++j) {
        T dot = 0;
        for (int d = 0; d < D; ++d) dot += Q[std::size_t(i) * D + d] * K[std::size_t(j) * D + d];
        T s = apply_scale_softcap<T>(dot, T(p.scale), T(p.softcap));
        if (p.alibi_slopes) s += alibi_bias<T>(slope, i, j, Sq, Sk);
        s = rnd(s);
        S[std::size_t(i) * Sk + j] = s;
        mx = std::max(mx, s);
      }
      if (r.lo >= r.hi) continue;  // no visible key: P = 0, lse = -inf
      T sum = 0;
      for (int j = r.lo; j < r.hi; ++j) sum += std::exp(S[std::size_t(i) * Sk + j] - mx);
      lse_row[i] = mx + std::log(sum);
      for (int j = r.lo; j < r.hi; ++j) P[std::size_t(i) * Sk + j] = rnd(std::exp(S[std::size_t(i) * Sk + j] - mx) / sum);
      if (p.dropout_p > 0.f)
        for (int j = 0; j < Sk; ++j)
          keep[std::size_t(i) * Sk + j] = rng.keep(bh, i, j) ? T(1) / (T(1) - T(p.dropout_p)) : T(0);
    }
  }
};

template <typename T>
ReferenceForward forward_t(const AttentionParams& p, RefPrecision prec) {
  ReferenceForward out;
  const std::int64_t rows_q = rows_in(p, p.cu_seqlens_q, p.seqlen_q);
  out.o.assign(std::size_t(rows_q) * p.heads_q * p.head_dim, 0.0);
  out.lse.assign(std::size_t(rows_q) * p.heads_q, -INFINITY);
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.heads_q; ++h) {
      NaiveHead<T> nh(p, prec, b, h);
      nh.load_inputs();
      std::vector<T> lse;
      nh.scores_and_probs(lse);
      const std::int64_t row_base = p.is_varlen() ? nh.g.q_row0 : std::int64_t(b) * p.seqlen_q;
      std::vector<T> acc(nh.D);
      for (int i = 0; i < nh.Sq; ++i) {
        std::fill(acc.begin(), acc.end(), T(0));
        for (int j = 0; j < nh.Sk; ++j) {
          const T pd = nh.rnd(nh.P[std::size_t(i) * nh.Sk + j] * nh.keep[std::size_t(i) * nh.Sk + j]);
          if (pd == T(0)) continue;
          const T* vr = &nh.V[std::size_t(j) * nh.D];
          for (int d = 0; d < nh.D; ++d) acc[d] += pd * vr[d];
        }
        for (int d = 0; d < nh.D; ++d) out.o[((row_base + i) * p.heads_q + h) * p.head_dim + d] = nh.rnd(acc[d]);
        const std::int64_t li = p.is_varlen() ? std::int64_t(h) * rows_q + row_base + i
                                              : (std::int64_t(b) * p.heads_q + h) * p.seqlen_q + i;
        out.lse[li] = lse[i];
      }
    }
  return out;
}

template <typename T>
ReferenceBackward backward_t(const AttentionParams& p, RefPrecision prec) {
  ReferenceBackward out;
  const std::int64_t rows_q = rows_in(p, p.cu_seqlens_q, p.seqlen_q);
  const std::int64_t rows_k = rows_in(p, p.cu_seqlens_k, p.seqlen_k);
  const int D = p.head_dim;
  out.dq.assign(std::size_t(rows_q) * p.heads_q * D, 0.0);
  out.dk.assign(std::size_t(rows_k) * p.heads_kv * D, 0.0);
  out.dv.assign(std::size_t(rows_k) * p.heads_kv * D, 0.0);
  // GQA: dK, dV accumulate over the group; round once at the end like a per-head
  // computation followed by a sum would not, but the sum itself is done in T.
  std::vector<T> dk_acc(out.dk.size(), T(0)), dv_acc(out.dv.size(), T(0));
  for (int b = 0; b < p.batch; ++b)
    for (int h = 0; h < p.heads_q; ++h) {
      NaiveHead<T> nh(p, prec, b, h);
      nh.load_inputs();
      std::vector<T> lse;
      nh.scores_and_probs(lse);
      const int Sq = nh.Sq, Sk = nh.Sk;
      std::vector<T> dO(std::size_t(Sq) * D), O(std::size_t(Sq) * D, T(0));
      for (int i = 0; i < Sq; ++i)
        for (int d = 0; d < D; ++d) dO[std::size_t(i) * D + d] = load_f32(p.dout, p.dtype, do_offset(p, b, nh.g.q_row0, i, h) + d);
      // O in T (recomputed, not read from the engine).
      for (int i = 0; i < Sq; ++i)
        for (int j = 0; j < Sk; ++j) {
          const T pd = nh.P[std::size_t(i) * Sk + j] * nh.keep[std::size_t(i) * Sk + j];
          if (pd == T(0)) continue;
          for (int d = 0; d < D; ++d) O[std::size_t(i) * D + d] += pd * nh.V[std::size_t(j) * D + d];
        }
      for (auto& x : O) x = nh.rnd(x);
      // Drow_i = rowsum(dO * O).
      std::vector<T> Drow(Sq, T(0));
      for (int i = 0; i < Sq; ++i)
        for (int d = 0; d < D; ++d) Drow[i] += dO[std::size_t(i) * D + d] * O[std::size_t(i) * D + d];
      // dP = (dO V^T) * keep; dS = P * (dP - Drow) * d(logit)/d(q.k).
      std::vector<T> dS(std::size_t(Sq) * Sk, T(0));
      for (int i = 0; i < Sq; ++i)
        for (int j = 0; j < Sk; ++j) {
          const T pij = nh.P[std::size_t(i) * Sk + j];
          if (pij == T(0)) continue;
          T dp = 0;
          for (int d = 0; d < D; ++d) dp += dO[std::size_t(i) * D + d] * nh.V[std::size_t(j) * D + d];
          dp = nh.rnd(dp) * nh.keep[std::size_t(i) * Sk + j];
          T ds = pij * (dp - Drow[i]);
          T s = nh.S[std::size_t(i) * Sk + j];
          if (p.alibi_slopes) s -= alibi_bias<T>(T(p.alibi_slopes[b * p.alibi_batch_stride + h]), i, j, Sq, Sk);
          dS[std::size_t(i) * Sk + j] = nh.rnd(ds * scale_softcap_grad<T>(s, T(p.scale), T(p.softcap)));
        }
      const std::int64_t qbase = p.is_varlen() ? nh.g.q_row0 : std::int64_t(b) * p.seqlen_q;
      const std::int64_t kbase = p.is_varlen() ? nh.g.k_row0 : std::int64_t(b) * p.seqlen_k;
      std::vector<T> acc(D), ak(D), av(D);
      for (int i = 0; i < Sq; ++i) {
        std::fill(acc.begin(), acc.end(), T(0));
        for (int j = 0; j < Sk; ++j) {
          const T ds = dS[std::size_t(i) * Sk + j];
          if (ds == T(0)) continue;
          const T* kr = &nh.K[std::size_t(j) * D];
          for (int d = 0; d < D; ++d) acc[d] += ds * kr[d];
        }
        for (int d = 0; d < D; ++d) out.dq[((qbase + i) * p.heads_q + h) * D + d] = nh.rnd(acc[d]);
      }
      // dK_j = sum_i dS_ij Q_i and dV_j = sum_i Pdrop_ij dO_i, accumulated row by row of i.
      for (int j = 0; j < Sk; ++j) {
        std::fill(ak.begin(), ak.end(), T(0));
        std::fill(av.begin(), av.end(), T(0));
        for (int i = 0; i < Sq; ++i) {
          const T ds = dS[std::size_t(i) * Sk + j];
          const T pd = nh.rnd(nh.P[std::size_t(i) * Sk + j] * nh.keep[std::size_t(i) * Sk + j]);
          if (ds == T(0) && pd == T(0)) continue;
          const T* qr = &nh.Q[std::size_t(i) * D];
          const T* dor = &dO[std::size_t(i) * D];
          for (int d = 0; d < D; ++d) {
            ak[d] += ds * qr[d];
            av[d] += pd * dor[d];
          }
        }
        const std::size_t idx = ((kbase + j) * p.heads_kv + nh.hk) * D;
        for (int d = 0; d < D; ++d) {
          dk_acc[idx + d] += ak[d];
          dv_acc[idx + d] += av[d];
        }
      }
    }
  for (std::size_t i = 0; i < dk_acc.size(); ++i) {
    out.dk[i] = prec == RefPrecision::fp64 ? double(dk_acc[i]) : double(round_to(p.dtype, float(dk_acc[i])));
    out.dv[i] = prec == RefPrecision::fp64 ? double(dv_acc[i]) : double(round_to(p.dtype, float(dv_acc[i])));
  }
  return out;
}

}  // namespace

std::int64_t reference_rows_q(const AttentionParams& p) { return rows_in(p, p.cu_seqlens_q, p.seqlen_q); }
std::int64_t reference_rows_k(const AttentionParams& p) { return rows_in(p, p.cu_seqlens_k, p.seqlen_k); }

ReferenceForward reference_forward(const AttentionParams& p, RefPrecision precision) {
  return precision == RefPrecision::fp64 ? forward_t<double>(p, precision) : forward_t<float>(p, precision);
}

ReferenceBackward reference_backward(const AttentionParams& p, RefPrecision precision) {
  return precision == RefPrecision::fp64 ? backward_t<double>(p, precision) : backward_t<float>(p, precision);
}

}  // namespace flashattn::detail
