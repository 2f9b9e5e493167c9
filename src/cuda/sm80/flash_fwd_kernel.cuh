// The sm80 forward kernel (FlashAttention-2): one CTA per (batch, head, q-tile); the Q tile
// stays in shared memory, K/V tiles stream through it last-first with cp.async, and each
// warp runs S = Q K^T, the hooks, the online softmax and O += P V on its own rows. The
// kernel is a thin shell over the scheduler, the loads, the mainloop products, the softmax
// and the epilogue.
#pragma once

#include <cstdint>

#include "core/attention_params.hpp"
#include "core/mask.hpp"
#include "core/philox.hpp"
#include "cuda/ptx/cp_async.cuh"
#include "cuda/ptx/mov_opaque.cuh"
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

// kPlain compiles the logits hooks and dropout out (the call has neither, and a positive
// scale): the lighter kernel leaves ptxas the registers for the larger tiles of
// FwdConfig::Plain. Masking stays a runtime branch, taken on partial tiles only.
template <typename Traits, bool kPlain>
__global__ void __launch_bounds__(Traits::kThreads, Traits::kMinBlocksPerSm) flash_fwd_kernel(const FwdKernelArgs args) {
  using Elem = typename Traits::Elem;
  constexpr int kBlockM = Traits::kBlockM, kBlockN = Traits::kBlockN, kThreads = Traits::kThreads;
  extern __shared__ __align__(1024) unsigned char smem_raw[];  // swizzle needs 128
  Elem* sQ = reinterpret_cast<Elem*>(smem_raw);
  Elem* sK = sQ + Traits::kSmemQElems;
  Elem* sV = sK + Traits::kSmemKVElems;

  const AttentionParams& p = args.p;
  const FwdTile t = args.scheduler.tile(blockIdx.x);
  const SeqGeometry g = seq_geometry(p, t.batch);
  const int m0 = t.m_block * kBlockM;
  if (m0 >= g.seqlen_q) return;  // varlen: this sequence is shorter than the longest
  const int m_rows = imin(kBlockM, g.seqlen_q - m0);
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int warp_row0 = warp * Traits::kWarpRows;
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
  const Elem** kv_base = reinterpret_cast<const Elem**>(sV + Traits::kSmemKVElems);
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
  const std::uint32_t k_lane = b_nk_lane_addr<typename Traits::SmemKV>(ptx::smem_addr(sK), lane);
  const std::uint32_t v_lane = b_kn_trans_lane_addr<typename Traits::SmemKV>(ptx::smem_addr(sV), lane);
  const int row_base = m0 + warp_row0;

  // Q in registers: wait for the Q tile (and the first K tile, same group) once up front.
  std::uint32_t q_frag[Traits::kQInRegs ? Traits::kMSlices : 1][Traits::kQInRegs ? Traits::kHeadDim / 16 : 1][4];
  if constexpr (Traits::kQInRegs) {
    if (n_max > n_min) {
      ptx::cp_async_wait_group<0>();
      __syncthreads();
      load_q_fragments<Traits>(q_frag, q_lane);
    }
  }

  for (int n = n_max - 1; n >= n_min; --n) {
    const int n0 = n * kBlockN;
    ptx::cp_async_wait_group<0>();
    __syncthreads();  // K(n) has landed (and kv_base); every warp is done with V(n + 1)
    const Elem* v_tile = (kPlain ? kv_base[1] : v_gmem) + n0 * p.v_row_stride;
    cp_async_tile<typename Traits::SmemKV, kThreads>(sV, v_tile, p.v_row_stride, g.seqlen_k - n0, p.head_dim,
                                                     fallback, tid);
    ptx::cp_async_commit_group();

    float s[Traits::kMSlices][Traits::kNTilesS][4];
    if constexpr (Traits::kQInRegs)
      gemm_qk_rs<Traits>(s, q_frag, k_lane);
    else
      gemm_qk<Traits>(s, q_lane, k_lane);
    if constexpr (!kPlain)
      if (args.hooks) apply_logits_hooks(s, hooks, row_base, n0, lane);
    if (classify_tile(mask, m0, m0 + m_rows, n0, n0 + kBlockN) != TileKind::full)
      apply_mask(s, mask, row_base, n0, lane);

    ptx::cp_async_wait_group<0>();
    __syncthreads();  // V(n) has landed; every warp is done with K(n)
    if (n > n_min) {
      const int n1 = n0 - kBlockN;
      const Elem* k_tile = (kPlain ? kv_base[0] : k_gmem) + n1 * p.k_row_stride;
      cp_async_tile<typename Traits::SmemKV, kThreads>(sK, k_tile, p.k_row_stride, g.seqlen_k - n1, p.head_dim,
                                                       fallback, tid);
      ptx::cp_async_commit_group();
    }

    softmax.update(s, acc_o, args.exp_scale);
    if constexpr (!kPlain)
      if (args.dropout) apply_dropout(s, args.rng, bh, row_base, n0, lane);
    gemm_pv<Traits>(acc_o, s, v_lane);
  }

  // The Q tile is reused as the O staging buffer: all its cp.async (issued by every thread)
  // must have landed, which the loop guarantees except when no key tile was visited.
  if (n_max <= n_min) {
    ptx::cp_async_wait_group<0>();
    __syncthreads();
  }
  float o_factor[Traits::kMSlices][2], lse[Traits::kMSlices][2];
  softmax.finalize(args.exp_scale, kPlain ? 1.f : args.o_extra, o_factor, lse);
  // The d 128 plain kernel on sm_90 takes the epilogue's batch and head again from an opaque
  // block index: kept live through the loop, one of them spilled (8 bytes). Elsewhere the
  // recomputation is what spills (12-16 bytes: d 64 plain on sm_90, d 128 plain on sm_80).
  // H200, d 128 512-16k, causal and not, against the spilling code in the same run: this form
  // 0.987-1.014 (mean 0.996, inside the run-to-run spread); recomputing the sequence geometry
  // as well also removed the spill, but its loop came out slower (0.970-1.001, two calls).
  constexpr bool kRecomputeTile = kPlain && Traits::kHeadDim == 128 && kFwdSm90;
  const FwdTile te = kRecomputeTile ? args.scheduler.tile(ptx::mov_opaque_u32(blockIdx.x)) : t;
  Elem* o_gmem = static_cast<Elem*>(p.o) +
                 bshd_offset(varlen, te.batch, p.o_batch_stride, g.q_row0 + m0, p.o_row_stride, te.head, p.o_head_stride);
  float* lse_gmem = p.lse == nullptr ? nullptr
                                     : p.lse + bshd_offset(varlen, te.batch, p.lse_batch_stride, g.q_row0 + m0,
                                                           p.lse_row_stride, te.head, p.lse_head_stride);
  store_o_and_lse<Traits>(sQ, acc_o, o_factor, lse, o_gmem, p.o_row_stride, lse_gmem, p.lse_row_stride, m_rows,
                          p.head_dim, warp, lane);
}

}  // namespace flashattn::detail::sm80
