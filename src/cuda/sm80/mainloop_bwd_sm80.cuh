// One step of the sm80 backward: a (q tile, kv tile) pair with K, V, Q, dO in shared memory.
//   S  = Q K^T, dP = dO V^T                       (warp layout: BwdTile::kSWarps*)
//   P  = exp2(logit2 - LSE2);  dS = P (dP keep - Drow) dlogit/ds     (logit hooks inline)
//   dV += (P keep)^T dO, dK += dS^T Q              (BwdTile::kKvWarps*; registers for the block)
//   dQ += dS K                                    (BwdTile::kQWarps*; fp32 red.add, DqLayout)
// P and dS round-trip through shared memory as 16-bit values so the transposed products
// can read them with ldmatrix.trans, as FlashAttention-2 does (stored with stmatrix on
// sm_90). Keeping P in registers as the A operand of dV does not fit this layout: a warp's
// dV rows are keys summed over all kBlockM rows, while its S fragment holds half the rows.
// S / dP are produced kSPassM 16-row m-tiles at a time, as many as fit next to dK / dV
// without spilling. With BwdTile::kVInRegs (D = 256 on 99 KiB GPUs) dP takes V's fragments from
// registers (VRegs, loaded once per block) and P / dS occupy V's shared memory.
// The plain kernel's dS leaves out dlogit/ds (the constant softmax scale there); the dK
// epilogue and the dQ conversion multiply it in once. The step is latency-bound at 255
// registers (dK / dV hold 128 of them): the products are kept branch-free so that ptxas
// can overlap fragment loads with mma (see tile_size_bwd_sm80.hpp for what was measured).
#pragma once

#include <cmath>
#include <type_traits>

#include "core/attention_params.hpp"
#include "core/mask.hpp"
#include "core/online_softmax.hpp"
#include "core/philox.hpp"
#include "cuda/ptx/acquire_release.cuh"
#include "cuda/ptx/ex2.cuh"
#include "cuda/ptx/ld_shared.cuh"
#include "cuda/ptx/red_global.cuh"
#include "cuda/ptx/mov_opaque.cuh"
#include "cuda/ptx/st_shared.cuh"
#include "cuda/ptx/stmatrix.cuh"
#include "cuda/sm80/flash_bwd_params.hpp"
#include "cuda/sm80/fragments_bwd_sm80.cuh"

namespace flashattn::detail::sm80_bwd {

// Accumulators of the whole kv tile (live across every q tile of the block).
template <int D, bool kCompact>
struct KvAccum {
  using Tile = BwdTile<D, kCompact>;
  float dk[Tile::kKvMTiles][Tile::kKvNTiles][4];
  float dv[Tile::kKvMTiles][Tile::kKvNTiles][4];
};

// The B fragments of dP = dO V^T for this warp's keys over the whole head dim, held for the
// block when BwdTile::kVInRegs (else empty): k-slice k16, n-tile pair n2.
template <int D, bool kCompact, bool = BwdTile<D, kCompact>::kVInRegs>
struct VRegs {};
template <int D, bool kCompact>
struct VRegs<D, kCompact, true> {
  std::uint32_t b[D / 16][BwdTile<D, kCompact>::kSNTiles / 2][4];
};

// Shared-memory addresses (bytes, .shared window) of one step's tiles.
struct StepTiles {
  std::uint32_t q, dout, k, v, p, ds;
  std::uint32_t lse2, drow;  // fp32 per q row of the tile
};

// Where the step's rows sit: tile origin, valid extents, and the per-row scratch.
struct StepRows {
  int r0, rows_valid;  // q rows [r0, r0 + rows_valid) of the sequence
  int c0, cols_valid;  // keys [c0, c0 + cols_valid)
  bool partial;        // some element of the tile is masked
  float* dq;           // this q tile's kBlockM x D block of the dQ accumulator (DqLayout order)
  float slope_log2;    // ALiBi slope * log2(e), 0 = off
  int bh;              // dropout counter head word: b * heads_q + h
  int* sem;            // deterministic mode: this q tile's turn counter, else null
  int turn;            // kv tiles that add into this q tile before this one
};

// kPlain: the call has no dropout, softcap or ALiBi; those hooks compile away, which
// shrinks the step's code by about a third (the i-cache misses of the feature path).
template <typename T, int D, bool kPlain, bool kCompact>
struct Mainloop {
  using Tile = BwdTile<D, kCompact>;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  static constexpr bool kStMatrix = true;
#else
  static constexpr bool kStMatrix = false;
#endif
  static constexpr int M = Tile::kBlockM, N = Tile::kBlockN;
  // dK / dV as two branch-free products (sm_90) or one interleaved product with a head-dim
  // exit per 16 columns (sm_80, where the split products spill: 72 bytes at D = 128 plain,
  // 4 at D = 64). See step.
  static constexpr bool kSplitKv = kStMatrix;
  // Where the next stage's Q / dO / LSE2 / Drow loads are issued (issue_next): 0 at the top
  // of the step, before the S / dP products (the kernel issues them); 2 between the dV and
  // dK products, so their address maths overlaps the dV mma still in the tensor pipe
  // instead of delaying the first ldmatrix (H200: +1.5-3% at D = 64 / 128, +4-5% at D = 256).
  // sm_80's interleaved dK / dV product has no such point. See tile_size_bwd_sm80.hpp.
  static constexpr int kIssueAt = kSplitKv ? 2 : 0;
  // sm_90, D <= 128: each q row's LSE2 / Drow read without a row predicate. The preprocess writes
  // every scratch row (+inf / 0 past the sequence end, so P = dS = 0 there) and the sm_90 kernel
  // loads all kBlockM rows of a tile (kRowsBy4, TMA); sm_80 zero-fills them (cp.async), so it keeps
  // the predicate. H200: d64 +2-3% together with the TMA loads, d128 +0.5%; d256 -1.5%, so it keeps it.
  static constexpr bool kRowsUnpredicated = kStMatrix && D <= 128;
  // m-tiles of S / dP per pass (see step): as many as fit next to dK / dV without spilling, at
  // most the warp's m-tiles (the compact tiles have two at D = 64, one at D = 128).
  static constexpr int kSPassMWanted = D == 64 && kPlain    ? 4
                                       : D == 128 && !kPlain ? 1
                                       : 2;
  static constexpr int kSPassM = kSPassMWanted < Tile::kSMTiles ? kSPassMWanted : Tile::kSMTiles;

  // Per-lane address offsets, computed once per block (see fragments_bwd_sm80.cuh): tables
  // for operands whose column block is a compile-time multiple of 16, explicit entries for
  // the warp-dependent column blocks.
  struct Lanes {
    std::uint32_t a_d[4];                      // rows_by8,  L = D: Q / dO as A
    std::uint32_t b_d[4];                      // rows_by16, L = D: K / V as B
    std::uint32_t a_n[N == D ? 1 : 4];         // rows_by8,  L = N: dS as A (a_d when N == D)
    __device__ explicit Lanes(int lane) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        a_d[c] = lane_offset<D, LaneMap::rows_by8>(lane, 16 * c);
        b_d[c] = lane_offset<D, LaneMap::rows_by16>(lane, 16 * c);
        if constexpr (N != D) a_n[c] = 16 * c < N ? lane_offset<N, LaneMap::rows_by8>(lane, 16 * c) : 0u;
      }
    }
    __device__ __forceinline__ const std::uint32_t (&dS_as_a() const)[4] {
      if constexpr (N == D) return a_d;
      else return a_n;
    }
    // Column block c0 (a multiple of 16, compile-time after unrolling) of a table.
    __device__ __forceinline__ static std::uint32_t col(const std::uint32_t (&t)[4], int c0) {
      return t[(c0 >> 4) & 3] + static_cast<std::uint32_t>((c0 >> 6) * 128);
    }
  };

  // Loads this warp's V fragments (VRegs) from the V tile; with kVInRegs, once per block, before
  // P / dS overwrite V. Past the head dim V is zero-filled, so those fragments are zeros.
  __device__ static void load_v_regs(std::uint32_t v_tile, const Lanes& ln, int warp, VRegs<D, kCompact>& vr) {
    if constexpr (Tile::kVInRegs) {
      const int key0 = (warp / Tile::kSWarpsM) * Tile::kSCols;
#pragma unroll
      for (int k16 = 0; k16 < D / 16; ++k16)
#pragma unroll
        for (int n2 = 0; n2 < Tile::kSNTiles / 2; ++n2)
          ptx::ldmatrix_x4(vr.b[k16][n2], v_tile + (k16 / 4) * 128 + row_bytes<D>(key0 + n2 * 16) + ln.b_d[k16 % 4]);
    }
  }

  // issue_next(): issues the next stage's loads (every thread calls it); called once, at
  // kIssueAt. before_dq(): the kernel's next-step bookkeeping, called once before the dQ product
  // (so its shared-memory reads do not queue behind the dQ reds).
  template <typename Issue, typename BeforeDq>
  __device__ static void step(const AttentionParams& p, const MaskBounds& mask, const StepTiles& tiles,
                              const StepRows& sr, const Lanes& ln, int head_dim, KvAccum<D, kCompact>& acc,
                              const VRegs<D, kCompact>& vr, int tid, Issue&& issue_next, BeforeDq&& before_dq) {
    // Tile addresses pass through an opaque move each step: the operand addresses derived
    // from them are then formed next to their loads rather than hoisted out of the q-tile
    // loop, where dozens of them would compete with dK / dV for registers.
    const StepTiles st{ptx::mov_opaque_u32(tiles.q),    ptx::mov_opaque_u32(tiles.dout),
                       ptx::mov_opaque_u32(tiles.k),    ptx::mov_opaque_u32(tiles.v),
                       ptx::mov_opaque_u32(tiles.p),    ptx::mov_opaque_u32(tiles.ds),
                       ptx::mov_opaque_u32(tiles.lse2), ptx::mov_opaque_u32(tiles.drow)};
    const int warp = tid >> 5, lane = tid & 31;
    const int g = lane >> 2, t = lane & 3;

    // ------------------------------------------------------------- S = Q K^T, dP = dO V^T
    const int s_m = warp % Tile::kSWarpsM, s_n = warp / Tile::kSWarpsM;
    const int row0 = s_m * Tile::kSRows;  // tile-local first row of this warp
    const int key0 = s_n * Tile::kSCols;  // tile-local first key of this warp
    const bool softcap = !kPlain && p.softcap > 0.f;
    const bool dropout = !kPlain && p.dropout_p > 0.f;
    const DropoutRng rng = make_dropout_rng(p.seed, p.offset, p.dropout_p);
    const float keep_scale = 1.f / (1.f - p.dropout_p);
    // Store offsets of this lane's pairs: row (row0 + 16 mt + 8 h + g), key (key0 + 8 n + 2 t);
    // the swizzle depends on g and n only, the row blocks are immediates.
    std::uint32_t st_off[Tile::kSNTiles];
#pragma unroll
    for (int n = 0; n < Tile::kSNTiles; ++n)
      st_off[n] = static_cast<std::uint32_t>(swz<N>(row0 + g, key0 + n * 8 + 2 * t)) * 2u;
    // sm_90: stmatrix.x4 stores a 16-row pair of n-tiles (both row halves) per instruction,
    // a quarter of the store instructions; lane l gives row 8 * bit3(l) + l % 8 of key block
    // 8 * bit4(l), i.e. the rows_by8 map.
    std::uint32_t stm_off[Tile::kSNTiles / 2];
#pragma unroll
    for (int n2 = 0; n2 < Tile::kSNTiles / 2; ++n2)
      stm_off[n2] = lane_offset<N, LaneMap::rows_by8>(lane, key0 + 16 * n2) + row_bytes<N>(row0);

    // kSPassM m-tiles at a time; the K / V fragments are loaded once per pass, so more
    // per pass is faster (D = 128 plain: 235 vs 218 TFLOP/s with 2 vs 1) until S and dP
    // next to dK / dV spill (the feature kernel at D = 128 takes one; D = 256 has a single
    // m-tile per warp).
#pragma unroll
    for (int mp = 0; mp < Tile::kSMTiles; mp += kSPassM) {
      float s[kSPassM][Tile::kSNTiles][4], dp[kSPassM][Tile::kSNTiles][4];  // set by the first k-slice
      gemm_rows_keys(st.q, st.k, ln, row0 + mp * 16, key0, head_dim, s);
      if constexpr (Tile::kVInRegs)
        gemm_rows_vregs(st.dout, vr, ln, row0 + mp * 16, head_dim, dp);
      else
        gemm_rows_keys(st.dout, st.v, ln, row0 + mp * 16, key0, head_dim, dp);

      // P and dS of the pass. kMasked: some element of the tile is masked. The plain kernel
      // compiles the body twice, so full tiles (all but the diagonal / edge ones) skip the
      // per-element key compares; the feature kernel keeps one copy (i-cache).
      auto p_ds = [&](auto masked_tag) {
        constexpr bool kMasked = decltype(masked_tag)::value;
#pragma unroll
        for (int mt = 0; mt < kSPassM; ++mt) {
          [[maybe_unused]] std::uint32_t pk_p[2][Tile::kSNTiles], pk_ds[2][Tile::kSNTiles];  // stmatrix (sm_90)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int row_l = row0 + (mp + mt) * 16 + h * 8 + g;  // tile-local row
            const int row = sr.r0 + row_l;
            const bool row_ok = kRowsUnpredicated || row_l < sr.rows_valid;
            const float lse2 = row_ok ? ptx::ld_shared_f32(st.lse2 + 4 * row_l) : INFINITY;
            const float drow = row_ok ? ptx::ld_shared_f32(st.drow + 4 * row_l) : 0.f;
            KeyRange kr{0, 0};
            if (kMasked) {
              kr = mask.keys_of_row(row);
              kr.hi = imin(kr.hi, sr.c0 + sr.cols_valid);
            }
#pragma unroll
            for (int n = 0; n < Tile::kSNTiles; ++n) {
              const int col = sr.c0 + key0 + n * 8 + 2 * t;  // key of the pair (even)
              Philox4 w{};
              if (dropout) w = rng.words(sr.bh, row, col);
              float pv[2], dsv[2];
#pragma unroll
              for (int c = 0; c < 2; ++c) {
                const int key = col + c;
                const float sv = s[mt][n][2 * h + c];
                if constexpr (kPlain) {
                  // One FMA for scale and LSE; dS leaves out the constant dlogit/ds = scale,
                  // which the dK epilogue and the dQ conversion apply once (sc.dq_scale).
                  float x = fmaf(sv, p.scale_log2, -lse2);
                  if (kMasked && (key < kr.lo || key >= kr.hi)) x = -INFINITY;
                  const float pr = ptx::ex2_approx_ftz(x);
                  pv[c] = pr;
                  dsv[c] = pr * (dp[mt][n][2 * h + c] - drow);
                } else {
                  float x, grad;
                  if (softcap) {
                    const float th = tanhf(sv * (p.scale / p.softcap));
                    x = th * (p.softcap * kLog2e);
                    grad = p.scale * (1.f - th * th);
                  } else {
                    x = sv * p.scale_log2;
                    grad = p.scale;
                  }
                  if (sr.slope_log2 != 0.f) {
                    const int d = row + mask.seqlen_k - mask.seqlen_q - key;
                    x -= sr.slope_log2 * static_cast<float>(d < 0 ? -d : d);
                  }
                  if (kMasked && (key < kr.lo || key >= kr.hi)) x = -INFINITY;
                  const float pr = ptx::ex2_approx_ftz(x - lse2);  // ex2(-inf) = 0 for masked logits
                  float dpe = dp[mt][n][2 * h + c], pd = pr;
                  if (dropout) {
                    // col is even: the pair sits in words 0-1 or 2-3 (no dynamic register index).
                    const std::uint32_t word = (col & 2) ? w.x[2 + c] : w.x[c];
                    const float ks = rng.keep_word(word) ? keep_scale : 0.f;
                    dpe *= ks;
                    pd = pr * ks;
                  }
                  pv[c] = pd;
                  dsv[c] = pr * (dpe - drow) * grad;
                }
              }
              if constexpr (kStMatrix) {
                pk_p[h][n] = Elem<T>::pack(pv[0], pv[1]);
                pk_ds[h][n] = Elem<T>::pack(dsv[0], dsv[1]);
              } else {
                const std::uint32_t off = st_off[n] + row_bytes<N>((mp + mt) * 16 + h * 8);
                ptx::st_shared_b32(st.p + off, Elem<T>::pack(pv[0], pv[1]));
                ptx::st_shared_b32(st.ds + off, Elem<T>::pack(dsv[0], dsv[1]));
              }
            }
          }
          if constexpr (kStMatrix) {
#pragma unroll
            for (int n2 = 0; n2 < Tile::kSNTiles / 2; ++n2) {
              const std::uint32_t off = stm_off[n2] + row_bytes<N>((mp + mt) * 16);
              ptx::stmatrix_x4(st.p + off, pk_p[0][2 * n2], pk_p[1][2 * n2], pk_p[0][2 * n2 + 1],
                               pk_p[1][2 * n2 + 1]);
              ptx::stmatrix_x4(st.ds + off, pk_ds[0][2 * n2], pk_ds[1][2 * n2], pk_ds[0][2 * n2 + 1],
                               pk_ds[1][2 * n2 + 1]);
            }
          }
        }
      };
      if (kPlain && !sr.partial)
        p_ds(std::false_type{});
      else
        p_ds(std::true_type{});
    }
    __syncthreads();

    // Warp-dependent operand offsets are formed per step from an opaque lane id, so they
    // live only during their product instead of for the whole block.
    const int lane_o = static_cast<int>(ptx::mov_opaque_u32(static_cast<std::uint32_t>(lane)));

    // ------------------------------------------------------------- dV += P^T dO, dK += dS^T Q
    {
      const int kv_n = warp % Tile::kKvWarpsN, kv_d = warp / Tile::kKvWarpsN;
      std::uint32_t at_n[Tile::kKvMTiles];       // rows_by16, L = N: P / dS as A^T, this warp's keys
      std::uint32_t bt_kv[Tile::kKvNTiles / 2];  // rows_by8,  L = D: dO / Q as B^T, this warp's columns
#pragma unroll
      for (int mt = 0; mt < Tile::kKvMTiles; ++mt)
        at_n[mt] = lane_offset<N, LaneMap::rows_by16>(lane_o, kv_n * Tile::kKvRows + 16 * mt);
#pragma unroll
      for (int n2 = 0; n2 < Tile::kKvNTiles / 2; ++n2)
        bt_kv[n2] = lane_offset<D, LaneMap::rows_by8>(lane_o, kv_d * Tile::kKvCols + 16 * n2);
      // dV's product, then dK's, each over all kBlockM rows, as FlashAttention-2 orders them:
      // only one product's fragments are in flight, so ptxas can issue a whole k-slice of
      // loads ahead without spilling, and neither carries a per-column head-dim exit (a
      // branch per 16 columns kept each k-slice's loads from moving above it: the LDSM
      // latency was exposed 16 times a step). Columns past the head dim are zero-filled in
      // Q / dO and add zeros; only a warp whose columns are all padding skips its products.
      // No early exit for rows past the sequence end either (P = dS = 0, Q / dO zero-filled).
      if constexpr (kSplitKv) {
        // live: some of this warp's dK / dV columns are real (not head-dim padding).
        const bool live = kv_d * Tile::kKvCols < head_dim;
        using Accum = float[Tile::kKvMTiles][Tile::kKvNTiles][4];
        auto product = [&](std::uint32_t a_tile, std::uint32_t b_tile, Accum& c) {
#pragma unroll
          for (int kk = 0; kk < M / 16; ++kk) {
            std::uint32_t a[Tile::kKvMTiles][4];
#pragma unroll
            for (int mt = 0; mt < Tile::kKvMTiles; ++mt)
              ptx::ldmatrix_x4_trans(a[mt], a_tile + row_bytes<N>(kk * 16) + at_n[mt]);
#pragma unroll
            for (int n2 = 0; n2 < Tile::kKvNTiles / 2; ++n2) {
              std::uint32_t b[4];
              ptx::ldmatrix_x4_trans(b, b_tile + row_bytes<D>(kk * 16) + bt_kv[n2]);
#pragma unroll
              for (int mt = 0; mt < Tile::kKvMTiles; ++mt) mma2<T>(c[mt][2 * n2], c[mt][2 * n2 + 1], a[mt], b);
            }
          }
        };
        if (live) product(st.p, st.dout, acc.dv);
        if constexpr (kIssueAt == 2) issue_next();
        if (live) product(st.ds, st.q, acc.dk);
      } else {
#pragma unroll
        for (int kk = 0; kk < M / 16; ++kk) {
          // No early exit for rows past the sequence end (P = dS = 0, Q / dO zero-filled): see dQ.
          std::uint32_t ap[Tile::kKvMTiles][4], ads[Tile::kKvMTiles][4];
#pragma unroll
          for (int mt = 0; mt < Tile::kKvMTiles; ++mt) {
            ptx::ldmatrix_x4_trans(ap[mt], st.p + row_bytes<N>(kk * 16) + at_n[mt]);
            ptx::ldmatrix_x4_trans(ads[mt], st.ds + row_bytes<N>(kk * 16) + at_n[mt]);
          }
#pragma unroll
          for (int n2 = 0; n2 < Tile::kKvNTiles / 2; ++n2) {
            if (kv_d * Tile::kKvCols + n2 * 16 >= head_dim) break;
            const std::uint32_t off = row_bytes<D>(kk * 16) + bt_kv[n2];
            std::uint32_t bdo[4], bq[4];
            ptx::ldmatrix_x4_trans(bdo, st.dout + off);
            ptx::ldmatrix_x4_trans(bq, st.q + off);
#pragma unroll
            for (int mt = 0; mt < Tile::kKvMTiles; ++mt) {
              mma2<T>(acc.dv[mt][2 * n2], acc.dv[mt][2 * n2 + 1], ap[mt], bdo);
              mma2<T>(acc.dk[mt][2 * n2], acc.dk[mt][2 * n2 + 1], ads[mt], bq);
            }
          }
        }
      }
    }

    // ------------------------------------------------------------- dQ += dS K
    before_dq();
    if (sr.sem != nullptr) {
      // Deterministic mode: kv tiles add into this q tile one at a time, in key order.
      if (tid == 0)
        while (ptx::ld_acquire_gpu_s32(sr.sem) != sr.turn) {
        }
      __syncthreads();
    }
    {
      const int q_m = warp % Tile::kQWarpsM, q_d = warp / Tile::kQWarpsM;
      const int qrow0 = q_m * Tile::kQRows;
      std::uint32_t bt_q[Tile::kQCols / 16];  // rows_by8, L = D: K as B^T, this warp's dQ columns
#pragma unroll
      for (int n2 = 0; n2 < Tile::kQCols / 16; ++n2)
        bt_q[n2] = lane_offset<D, LaneMap::rows_by8>(lane_o, q_d * Tile::kQCols + 16 * n2);
#pragma unroll
      for (int ch = 0; ch < Tile::kQCols / Tile::kQChunk; ++ch) {
        const int d0 = q_d * Tile::kQCols + ch * Tile::kQChunk;
        if (d0 >= head_dim) break;
        float q[Tile::kQMTiles][Tile::kQNTiles][4];  // set by the first k-slice (kk = 0)
#pragma unroll
        for (int kk = 0; kk < N / 16; ++kk) {
          // No early exit for keys past the sequence end (dS = 0, K zero-filled): branch-free,
          // so ptxas can issue the next k-slice's fragment loads under the current mma.
          std::uint32_t ads[Tile::kQMTiles][4];
#pragma unroll
          for (int mt = 0; mt < Tile::kQMTiles; ++mt)
            ptx::ldmatrix_x4(ads[mt], st.ds + row_bytes<N>(qrow0 + mt * 16) + Lanes::col(ln.dS_as_a(), kk * 16));
#pragma unroll
          for (int n2 = 0; n2 < Tile::kQNTiles / 2; ++n2) {
            std::uint32_t bk[4];
            ptx::ldmatrix_x4_trans(bk, st.k + row_bytes<D>(kk * 16) + bt_q[ch * (Tile::kQChunk / 16) + n2]);
#pragma unroll
            for (int mt = 0; mt < Tile::kQMTiles; ++mt) {
              if (kk == 0)
                mma2<T, true>(q[mt][2 * n2], q[mt][2 * n2 + 1], ads[mt], bk);
              else
                mma2<T>(q[mt][2 * n2], q[mt][2 * n2 + 1], ads[mt], bk);
            }
          }
        }
        // DqLayout order: each warp-wide red covers whole 128-byte lines; rows past the
        // sequence end add zeros into this tile's own padded region.
        using L = DqLayout<D, kCompact>;
        float* base = ptx::mov_opaque_ptr(sr.dq) +
                      static_cast<int>(ptx::mov_opaque_u32(static_cast<std::uint32_t>(L::position(warp, lane, 0))));
#pragma unroll
        for (int mt = 0; mt < Tile::kQMTiles; ++mt)
#pragma unroll
          for (int n = 0; n < Tile::kQNTiles; ++n) {
            const int i = L::index(ch, mt, n, 0, 0);
            if constexpr (L::kVec == 4) {
              ptx::red_global_add_v4_f32(base + (i / 4) * 128, q[mt][n][0], q[mt][n][1], q[mt][n][2], q[mt][n][3]);
            } else {
#pragma unroll
              for (int e = 0; e < 4; ++e) ptx::red_global_add_f32(base + (i + e) * 32, q[mt][n][e]);
            }
          }
      }
    }
    if (sr.sem != nullptr) {
      __threadfence();
      __syncthreads();
      if (tid == 0) ptx::st_release_gpu_s32(sr.sem, sr.turn + 1);
    }
  }

  // acc(rows x keys) = A(rows, :) B(keys, :)^T over the head dim, A and B stored [row][d].
  // The head dim runs in groups of 64 columns (one swizzle period) under `unroll 1`, which
  // stops the scheduler from hoisting every fragment load of the whole head dim at once
  // (with dK / dV resident that spills). On sm_90 the first group is peeled and starts the
  // accumulators (C = 0): no zero fill, which ptxas had emitted twice around the loop (64
  // instructions a step at D = 128). sm_80 keeps the zero fill: the peeled group spills
  // there (24 bytes at D = 128).
  template <int MT>
  __device__ static void gemm_rows_keys(std::uint32_t a_tile, std::uint32_t b_tile, const Lanes& ln, int row0,
                                        int key0, int head_dim, float (&acc)[MT][Tile::kSNTiles][4]) {
    constexpr int k0 = kStMatrix ? 1 : 0;
    if constexpr (kStMatrix) {
      gemm_k64<MT, true>(a_tile, b_tile, ln, row0, key0, 0, acc);
    } else {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int n = 0; n < Tile::kSNTiles; ++n)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[mt][n][e] = 0.f;
    }
#pragma unroll 1
    for (int k64 = k0; k64 < D / 64; ++k64) {
      if (k64 * 64 >= head_dim) break;  // zero-filled padding contributes nothing
      gemm_k64<MT, false>(a_tile, b_tile, ln, row0, key0, k64, acc);
    }
  }

  // gemm_rows_keys with B from registers (kVInRegs: dP = dO V^T). Fully unrolled, since the
  // fragments are indexed by k-slice; with dK / dV at 64 registers there is room for it. The
  // 64-column groups past the head dim are skipped (zero-filled padding adds nothing). It repeats
  // gemm_k64's loop rather than sharing it: gemm_k64 with its B loads passed in as a callable
  // changed the machine code of every other backward kernel (D = 64 throughout), which is tuned
  // and measured as it is.
  template <int MT>
  __device__ static void gemm_rows_vregs(std::uint32_t a_tile, const VRegs<D, kCompact>& vr, const Lanes& ln,
                                         int row0, int head_dim, float (&acc)[MT][Tile::kSNTiles][4]) {
#pragma unroll
    for (int k64 = 0; k64 < D / 64; ++k64) {
      if (k64 > 0 && k64 * 64 >= head_dim) break;
      const std::uint32_t a_base = a_tile + k64 * 128 + row_bytes<D>(row0);
#pragma unroll
      for (int kq = 0; kq < 4; ++kq) {
        std::uint32_t a[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) ptx::ldmatrix_x4(a[mt], a_base + row_bytes<D>(mt * 16) + ln.a_d[kq]);
#pragma unroll
        for (int n2 = 0; n2 < Tile::kSNTiles / 2; ++n2)
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            if (k64 == 0 && kq == 0)
              mma2<T, true>(acc[mt][2 * n2], acc[mt][2 * n2 + 1], a[mt], vr.b[k64 * 4 + kq][n2]);
            else
              mma2<T>(acc[mt][2 * n2], acc[mt][2 * n2 + 1], a[mt], vr.b[k64 * 4 + kq][n2]);
          }
      }
    }
  }

  // One 64-column group of gemm_rows_keys; kFirst: its first k-slice starts the accumulators.
  template <int MT, bool kFirst>
  __device__ __forceinline__ static void gemm_k64(std::uint32_t a_tile, std::uint32_t b_tile, const Lanes& ln,
                                                  int row0, int key0, int k64,
                                                  float (&acc)[MT][Tile::kSNTiles][4]) {
    const std::uint32_t a_base = a_tile + k64 * 128 + row_bytes<D>(row0);
    const std::uint32_t b_base = b_tile + k64 * 128 + row_bytes<D>(key0);
#pragma unroll
    for (int kq = 0; kq < 4; ++kq) {
      std::uint32_t a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) ptx::ldmatrix_x4(a[mt], a_base + row_bytes<D>(mt * 16) + ln.a_d[kq]);
#pragma unroll
      for (int n2 = 0; n2 < Tile::kSNTiles / 2; ++n2) {
        std::uint32_t b[4];
        ptx::ldmatrix_x4(b, b_base + row_bytes<D>(n2 * 16) + ln.b_d[kq]);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          if (kFirst && kq == 0)
            mma2<T, true>(acc[mt][2 * n2], acc[mt][2 * n2 + 1], a[mt], b);
          else
            mma2<T>(acc[mt][2 * n2], acc[mt][2 * n2 + 1], a[mt], b);
        }
      }
    }
  }
};

}  // namespace flashattn::detail::sm80_bwd
