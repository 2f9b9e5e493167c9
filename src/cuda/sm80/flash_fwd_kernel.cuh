// The sm80 forward kernel (FlashAttention-2): one CTA per (batch, head, q-tile); the Q tile
// stays in shared memory, K/V tiles stream through it last-first with cp.async (on sm_90, for
// plain calls on padded batches, with TMA bulk tensor copies: FwdTma), and each
// warp runs S = Q K^T, the hooks, the online softmax and O += P V on its own rows (or, with
// kBandWarps = 2, on its half of a band's keys and columns: FwdBandExchange). The kernel is a
// thin shell over the scheduler, the loads, the mainloop products, the softmax and the
// epilogue.
#pragma once

#include <cuda.h>  // CUtensorMap

#include <cstdint>

#include "core/attention_params.hpp"
#include "core/mask.hpp"
#include "core/philox.hpp"
#include "cuda/ptx/cp_async.cuh"
#include "cuda/ptx/cp_async_bulk.cuh"
#include "cuda/ptx/ld_shared.cuh"
#include "cuda/ptx/mbarrier.cuh"
#include "cuda/ptx/mov_opaque.cuh"
#include "cuda/sm80/band_exchange_fwd.cuh"
#include "cuda/sm80/epilogue_fwd.cuh"
#include "cuda/sm80/gmem_to_smem_cp_async.cuh"
#include "cuda/sm80/kernel_traits.cuh"
#include "cuda/sm80/mainloop_fwd_sm80.cuh"
#include "cuda/sm80/mask_apply.cuh"
#include "cuda/sm80/softmax_online.cuh"
#include "cuda/sm80/tile_scheduler.cuh"

namespace flashattn::detail::sm80 {

// Everything the kernel reads, resolved once on the host.
struct FwdKernelArgs {
  AttentionParams p;
  FwdTileScheduler scheduler;
  DropoutRng rng;
  bool dropout = false;
  bool hooks = false;    // softcap, ALiBi or a non-positive scale: scores become logits first
  float exp_scale = 0;   // log2 units per score unit: scale*log2(e), or log2(e) under hooks
  float o_extra = 1.f;   // 1 / (1 - dropout_p)
};

// Element offset of (sequence b, row, head h) in a BSHD or packed tensor. (The core's
// q_offset() family calls the host-only AttentionParams::is_varlen().)
__device__ __forceinline__ std::int64_t bshd_offset(bool varlen, int b, std::int64_t batch_stride, std::int64_t row,
                                                    std::int64_t row_stride, int h, std::int64_t head_stride) {
  return (varlen ? 0 : b * batch_stride) + row * row_stride + h * head_stride;
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
inline constexpr bool kFwdSm90 = true;
#else
inline constexpr bool kFwdSm90 = false;
#endif

// sm_90, plain calls on padded batches: the Q, K and V tiles as bulk tensor copies (TMA) that
// one thread issues, completing on two mbarriers (K's also carries Q), instead of kHeadDim / 4
// (Q: kBlockM / kBlockN times that) predicated cp.async per thread and tile with their 64-bit
// address maths. One box per 64-column block of the tile: a 128-byte box row is one 128-byte
// swizzle span, and the TMA's 128-byte swizzle (16-byte chunk XOR row % 8 within 1024-byte
// blocks) is SwizzledTile's 64-column pattern, so the tiles land as cp.async lays them out
// (1024-byte aligned). Rows past the sequence end and columns past the head dim are zero-filled
// by the maps' bounds. Maps: dims (head_dim, seqlen, heads, batch), boxes (64, kBlockM or
// kBlockN, 1, 1); filled by fwd_tma_maps (flash_fwd_launch_template.cuh).
struct FwdTma {
  CUtensorMap q, k, v;
};

// kPlain compiles the logits hooks and dropout out (the call has neither, and a positive
// scale): the lighter kernel leaves ptxas the registers for the larger tiles of
// FwdConfig::Plain. Masking stays a runtime branch, taken on partial tiles only. kTma (with
// kPlain, sm_90 only: elsewhere the kernel is empty and never launched) loads by FwdTma.
template <typename Traits, bool kPlain, bool kTma>
__device__ __forceinline__ void flash_fwd_body(const FwdKernelArgs& args, const FwdTma& tm) {
  using Elem = typename Traits::Elem;
  constexpr int kBlockM = Traits::kBlockM, kBlockN = Traits::kBlockN, kThreads = Traits::kThreads;
  constexpr bool tma = kTma && kPlain;
  static_assert(!tma || Traits::kHeadDim % 64 == 0, "TMA boxes are 64-column blocks");
  extern __shared__ __align__(1024) unsigned char smem_raw[];  // swizzle needs 128 (TMA: 1024)
  // The bulk copies' swizzle needs 1024-byte aligned tiles: the host adds 1024 bytes then.
  const std::uint32_t pad = tma ? (1024u - (ptx::smem_addr(smem_raw) & 1023u)) & 1023u : 0u;
  Elem* sQ = reinterpret_cast<Elem*>(smem_raw + pad);
  Elem* sK = sQ + Traits::kSmemQElems;
  Elem* sV = sK + Traits::kSmemKVElems;

  const AttentionParams& p = args.p;
  const FwdTile t = args.scheduler.tile(blockIdx.x);
  const SeqGeometry g = seq_geometry(p, t.batch);
  const int m0 = t.m_block * kBlockM;
  if (m0 >= g.seqlen_q) return;  // varlen: this sequence is shorter than the longest
  const int m_rows = imin(kBlockM, g.seqlen_q - m0);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  constexpr bool kBands = Traits::kBandWarps > 1;
  const int band = warp / Traits::kBandWarps, part = warp % Traits::kBandWarps;
  const int warp_row0 = band * Traits::kWarpRows;
  const int key0 = part * Traits::kWarpKeys;  // the warp's first key within each K tile
  const int head_k = t.head / (p.heads_q / p.heads_kv);

  const MaskBounds mask{g.seqlen_q, g.seqlen_k, p.window_left, p.window_right};
  const KeyRange keys = mask.keys_of_rows(m0, m0 + m_rows);
  const int n_min = keys.lo / kBlockN;
  const int n_max = keys.lo < keys.hi ? (keys.hi + kBlockN - 1) / kBlockN : n_min;

  const bool varlen = p.cu_seqlens_q != nullptr;
  const Elem* q_gmem = static_cast<const Elem*>(p.q) +
                       bshd_offset(varlen, t.batch, p.q_batch_stride, g.q_row0 + m0, p.q_row_stride, t.head, p.q_head_stride);
  const Elem* k_gmem = static_cast<const Elem*>(p.k) +
                       bshd_offset(varlen, t.batch, p.k_batch_stride, g.k_row0, p.k_row_stride, head_k, p.k_head_stride);
  const Elem* v_gmem = static_cast<const Elem*>(p.v) +
                       bshd_offset(varlen, t.batch, p.v_batch_stride, g.k_row0, p.v_row_stride, head_k, p.v_head_stride);
  const Elem* fallback = static_cast<const Elem*>(p.q);
  // The plain kernel's K / V base pointers wait in shared memory behind the V tile and are
  // re-read after each barrier of the loop: four registers back for the accumulators, which
  // took its 128 x 64 (d 128) and 128 x 128 (d 64) tiles from a spill in the loop to none.
  // (The general kernels keep them in registers: d 96 spilled with them in shared memory.)
  // (The d128 plain kernel's last spill, outside the loop: see kRecomputeTile.) Tried and worse: the
  // O / LSE bases parked here as well (4-byte spills in the d64 and d128 plain kernels on
  // both archs); the batch and head parked here for the epilogue (24 bytes at d128 on sm_90a).
  // The TMA kernel keeps its two mbarriers in that slot instead (K's phase: Q and K(n), V's:
  // V(n); both complete once per key tile), and the K / V coordinates behind them.
  // Bands: P and the row exchange slots sit between V and that slot.
  Elem* sP = sV + Traits::kSmemKVElems;
  const std::uint32_t band_rows = ptx::smem_addr(sP + Traits::kSmemPElems);
  const Elem** kv_base = reinterpret_cast<const Elem**>(sP + Traits::kSmemPElems + Traits::kSmemRowFloats * 2);
  const std::uint32_t bar_k = ptx::smem_addr(kv_base), bar_v = bar_k + 8;
  int* kv_coord = reinterpret_cast<int*>(kv_base + 2);  // TMA: head_k, batch, head, phase flip
  constexpr std::uint32_t kQBytes = Traits::kSmemQElems * 2, kKVBytes = Traits::kSmemKVElems * 2;
  // The K / V tile of key block n as one box per 64-column block, completing on `bar` (whose
  // phase's single arrival, with the phase's byte count, the caller made first).
  auto tma_kv = [&](const CUtensorMap* map, Elem* dst, int n, int hk, int b, std::uint32_t bar) {
#pragma unroll
    for (int cb = 0; cb < Traits::kHeadDim / 64; ++cb)
      ptx::cp_async_bulk_tensor_4d_g2s(ptx::smem_addr(dst + cb * kBlockN * 64), map, cb * 64, n * kBlockN, hk, b, bar);
  };
  if constexpr (tma) {
    if (tid == 0) {
      kv_coord[0] = head_k;
      kv_coord[1] = t.batch;
      kv_coord[2] = t.head;
      // Key block n completes the barriers' phase n_max - 1 - n, of parity n ^ flip: the flip
      // waits in shared memory beside the coordinates, re-read at each wait, rather
      // than in a register of the loop (d 64: 16 bytes of spills).
      kv_coord[3] = (n_max - 1) & 1;
      ptx::mbarrier_init(bar_k, 1);
      ptx::mbarrier_init(bar_v, 1);
      ptx::fence_mbarrier_init();
      // Q with K(n_max - 1), on K's barrier (alone when no key block is visible); V(n_max - 1)
      // goes out with them: the single V buffer is free before the loop.
      ptx::mbarrier_arrive_expect_tx(bar_k, kQBytes + (n_max > n_min ? kKVBytes : 0u));
#pragma unroll
      for (int cb = 0; cb < Traits::kHeadDim / 64; ++cb)
        ptx::cp_async_bulk_tensor_4d_g2s(ptx::smem_addr(sQ + cb * kBlockM * 64), &tm.q, cb * 64, m0, t.head, t.batch,
                                         bar_k);
      if (n_max > n_min) {
        tma_kv(&tm.k, sK, n_max - 1, head_k, t.batch, bar_k);
        ptx::mbarrier_arrive_expect_tx(bar_v, kKVBytes);
        tma_kv(&tm.v, sV, n_max - 1, head_k, t.batch, bar_v);
      }
    }
    __syncthreads();  // the barriers are initialised before any thread waits on them
  } else {
    if (kPlain && tid == 0) {
      kv_base[0] = k_gmem;
      kv_base[1] = v_gmem;
    }
    cp_async_tile<typename Traits::SmemQ, kThreads>(sQ, q_gmem, p.q_row_stride, m_rows, p.head_dim, fallback, tid);
    if (n_max > n_min) {
      const int n0 = (n_max - 1) * kBlockN;
      cp_async_tile<typename Traits::SmemKV, kThreads>(sK, k_gmem + n0 * p.k_row_stride, p.k_row_stride,
                                                       g.seqlen_k - n0, p.head_dim, fallback, tid);
    }
    ptx::cp_async_commit_group();
  }

  LogitsHooks hooks;
  hooks.scale = p.scale;
  hooks.softcap = p.softcap;
  hooks.softcap_in = p.softcap > 0.f ? p.scale / p.softcap : 0.f;
  hooks.alibi = p.alibi_slopes != nullptr;
  hooks.slope = hooks.alibi ? p.alibi_slopes[t.batch * p.alibi_batch_stride + t.head] : 0.f;
  hooks.diag_offset = g.seqlen_k - g.seqlen_q;
  const int bh = t.batch * p.heads_q + t.head;

  float acc_o[Traits::kMSlices][Traits::kNTilesO][4];
#pragma unroll
  for (int mi = 0; mi < Traits::kMSlices; ++mi)
#pragma unroll
    for (int dj = 0; dj < Traits::kNTilesO; ++dj)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[mi][dj][e] = 0.f;
  OnlineSoftmaxRegs<Traits::kMSlices, Traits::kNTilesS, Traits::kNTilesO> softmax;
  softmax.init();

  const std::uint32_t q_lane = a_lane_addr<typename Traits::SmemQ>(ptx::smem_addr(sQ), warp_row0, lane);
  using TKV = typename Traits::SmemKV;
  std::uint32_t k_lane = b_nk_lane_addr<TKV>(ptx::smem_addr(sK), lane);
  std::uint32_t v_lane = b_kn_trans_lane_addr<TKV>(ptx::smem_addr(sV), lane);
  if (kBands && part == 1) {  // the second half of the keys and of each 64-column block
    k_lane = TKV::template advance<Traits::kWarpKeys, 0>(k_lane);
    v_lane = TKV::template advance<0, 4>(v_lane);
  }
  const FwdBandExchange<Traits> band_x(band_rows, ptx::smem_addr(sP), band, part, lane);
  const int row_base = m0 + warp_row0;

  // TMA: Q and K(n_max - 1) (Q alone, for the epilogue's staging, when no key block is visible).
  if constexpr (tma) ptx::mbarrier_wait_parity(bar_k, 0);

  // Q in registers: wait for the Q tile (and the first K tile, same group) once up front.
  std::uint32_t q_frag[Traits::kQInRegs ? Traits::kMSlices : 1][Traits::kQInRegs ? Traits::kHeadDim / 16 : 1][4];
  if constexpr (Traits::kQInRegs) {
    if (n_max > n_min) {
      if constexpr (!tma) {
        ptx::cp_async_wait_group<0>();
        __syncthreads();
      }
      load_q_fragments<Traits>(q_frag, q_lane);
    }
  }

  for (int n = n_max - 1; n >= n_min; --n) {
    const int n0 = n * kBlockN;
    if constexpr (!tma) {  // (TMA: K(n) was waited for at the end of the last step, or before the loop)
      ptx::cp_async_wait_group<0>();
      __syncthreads();  // K(n) has landed (and kv_base); every warp is done with V(n + 1)
      const Elem* v_tile = (kPlain ? kv_base[1] : v_gmem) + n0 * p.v_row_stride;
      cp_async_tile<typename Traits::SmemKV, kThreads>(sV, v_tile, p.v_row_stride, g.seqlen_k - n0, p.head_dim,
                                                       fallback, tid);
      ptx::cp_async_commit_group();
    }

    float s[Traits::kMSlices][Traits::kNTilesS][4];
    if constexpr (Traits::kQInRegs)
      gemm_qk_rs<Traits>(s, q_frag, k_lane);
    else
      gemm_qk<Traits>(s, q_lane, k_lane);
    if constexpr (!kPlain)
      if (args.hooks) apply_logits_hooks(s, hooks, row_base, n0 + key0, lane);
    if (classify_tile(mask, m0, m0 + m_rows, n0, n0 + kBlockN) != TileKind::full)
      apply_mask(s, mask, row_base, n0 + key0, lane);

    if constexpr (tma) {
      ptx::mbarrier_wait_parity(bar_v, (n ^ ptx::ld_shared_u32(ptx::smem_addr(kv_coord + 3))) & 1);
      __syncthreads();  // every warp is done with K(n)
      if (n > n_min && tid == 0) {
        ptx::mbarrier_arrive_expect_tx(bar_k, kKVBytes);
        tma_kv(&tm.k, sK, n - 1, kv_coord[0], kv_coord[1], bar_k);
      }
    } else {
      ptx::cp_async_wait_group<0>();
      __syncthreads();  // V(n) has landed; every warp is done with K(n)
      if (n > n_min) {
        const int n1 = n0 - kBlockN;
        const Elem* k_tile = (kPlain ? kv_base[0] : k_gmem) + n1 * p.k_row_stride;
        cp_async_tile<typename Traits::SmemKV, kThreads>(sK, k_tile, p.k_row_stride, g.seqlen_k - n1, p.head_dim,
                                                         fallback, tid);
        ptx::cp_async_commit_group();
      }
    }

    if constexpr (kBands)
      softmax.update(s, acc_o, args.exp_scale, band_x);
    else
      softmax.update(s, acc_o, args.exp_scale, KeepRows{});
    if constexpr (!kPlain)
      if (args.dropout) apply_dropout(s, args.rng, bh, row_base, n0 + key0, lane);
    if constexpr (kBands) {
      band_x.template store_p<Elem>(s);
      gemm_pv_smem<Traits>(acc_o, band_x.p_lane, v_lane);
    } else {
      gemm_pv<Traits>(acc_o, s, v_lane);
    }
    if constexpr (tma) {
      // V(n - 1) right after this step's P V (the cp.async form issues it only once K(n - 1)
      // has landed): the barrier both frees V and saves the first-step test of the top.
      if (n > n_min) {
        __syncthreads();  // every warp is done with V(n)
        if (tid == 0) {
          ptx::mbarrier_arrive_expect_tx(bar_v, kKVBytes);
          tma_kv(&tm.v, sV, n - 1, kv_coord[0], kv_coord[1], bar_v);
        }
        // K(n - 1) for the next step, waited for here rather than at the top of the next step:
        // the same point of the program, but there ptxas spilled the K lane address across the
        // wait's loop (d 128: 4 bytes, stored and reloaded every step).
        ptx::mbarrier_wait_parity(bar_k, ((n - 1) ^ ptx::ld_shared_u32(ptx::smem_addr(kv_coord + 3))) & 1);
      }
    }
  }

  // The Q tile is reused as the O staging buffer: all its cp.async (issued by every thread)
  // must have landed, which the loop guarantees except when no key tile was visited. (TMA: each
  // thread waited for Q before the loop.)
  if (!tma && n_max <= n_min) {
    ptx::cp_async_wait_group<0>();
    __syncthreads();
  }
  float o_factor[Traits::kMSlices][2], lse[Traits::kMSlices][2];
  if constexpr (kBands)
    softmax.finalize(args.exp_scale, kPlain ? 1.f : args.o_extra, o_factor, lse, band_x.sums());
  else
    softmax.finalize(args.exp_scale, kPlain ? 1.f : args.o_extra, o_factor, lse, KeepRows{});
  // The d 128 plain kernel on sm_90 takes the epilogue's batch and head again from an opaque
  // block index: kept live through the loop, one of them spilled (8 bytes). Elsewhere the
  // recomputation is what spills (12-16 bytes: d 64 plain on sm_90, d 128 plain on sm_80).
  // H200, d 128 512-16k, causal and not, against the spilling code in the same run: this form
  // 0.987-1.014 (mean 0.996, inside the run-to-run spread); recomputing the sequence geometry
  // as well also removed the spill, but its loop came out slower (0.970-1.001, two calls).
  constexpr bool kRecomputeTile = kPlain && Traits::kHeadDim == 128 && kFwdSm90 && !tma;
  FwdTile te = kRecomputeTile ? args.scheduler.tile(ptx::mov_opaque_u32(blockIdx.x)) : t;
  if constexpr (tma) {  // parked beside the K / V coordinates
    te.batch = kv_coord[1];
    te.head = kv_coord[2];
  }
  Elem* o_gmem = static_cast<Elem*>(p.o) +
                 bshd_offset(varlen, te.batch, p.o_batch_stride, g.q_row0 + m0, p.o_row_stride, te.head, p.o_head_stride);
  float* lse_gmem = p.lse == nullptr ? nullptr
                                     : p.lse + bshd_offset(varlen, te.batch, p.lse_batch_stride, g.q_row0 + m0,
                                                           p.lse_row_stride, te.head, p.lse_head_stride);
  store_o_and_lse<Traits>(sQ, acc_o, o_factor, lse, o_gmem, p.o_row_stride, lse_gmem, p.lse_row_stride, m_rows,
                          p.head_dim, warp, lane);
}

template <typename Traits, bool kPlain, bool kTma = false>
__global__ void __launch_bounds__(Traits::kThreads, Traits::kMinBlocksPerSm)
    flash_fwd_kernel(const FwdKernelArgs args, const __grid_constant__ FwdTma tm) {
  if constexpr (kTma && !kFwdSm90)
    __trap();  // launched on compute capability 9.0 only; no sm_80 code for it
  else
    flash_fwd_body<Traits, kPlain, kTma>(args, tm);
}

}  // namespace flashattn::detail::sm80
