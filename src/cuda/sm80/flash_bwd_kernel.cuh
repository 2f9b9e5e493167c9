// The sm80 backward kernel: a thin shell over the scheduler (block -> batch, kv head,
// kv tile: bwd_block_order.hpp), the q-tile range of that kv tile, the mainloop step and the
// dK/dV epilogue.
//
// Block order: for one (batch, kv head) tile j-1 is always dispatched before tile j; the
// deterministic dQ hand-off (tile j waits until the tiles before it have added into a q tile)
// relies on that and cannot deadlock.
#pragma once

#include <cuda.h>  // CUtensorMap

#include "cuda/ptx/acquire_release.cuh"
#include "cuda/ptx/cp_async_bulk.cuh"
#include "cuda/ptx/cp_async_ca.cuh"
#include "cuda/ptx/griddepcontrol.cuh"
#include "cuda/ptx/mbarrier.cuh"
#include "cuda/sm80/bwd_block_order.hpp"
#include "cuda/sm80/mainloop_bwd_sm80.cuh"

namespace flashattn::detail::sm80_bwd {

// q tiles [lo, hi) whose rows see any key of [c0, c1): contiguous because each row's
// visible key range has monotone ends. A closed-form guess, then corrected with
// classify_tile so the block visits exactly the tiles classify_tile calls non-empty
// (the deterministic turn count below assumes the same predicate).
__device__ inline void q_tile_range(const MaskBounds& mb, int c0, int c1, int block_m, int n_tiles, int& lo,
                                    int& hi) {
  auto nonempty = [&](int i) {
    const int r0 = i * block_m, r1 = imin(r0 + block_m, mb.seqlen_q);
    return classify_tile(mb, r0, r1, c0, c1) != TileKind::empty;
  };
  const int shift = mb.seqlen_q - mb.seqlen_k;  // row = key + shift on the diagonal
  int first = mb.window_right >= 0 ? c0 + shift - mb.window_right : 0;
  int last = mb.window_left >= 0 ? c1 - 1 + shift + mb.window_left : mb.seqlen_q - 1;
  lo = imin(imax(first, 0) / block_m, n_tiles);
  hi = imin(imax(last, -1) / block_m + 1, n_tiles);
  if (last < 0) hi = 0;
  while (lo > 0 && nonempty(lo - 1)) --lo;
  while (lo < n_tiles && !nonempty(lo)) ++lo;
  if (hi < lo) hi = lo;
  while (hi < n_tiles && nonempty(hi)) ++hi;
  while (hi > lo && !nonempty(hi - 1)) --hi;
}

// Block-constant bases of the q side (see the kernel).
template <typename T>
struct BlockBases {
  const T* q;                  // row 0 of the group's first q head
  const T* dout;
  std::int64_t scratch_row0;   // scratch row of (first q head, row 0)
  int seqlen_q, seqlen_k;
  int b, h0;
  int c0, cols_valid;          // the kv tile's first key and keys in range
  int i_lo, i_hi, steps;       // q tiles [i_lo, i_hi) of each of the group's heads
};

// sm_90 re-reads the q-tile loop's bounds and the kv tile's extent from shared memory (sb)
// each step instead of keeping them in registers through the loop: ptxas then has the
// registers for the products (H200: +2-4% at D = 128, +7-9% at D = 256, +1-3% at D = 64,
// although the step has more instructions). sm_80 keeps them in registers: there the
// re-reads made ptxas spill 36 bytes at D = 64.
// sm_90 also loads each q tile's LSE2 / Drow rows four at a time (16-byte copies, no row
// predicate; H200: +0.5-1.5% at D = 64); on sm_80 that form spills 12 bytes at D = 128.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
inline constexpr bool kReloadBounds = true;
inline constexpr bool kRowsBy4 = true;
#else
inline constexpr bool kReloadBounds = false;
inline constexpr bool kRowsBy4 = false;
#endif

// sm_90, D = 64: the q side (Q, dO, LSE2, Drow) of each step as bulk copies (TMA) that one
// thread issues, completing on a per-stage mbarrier, instead of 9 cp.async per thread with their
// 64-bit address maths and row predicates. A 128-byte Q / dO row is one 128-byte swizzle span,
// and the TMA's 128-byte swizzle (16-byte chunk XOR row % 8 within 1024-byte blocks) is swz<64>'s
// pattern, so the tiles land as the cp.async path lays them out (1024-byte aligned stages).
// Set by the host for the plain kernel on padded batches with 16-byte aligned rows and two stages
// (bwd_tma_maps; else enabled = 0 and the cp.async kernel runs). H200: d64 +3-5% (tile_size_bwd_sm80.hpp).
struct BwdTma {
  CUtensorMap q, dout;  // dims (head_dim, seqlen_q, heads_q, batch), box (64, kBlockM, 1, 1)
  int enabled;
};
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
inline constexpr bool kTmaArch = true;
#else
inline constexpr bool kTmaArch = false;
#endif

template <typename T, int D, bool kPlain, bool kTma, bool kCompact>
__device__ __forceinline__ void flash_bwd_body(const AttentionParams& p, const BwdScratch& sc, const BwdTma& tm) {
  using Tile = BwdTile<D, kCompact>;
  using Loop = Mainloop<T, D, kPlain, kCompact>;
  constexpr int M = Tile::kBlockM, N = Tile::kBlockN;
  static_assert(2 * M <= kThreads, "one thread per LSE2 / Drow row");
  // 128-byte aligned: after the static BlockBases (64 bytes) the dynamic base sat 64 bytes past a
  // 128-byte boundary, so each 128-byte row of the cp.async tile copies straddled two and took two
  // shared-memory wavefronts (Nsight Compute, H200: 50% excessive wavefronts on every LDGSTS).
  extern __shared__ __align__(128) uint4 smem_raw[];
  constexpr bool tma = kTmaArch && D == 64 && kTma;
  // The bulk copies' swizzle needs 1024-byte aligned tiles: the host adds 1024 bytes then.
  const std::uint32_t pad = tma ? (1024u - (ptx::smem_addr(smem_raw) & 1023u)) & 1023u : 0u;
  // K, V, stages x (Q, dO), P, dS, stages x (LSE2, Drow) x M; with kVInRegs P and dS take V's
  // region once every warp holds its V fragments.
  T* sK = reinterpret_cast<T*>(reinterpret_cast<char*>(smem_raw) + pad);
  T* sV = sK + N * D;
  T* sQ0 = sV + Tile::kVRegion;
  const int n_stages = sc.stages;
  T* sP = Tile::kVInRegs ? sV : sQ0 + n_stages * 2 * M * D;
  T* sdS = sP + M * N;
  float* sRows = reinterpret_cast<float*>(sQ0 + n_stages * 2 * M * D + Tile::kPdsOwn);

  const int tid = threadIdx.x;
  const BwdBlockOrder order{sc.n_kv_tiles, p.batch * p.heads_kv, sc.pair_group};
  int j, pair;
  order.coords(blockIdx.x, j, pair);
  const int hkv = pair % p.heads_kv, b = pair / p.heads_kv;

  // Every block has started once the last one issues this: the dQ conversion's blocks may then
  // take the SMs that the main kernel's last wave leaves idle (they wait per pair on pair_done).
  ptx::griddepcontrol_launch_dependents();

  const SeqGeometry geo = seq_geometry(p, b);
  const int c0 = j * N;
  if (c0 >= geo.seqlen_k) {  // a varlen sequence shorter than the grid's longest: no dQ to add
    if (sc.pair_done != nullptr && tid == 0) atomicAdd(sc.pair_done + pair, 1u);
    return;
  }
  const int cols_valid = imin(N, geo.seqlen_k - c0);
  const int head_dim = p.head_dim;
  const int group = p.heads_q / p.heads_kv;
  const bool varlen = p.cu_seqlens_q != nullptr;

  load_tile<N, D>(sK,
                  static_cast<const T*>(p.k) +
                      bshd_offset(varlen, p.k_batch_stride, p.k_row_stride, p.k_head_stride, b, geo.k_row0, c0, hkv),
                  p.k_row_stride, cols_valid, head_dim, sc.vec_in, tid);
  load_tile<N, D>(sV,
                  static_cast<const T*>(p.v) +
                      bshd_offset(varlen, p.v_batch_stride, p.v_row_stride, p.v_head_stride, b, geo.k_row0, c0, hkv),
                  p.v_row_stride, cols_valid, head_dim, sc.vec_in, tid);

  const MaskBounds mb{geo.seqlen_q, geo.seqlen_k, p.window_left, p.window_right};
  int i_lo = 0, i_hi = 0;
  const int n_q_tiles = (geo.seqlen_q + M - 1) / M;
  q_tile_range(mb, c0, c0 + cols_valid, M, n_q_tiles, i_lo, i_hi);
  const int per_head = i_hi - i_lo;
  const int steps = per_head * group;

  // Per-block bases and bounds of the q side, kept in shared memory: the step loop re-reads
  // them after each barrier instead of holding them in registers next to dK / dV.
  __shared__ BlockBases<T> sb;
  __shared__ std::uint64_t mbar[2];  // TMA path: stage s's q side landed
  static_assert(sizeof(BlockBases<T>) + sizeof(mbar) <= 128, "kStaticSmem of flash_bwd_launch.cu");
  if (tid == 0) {
    if (tma) {
      ptx::mbarrier_init(ptx::smem_addr(&mbar[0]), 1);
      ptx::mbarrier_init(ptx::smem_addr(&mbar[1]), 1);
      ptx::fence_mbarrier_init();
    }
    const int h0 = hkv * group;
    sb.q = static_cast<const T*>(p.q) +
           bshd_offset(varlen, p.q_batch_stride, p.q_row_stride, p.q_head_stride, b, geo.q_row0, 0, h0);
    sb.dout = static_cast<const T*>(p.dout) +
              bshd_offset(varlen, p.do_batch_stride, p.do_row_stride, p.do_head_stride, b, geo.q_row0, 0, h0);
    sb.scratch_row0 = std::int64_t(h0) * sc.rows_alloc + scratch_row(sc.seq_pad, b, 0);
    sb.seqlen_q = geo.seqlen_q;
    sb.seqlen_k = geo.seqlen_k;
    sb.b = b;
    sb.h0 = h0;
    sb.c0 = c0;
    sb.cols_valid = cols_valid;
    sb.i_lo = i_lo;
    sb.i_hi = i_hi;
    sb.steps = steps;
  }
  __syncthreads();

  // Issues the loads of the Q, dO, LSE2 and Drow of q tile i of head h0 + dh (cp.async, or TMA).
  auto issue_q_side = [&](int dh, int i, int stage) {
    if (tma) {
      if (threadIdx.x == 0) {
        const BlockBases<T> bb = sb;
        const std::uint32_t bar = ptx::smem_addr(&mbar[stage]);
        T* sQ = sQ0 + stage * 2 * M * D;
        ptx::mbarrier_arrive_expect_tx(bar, 2u * M * D * sizeof(T) + 2u * M * sizeof(float));
        ptx::cp_async_bulk_tensor_4d_g2s(ptx::smem_addr(sQ), &tm.q, 0, i * M, bb.h0 + dh, bb.b, bar);
        ptx::cp_async_bulk_tensor_4d_g2s(ptx::smem_addr(sQ + M * D), &tm.dout, 0, i * M, bb.h0 + dh, bb.b, bar);
        const std::int64_t hrow = bb.scratch_row0 + std::int64_t(dh) * sc.rows_alloc + i * M;
        ptx::cp_async_bulk_g2s(ptx::smem_addr(sRows + stage * 2 * M), sc.lse2 + hrow, M * sizeof(float), bar);
        ptx::cp_async_bulk_g2s(ptx::smem_addr(sRows + stage * 2 * M + M), sc.drow + hrow, M * sizeof(float), bar);
      }
      return;
    }
    // At D = 64 the copies' per-thread offsets, hoisted out of the step loop once the issue
    // moved into the step (Loop::kIssueAt), were one register too many (4-byte spill): they
    // are formed per issue from an opaque thread id there.
    const int ctid = Loop::kIssueAt != 0 && D == 64 ? static_cast<int>(ptx::mov_opaque_u32(threadIdx.x)) : tid;
    const BlockBases<T> bb = sb;
    const int r0 = i * M;
    const int rows = imin(M, bb.seqlen_q - r0);
    if constexpr (kRowsBy4) {
      // LSE2 (threads 0..M/4-1) and Drow (M/4..M/2-1), four rows per 16-byte copy and no row
      // predicate: the scratch holds all seq_pad rows of every sequence (16-byte aligned:
      // seq_pad and M are multiples of 64), and the step reads no row past rows_valid.
      if (ctid < 2 * M / 4) {
        const std::int64_t hrow = bb.scratch_row0 + std::int64_t(dh) * sc.rows_alloc + r0 + 4 * (ctid % (M / 4));
        ptx::cp_async_cg_16(ptx::smem_addr(sRows + stage * 2 * M + 4 * ctid),
                            (ctid < M / 4 ? sc.lse2 : sc.drow) + hrow, true);
      }
    } else if (ctid < 2 * M) {  // LSE2 (threads 0..M-1) and Drow (M..2M-1) of the tile's rows
      const int r = ctid % M;
      const std::int64_t hrow = bb.scratch_row0 + std::int64_t(dh) * sc.rows_alloc + r0 + r;
      const float* src = (ctid < M ? sc.lse2 : sc.drow) + hrow;
      ptx::cp_async_ca_4(ptx::smem_addr(sRows + stage * 2 * M + ctid), r < rows ? src : sc.lse2, r < rows);
    }
    T* sQ = sQ0 + stage * 2 * M * D;
    load_tile<M, D>(sQ, bb.q + std::int64_t(dh) * p.q_head_stride + std::int64_t(r0) * p.q_row_stride,
                    p.q_row_stride, rows, head_dim, sc.vec_in, ctid);
    load_tile<M, D>(sQ + M * D, bb.dout + std::int64_t(dh) * p.do_head_stride + std::int64_t(r0) * p.do_row_stride,
                    p.do_row_stride, rows, head_dim, sc.vec_in, ctid);
  };

  KvAccum<D, kCompact> acc;
#pragma unroll
  for (int mt = 0; mt < Tile::kKvMTiles; ++mt)
#pragma unroll
    for (int n = 0; n < Tile::kKvNTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc.dk[mt][n][e] = acc.dv[mt][n][e] = 0.f;

  const int warp = tid >> 5, lane = tid & 31;
  const typename Loop::Lanes lanes(lane);

  if (steps > 0) issue_q_side(0, i_lo, 0);
  ptx::cp_async_commit_group();

  VRegs<D, kCompact> vregs;
  if constexpr (Tile::kVInRegs) {
    ptx::cp_async_wait_group<0>();
    __syncthreads();
    Loop::load_v_regs(ptx::smem_addr(sV), lanes, warp, vregs);
    __syncthreads();  // V's region becomes P / dS
  }

  // The step's head within the group and q tile, advanced without a division per step.
  int stage = 0, dh = 0, i = i_lo;
  std::uint32_t parity = 0;  // TMA path: bit s = the parity of stage s's next phase
  for (int step = 0, more = steps > 0; more; ++step) {
    ptx::cp_async_wait_group<0>();
    if (tma) {
      ptx::mbarrier_wait_parity(ptx::smem_addr(&mbar[stage]), (parity >> stage) & 1u);
      parity ^= 1u << stage;
    }
    __syncthreads();
    auto issue_next = [&] {
      if (n_stages == 2 && step + 1 < (kReloadBounds ? sb.steps : steps)) {
        const bool wrap = i + 1 == (kReloadBounds ? sb.i_hi : i_hi);
        issue_q_side(wrap ? dh + 1 : dh, wrap ? (kReloadBounds ? sb.i_lo : i_lo) : i + 1, stage ^ 1);
        ptx::cp_async_commit_group();
      }
    };
    if constexpr (Loop::kIssueAt == 0) issue_next();
    const BlockBases<T> bb = sb;
    const MaskBounds mbs = kReloadBounds ? MaskBounds{bb.seqlen_q, bb.seqlen_k, p.window_left, p.window_right} : mb;
    const int kv_c0 = kReloadBounds ? bb.c0 : c0, kv_cols = kReloadBounds ? bb.cols_valid : cols_valid;
    const int h = bb.h0 + dh;
    StepRows sr;
    sr.r0 = i * M;
    sr.rows_valid = imin(M, bb.seqlen_q - sr.r0);
    sr.c0 = kv_c0;
    sr.cols_valid = kv_cols;
    sr.partial = classify_tile(mbs, sr.r0, sr.r0 + sr.rows_valid, kv_c0, kv_c0 + kv_cols) != TileKind::full ||
                 kv_cols < N;
    const std::int64_t hrow = bb.scratch_row0 + std::int64_t(dh) * sc.rows_alloc + sr.r0;
    sr.dq = sc.dq_accum + hrow * D;  // dq_ld == D (padded head dim)
    sr.slope_log2 = !kPlain && p.alibi_slopes ? p.alibi_slopes[bb.b * p.alibi_batch_stride + h] * kLog2e : 0.f;
    sr.bh = bb.b * p.heads_q + h;
    sr.sem = nullptr;
    sr.turn = 0;
    if (sc.semaphores != nullptr) {
      sr.sem = sc.semaphores + (std::int64_t(bb.b) * p.heads_q + h) * sc.n_q_tiles + i;
      sr.turn = kv_c0 / N - mbs.keys_of_row(sr.r0).lo / N;
    }
    const std::uint32_t q_addr = ptx::smem_addr(sQ0 + stage * 2 * M * D);
    const StepTiles st{q_addr,
                       q_addr + 2u * M * D,
                       ptx::smem_addr(sK),
                       ptx::smem_addr(sV),
                       ptx::smem_addr(sP),
                       ptx::smem_addr(sdS),
                       ptx::smem_addr(sRows + stage * 2 * M),
                       ptx::smem_addr(sRows + stage * 2 * M + M)};
    // The next step's q tile and whether there is one, formed before the dQ product (the step
    // calls before_dq): read from shared memory after the dQ reds, the bounds waited for the reds
    // to drain, whose source registers the LDS reused (Nsight Compute, H200: 4-6% of the stall
    // samples on the loop's last compares at D = 64 and 256).
    // One stage (A100 at D = 256, the 99 KiB tiles at D = 128 / 256): the dQ product reads only
    // dS and K, so the next q tile's Q / dO / LSE2 / Drow are issued into the one stage right
    // before it, once every warp is done with the dK / dV products, and load under the dQ mma and
    // reds instead of after the step with the tensor cores idle.
    int next_i = i, next_dh = dh;
    auto before_dq = [&] {
      const bool wrap = i + 1 == (kReloadBounds ? sb.i_hi : i_hi);
      next_i = wrap ? (kReloadBounds ? sb.i_lo : i_lo) : i + 1;
      next_dh = wrap ? dh + 1 : dh;
      more = step + 1 < (kReloadBounds ? sb.steps : steps);
      if (n_stages == 1 && more) {
        __syncthreads();
        issue_q_side(next_dh, next_i, 0);
        ptx::cp_async_commit_group();
      }
    };
    Loop::step(p, mbs, st, sr, lanes, head_dim, acc, vregs, tid, issue_next, before_dq);
    i = next_i;
    dh = next_dh;
    if (n_stages == 2) stage ^= 1;
  }
  ptx::cp_async_wait_group<0>();
  __syncthreads();

  // ------------------------------------------------------------- epilogue: dK, dV
  {
    const float dk_scale = kPlain ? p.scale : 1.f;  // the plain kernel's dS leaves out the scale
    const int g = lane >> 2, t = lane & 3;
    const int kv_n = warp % Tile::kKvWarpsN, kv_d = warp / Tile::kKvWarpsN;
#pragma unroll
    for (int mt = 0; mt < Tile::kKvMTiles; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int row = kv_n * Tile::kKvRows + mt * 16 + h * 8 + g;
#pragma unroll
        for (int n = 0; n < Tile::kKvNTiles; ++n) {
          const int col = kv_d * Tile::kKvCols + n * 8 + 2 * t;
          *reinterpret_cast<std::uint32_t*>(sK + swz<D>(row, col)) =
              Elem<T>::pack(acc.dk[mt][n][2 * h] * dk_scale, acc.dk[mt][n][2 * h + 1] * dk_scale);
          *reinterpret_cast<std::uint32_t*>(sV + swz<D>(row, col)) =
              Elem<T>::pack(acc.dv[mt][n][2 * h], acc.dv[mt][n][2 * h + 1]);
        }
      }
  }
  __syncthreads();
  {
    // Block coordinates again (from an opaque block index and sb, so they were not kept
    // live through the q-tile loop).
    int j_e, pair_e;
    BwdBlockOrder{sc.n_kv_tiles, p.batch * p.heads_kv, sc.pair_group}.coords(ptx::mov_opaque_u32(blockIdx.x), j_e,
                                                                             pair_e);
    // This block's dQ reds are done (every warp passed two barriers since its last one): the
    // release publishes them to the dQ conversion's blocks of this pair.
    if (sc.pair_done != nullptr && tid == 0) ptx::atom_add_acq_rel_gpu_u32(sc.pair_done + pair_e, 1u);
    const int hkv_e = pair_e % p.heads_kv, b_e = pair_e / p.heads_kv;
    const SeqGeometry g_e = seq_geometry(p, b_e);
    const int c0_e = kReloadBounds ? sb.c0 : c0, cols_e = kReloadBounds ? sb.cols_valid : cols_valid;
    store_tile<N, D>(sK,
                     static_cast<T*>(p.dk) + bshd_offset(varlen, p.dk_batch_stride, p.dk_row_stride,
                                                         p.dk_head_stride, b_e, g_e.k_row0, c0_e, hkv_e),
                     p.dk_row_stride, cols_e, head_dim, sc.vec_out, tid);
    store_tile<N, D>(sV,
                     static_cast<T*>(p.dv) + bshd_offset(varlen, p.dv_batch_stride, p.dv_row_stride,
                                                         p.dv_head_stride, b_e, g_e.k_row0, c0_e, hkv_e),
                     p.dv_row_stride, cols_e, head_dim, sc.vec_out, tid);
  }
}

// kTma (D = 64, plain): launched on compute capability 9.0 only, so its sm_80 code is a stub.
// kCompact: the 99 KiB tiles (BwdTile); never with kTma (Hopper takes the standard tiles).
template <typename T, int D, bool kPlain, bool kTma, bool kCompact>
__global__ void __launch_bounds__(kThreads, 1)
    flash_bwd_kernel(const __grid_constant__ AttentionParams p, const __grid_constant__ BwdScratch sc,
                     const __grid_constant__ BwdTma tm) {
  static_assert(!(kTma && kCompact), "the TMA form is for the standard D = 64 tile only");
  if constexpr (kTma && !kTmaArch)
    __trap();
  else
    flash_bwd_body<T, D, kPlain, kTma, kCompact>(p, sc, tm);
}

}  // namespace flashattn::detail::sm80_bwd
