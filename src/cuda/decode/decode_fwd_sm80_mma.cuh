// Decode attention kernel for sm_80+ (mma.sync m16n8k16, ldmatrix, cp.async).
//
// One CTA = (batch b, KV head, group of up to 64 query rows, split). The rows are all query
// heads of the KV head times the new tokens (row r = t * group + g), so each K/V byte the CTA
// streams is used by every head of its group: with GQA 32/8 and one token a CTA has 4 real
// rows in one m16 tile, and the tensor cores' idle rows cost nothing next to the memory
// stream. K/V tiles of 16 keys per warp go through a kStages-deep cp.async ring of swizzled
// shared memory (16-byte copies, stages-1 tiles in flight per CTA; DecodeTile says how many
// warps and CTAs per SM). The warps split the rows into m16 tiles (1, 2 or 4) and the tile's
// keys between them (the rest of the warps: 8, 4, 2 ways with 8 warps); warps that shared
// rows merge their (m, l, O) states at the end through shared memory. Masking (causal / window / split edge), softcap and ALiBi are
// applied to every score: the decode kernel is bound by memory, not by these few ops.
// Positions are addressed through CacheRows, so paged and contiguous caches give
// bit-identical outputs (same values, same order; only the copies' addresses differ).
// With splits, the parts are merged in the same kernel: on sm_90 by the cluster that holds the
// splits of one (batch, KV head, row group), through distributed shared memory
// (decode_cluster_merge.cuh), elsewhere by the last CTA of each to finish
// (decode_combine_kernel.cuh). No second kernel either way.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/mask.hpp"
#include "core/online_softmax.hpp"
#include "cuda/decode/decode_cluster_merge.cuh"
#include "cuda/decode/decode_combine_kernel.cuh"
#include "cuda/decode/decode_instances.hpp"
#include "cuda/decode/decode_l2_prefetch.cuh"
#include "cuda/decode/decode_rotary.cuh"
#include "cuda/decode/decode_types.cuh"
#include "cuda/ptx/acquire_release.cuh"
#include "cuda/ptx/cp_async.cuh"
#include "cuda/ptx/createpolicy.cuh"
#include "cuda/ptx/ex2.cuh"
#include "cuda/ptx/griddepcontrol.cuh"
#include "cuda/ptx/ldmatrix.cuh"
#include "cuda/ptx/mma.cuh"
#include "inference/decode_params.hpp"

namespace flashattn::detail::decode {

template <int kD, SmemTier kTier = SmemTier::kib227>
struct DecodeTile {
  // Each warp takes 16 keys of a tile per row tile, so a tile holds 16 keys per warp. Eight
  // warps (one CTA per SM at head dim 128: 3 stages of 128 x 128 bf16 K and V = 192 KB + 16 KB
  // Q; two at 64) rather than four with half the tile: a short split (batch 1, a few thousand
  // keys) is bound by the latency of each warp's instruction stream, with one warp per
  // scheduler, and the wider tile halves the tiles, hence the per-tile work, each warp walks
  // (H200, graph-replayed, one run; with Q loaded first, the per-row epilogue merge and
  // ex2.approx, all for the same reason: batch 1 x 256 keys 10.1 -> 7.7 us, x 4k keys 17.8 ->
  // 13.8, x 8k 23.6 -> 17.3). Two tiles (128 KB) stay in flight per SM either way. Head
  // dim 256 keeps four warps: a 128-key stage of it would be 128 KB; its three 64-key stages
  // (224 KB with Q) keep two tiles in flight as head dim 128 does, on splits of >= 4k keys
  // (shorter ones run the two-stage tile faster: decode_launch.cu).
  // Smaller budgets drop a stage first (one tile in flight while the other is used: enough
  // for A100's ~1.5-2 TB/s over 108 SMs), then halve the warps and with them the tile:
  //   tier      d 64                 d 128                d 256
  //   227 KiB   8 warps x 3: 104 KB  8 warps x 3: 208 KB  4 warps x 3: 224 KB
  //   163 KiB   (the 227 KiB tile)   8 warps x 2: 144 KB  4 warps x 2: 160 KB
  //    99 KiB   8 warps x 2:  72 KB  4 warps x 2:  80 KB  2 warps x 2:  80 KB (32 rows)
  static constexpr bool kKib99 = kTier == SmemTier::kib99;
  static constexpr int kWarps = kD <= 64 ? 8 : kD <= 128 ? (kKib99 ? 4 : 8) : (kKib99 ? 2 : 4);
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kTileN = 16 * kWarps;  // keys per pipeline stage
  // Keys a CTA launched programmatically prefetches to L2 while it waits for the grid before it
  // (decode_l2_prefetch.cuh): one tile. More took DRAM bandwidth from the grid still running
  // (H200, graph us, 0 / 1 / 2 / 4 tiles, one run: batch 8 x 8k 66.3 / 65.3 / 65.7 / 66.4,
  // 64 x 4k 244.5 / 244.4 / 246.9 / 251.6).
  static constexpr int kPrefetchKeys = kTileN;
  // Query rows per CTA: up to 4 m16 tiles, one per warp at least (the warps split a row
  // tile's keys among them).
  static constexpr int kMaxRows = 16 * (kWarps < 4 ? kWarps : 4);
  static constexpr int kStages = kTier == SmemTier::kib227 || (kD <= 64 && kTier == SmemTier::kib163) ? 3 : 2;
  static constexpr int kChunks = kD / 8;  // 16-byte chunks per row
  static constexpr int kTileElems = kTileN * kD;
  static constexpr int kRowStep = kThreads / kChunks;         // rows one pass of the CTA copies
  static constexpr int kRowsPerThread = kTileN / kRowStep;
  // Q fragments stay in registers for head dims up to 128 (32 registers); at 256 they would
  // spill, so they are re-read from shared memory with ldmatrix instead.
  static constexpr bool kQInRegisters = kD <= 128;
  static constexpr std::size_t kSmemQ = std::size_t(kMaxRows) * kD * 2;
  static constexpr std::size_t kSmemKV = std::size_t(kStages) * 2 * kTileElems * 2;
  // Epilogue: each warp's O rows, (m, l) and merge weight per warp row, LSE per CTA row.
  // O rows padded by 8 floats: a warp's fragment store covers 8 rows of one column block, which
  // at a row stride of kD floats all hit the same banks (8-way conflicts, ~1 us of a batch-1
  // call's epilogue); at kD + 8 the rows spread over all 32 banks.
  static constexpr int kOStride = kD + 8;
  static constexpr std::size_t kSmemMerge = std::size_t(kWarps) * 16 * kOStride * 4 + 3 * kWarps * 16 * 4 + kMaxRows * 4;
  static constexpr std::size_t kSmem = kSmemQ + (kSmemKV > kSmemMerge ? kSmemKV : kSmemMerge);
  static_assert(kD % 64 == 0, "the XOR swizzle needs at least 8 chunks per row");

  // Element offset of (row, 16-byte chunk) in a swizzled [rows][kD] tile: chunk ^ (row % 8)
  // puts the 8 rows one ldmatrix reads at one column into 8 different bank groups.
  static __device__ __forceinline__ int swz(int row, int chunk) { return row * kD + ((chunk ^ (row & 7)) << 3); }
};

template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  const std::uint32_t b[2] = {b0, b1};
  if constexpr (std::is_same_v<T, __half>) ptx::mma_m16n8k16_f32_f16(d, a, b, d);
  else ptx::mma_m16n8k16_f32_bf16(d, a, b, d);
}

// kLaunch (decode_instances.hpp): launched with programmatic stream serialization (sm_90 code
// only), the kernel lets its dependents start and waits for the grid before it; the unsplit
// calls' instance first prefetches its first tile to L2 (decode_l2_prefetch.cuh). Template
// parameters, not runtime flags: a block, even skipped, changes the code the compiler makes of
// the rest of the kernel, and batch-1 calls (their time mostly prologue and epilogue) pay for it
// (H200, graph-replayed: the programmatic block behind a runtime flag, 1 x 4k 11.7 -> 12.9 us,
// 1 x 8k 15.3 -> 18.4; split calls in the prefetching instance with the prefetch skipped, 1 x 4k
// 11.3-11.4 -> 12.0-12.1, 1 x 8k 14.7 -> 16.3-16.5).
template <typename T, int kD, SmemTier kTier, KernelLaunch kLaunch>
__global__ void __launch_bounds__(DecodeTile<kD, kTier>::kThreads, 1)
    decode_attention_kernel(const DecodeParams p, float* o_part, float* lse_part, int splits, unsigned* split_counters,
                            bool cluster_merge) {
  using Tile = DecodeTile<kD, kTier>;
  using E = ElementTraits<T>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sKV = reinterpret_cast<T*>(smem_raw + Tile::kSmemQ);

  const int group = p.heads_q / p.heads_kv;
  const int M = group * p.seqlen_q;
  const int row_groups = (M + Tile::kMaxRows - 1) / Tile::kMaxRows;
  const int kvh = blockIdx.x / row_groups, rg = blockIdx.x % row_groups;
  const int b = blockIdx.y, split = blockIdx.z;
  const int row0 = rg * Tile::kMaxRows;
  const int rows = min(Tile::kMaxRows, M - row0);
  const int wm_count = rows <= 16 ? 1 : (rows <= 32 ? 2 : 4);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp % wm_count, wn = warp / wm_count;

  if constexpr (kLaunch != KernelLaunch::stream_order) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // The next grid launched programmatically may start once every CTA of this one has: its
    // CTAs take the SMs this grid's last wave (or merge) leaves idle.
    ptx::griddepcontrol_launch_dependents();
    if constexpr (kLaunch == KernelLaunch::programmatic_l2_prefetch) {
      const MaskBounds hint{p.seqlen_q, p.seqlen_k(b), p.window_left, p.window_right};  // a hint read
      const KeyRange keys = hint.keys_of_rows(row0 / group, (row0 + rows - 1) / group + 1);
      int h0, h1;
      decode_split_range(keys.lo, keys.hi, Tile::kTileN, splits, split, h0, h1);
      prefetch_cache_rows_to_l2<T>(p, b, kvh, h0, min(h1, h0 + Tile::kPrefetchKeys), Tile::kThreads);
    }
    ptx::griddepcontrol_wait();  // before any read of what the grid before may write
#else
    __trap();  // the host launches programmatically only sm_90 code
#endif
  }
  const int L = p.seqlen_k(b);
  const MaskBounds mb{p.seqlen_q, L, p.window_left, p.window_right};
  const KeyRange all = mb.keys_of_rows(row0 / group, (row0 + rows - 1) / group + 1);
  int k0, k1;
  decode_split_range(all.lo, all.hi, Tile::kTileN, splits, split, k0, k1);
  const int n_tiles = (k1 - k0 + Tile::kTileN - 1) / Tile::kTileN;

  // Each thread copies one 16-byte chunk column of kRowsPerThread CONSECUTIVE rows per tile
  // (rows r_first * kRowsPerThread + i): the swizzled layout takes any row order, and a run
  // of 8 consecutive rows (d128) lies inside one block for every power-of-two block_size >= 8
  // when it starts on a multiple of 8, so each thread reads the table once per tile and steps
  // a pointer row to row, exactly as in a contiguous cache. A run that straddles a block
  // (block sizes that are not powers of two or below 8, or split edges off the grid) falls
  // back to one lookup per row.
  // History (H200, GQA 32/8, d128, bf16, batch 64 x 16k; contiguous ~950-970 us):
  // - rows 8 apart, one lookup per row: paged16 1140-1170 us, and 1143 us with the pages laid
  //   out in order (decode_bench B Sk 16 20 1 inorder): the cost was this path's per-row work
  //   (table load, clamp, 64-bit address maths, 8 per thread per tile), not where pages lie.
  // - reading the block ids one tile ahead into registers, then eight per thread (one per row):
  //   1.17 -> 1.57 ms; one tile ahead into shared memory, one id per thread, read back per row:
  //   1140 -> 1250 us. (One id per thread's run, read a tile ahead, is what block_of does now.)
  // - a CTA-uniform "tile inside one block" test (paged256 ~960 us) is subsumed by the
  //   per-thread run test below.
  // - consecutive rows per thread, one lookup per run (this code), measured against the
  //   rows-8-apart build in one H200 session, decode_bench B Sk bs 50, old -> new (us):
  //     64 x 16k: contiguous 973 -> 971, paged16 1139 -> 973, paged256 981 -> 974,
  //               paged16 in order 1140 -> 961;
  //      8 x 8k:  contiguous 76.0 -> 76.5, paged16 88.5 -> 77.4, paged256 77.0 -> 76.8;
  //      1 x 64k (33 splits): contiguous 78.4 -> 80.2, paged16 90.8 -> 81.7,
  //               paged256 79.2 -> 80.5 (the ~2% at batch 1 is not understood).
  //   Predicted: the per-row work was the whole gap, so paged16 should land on contiguous.
  // (The stream stays inline: moved into a struct of its own, with the same statements, it
  // changed the generated code of every tile — the batch clamp became branches, d64 gained 0.5%
  // instructions — so that move waits for a GPU session to measure it.)
  const int chunk = threadIdx.x % Tile::kChunks;
  const int r_first = (threadIdx.x / Tile::kChunks) * Tile::kRowsPerThread;
  const bool dvalid = chunk * 8 < p.head_dim;
  const CacheRows& kr = p.k_rows;
  const CacheRows& vr = p.v_rows;
  const T* kc = static_cast<const T*>(p.k_cache) + kvh * kr.head_stride + chunk * 8;
  const T* vc = static_cast<const T*>(p.v_cache) + kvh * vr.head_stride + chunk * 8;
  if (kr.block_table == nullptr) {  // contiguous: fold the batch row in once
    int bi = kr.batch_idx != nullptr ? kr.batch_idx[b] : b;
    bi = bi < 0 ? 0 : (bi >= kr.num_blocks ? kr.num_blocks - 1 : bi);
    kc += bi * kr.block_stride;
    vc += bi * vr.block_stride;
  }
  const int* table = kr.block_table != nullptr ? kr.block_table + b * kr.block_table_stride : nullptr;
  // The cache block holding this thread's run of rows in `tile`, or -1 when the run is not
  // inside one block (or there is no table). Read one tile ahead of its copies: with one CTA
  // per SM nothing else hides the table load's latency, and waiting for it before each refill
  // cost paged16 ~7% against the contiguous cache (H200, batch 16 x 16k keys).
  auto block_of = [&](int tile) {
    const int pos0 = k0 + tile * Tile::kTileN + r_first;
    if (table == nullptr || p.block_shift < 0 || pos0 >= k1 ||
        (pos0 >> p.block_shift) != ((pos0 + Tile::kRowsPerThread - 1) >> p.block_shift))
      return -1;
    return table[pos0 >> p.block_shift];
  };
  // The cache is read once per call: its lines leave L2 first, so the stream does not push out
  // what other accesses reuse (0.3-0.9% on the shapes from 1 x 64k keys up; batch 1 x 4k
  // unchanged: decode_heuristics.hpp).
  const std::uint64_t stream_policy = ptx::createpolicy_evict_first();
  auto load_tile = [&](int tile, int stage, int run_block) {
    T* sK = sKV + stage * 2 * Tile::kTileElems;
    T* sV = sK + Tile::kTileElems;
    const int pos0 = k0 + tile * Tile::kTileN + r_first;  // the first row of this thread's run
    bool run = table == nullptr;
    const T* kp = kc;
    const T* vp = vc;
    if (!run && run_block >= 0) {
      const int blk = run_block >= kr.num_blocks ? kr.num_blocks - 1 : run_block;
      const int row = pos0 & (kr.block_size - 1);
      kp += blk * kr.block_stride + row * kr.row_stride;
      vp += blk * vr.block_stride + row * vr.row_stride;
      run = true;
    } else if (run) {
      kp += pos0 * kr.row_stride;
      vp += pos0 * vr.row_stride;
    }
#pragma unroll
    for (int i = 0; i < Tile::kRowsPerThread; ++i) {
      const int r = r_first + i, pos = pos0 + i;
      const bool valid = dvalid && pos < k1;
      const T* ka = valid ? kp : kc;  // a zero-byte copy still gets an address inside the cache
      const T* va = valid ? vp : vc;
      if (!run && valid) {
        int blk, row;
        if (p.block_shift >= 0) {
          blk = table[pos >> p.block_shift];
          row = pos & (kr.block_size - 1);
        } else {
          const int bi = pos / kr.block_size;
          blk = table[bi];
          row = pos - bi * kr.block_size;
        }
        blk = blk < 0 ? 0 : (blk >= kr.num_blocks ? kr.num_blocks - 1 : blk);
        ka = kc + (blk * kr.block_stride + row * kr.row_stride);
        va = vc + (blk * vr.block_stride + row * vr.row_stride);
      }
      ptx::cp_async_cg_16_hint(ptx::smem_addr(sK + Tile::swz(r, chunk)), ka, valid, stream_policy);
      ptx::cp_async_cg_16_hint(ptx::smem_addr(sV + Tile::swz(r, chunk)), va, valid, stream_policy);
      kp += kr.row_stride;
      vp += vr.row_stride;
    }
  };


  // Q first, as its own cp.async group: requests queue in order, and Q issued behind the K/V
  // tiles arrived only after them (2-3 us into a batch-1 call on an H200). Rotary or unaligned
  // rows take the element path below, after the K/V stream has started.
  const T* q = static_cast<const T*>(p.q);
  const bool q_async = p.rotary_dim == 0 && p.q_aligned16;
  if (q_async) {
    for (int e = threadIdx.x; e < wm_count * 16 * Tile::kChunks; e += Tile::kThreads) {
      const int r = e / Tile::kChunks, c = e % Tile::kChunks, R = row0 + r;
      const bool valid = r < rows && c * 8 < p.head_dim;
      const T* src = q;  // a zero-byte copy (padding rows, columns) still gets a valid address
      if (valid) {
        const int t = R / group, h = kvh * group + R % group;
        src = q + b * p.q_batch_stride + t * p.q_row_stride + h * p.q_head_stride + c * 8;
      }
      ptx::cp_async_cg_16(ptx::smem_addr(sQ + Tile::swz(r, c)), src, valid);
    }
  }
  ptx::cp_async_commit_group();
  // The first tiles' block ids are read together: one table latency before the stream starts.
  int first_blocks[Tile::kStages];
#pragma unroll
  for (int s = 0; s < Tile::kStages; ++s) first_blocks[s] = block_of(s);
#pragma unroll
  for (int s = 0; s < Tile::kStages - 1; ++s) {
    if (s < n_tiles) load_tile(s, s, first_blocks[s]);
    ptx::cp_async_commit_group();
  }
  int next_block = first_blocks[Tile::kStages - 1];
  {
    if (!q_async) {
      for (int e = threadIdx.x; e < wm_count * 16 * kD; e += Tile::kThreads) {
        const int r = e / kD, d = e % kD, R = row0 + r;
        float x = 0.f;
        if (r < rows && d < p.head_dim) {
          const int t = R / group, h = kvh * group + R % group;
          const T* qrow = q + b * p.q_batch_stride + t * p.q_row_stride + h * p.q_head_stride;
          if (p.rotary_dim > 0)
            x = rotary_element<T>(p, rotary_q_position(p, b, t), d, [&](int j) { return E::to_float(qrow[j]); });
          else
            x = E::to_float(qrow[d]);
        }
        sQ[Tile::swz(r, d / 8) + d % 8] = E::from_float(x);
      }
    }
  }

  // The two rows this thread holds in the mma fragments: local rows lane/4 and lane/4 + 8.
  int lo[2], hi[2];
  float slope[2];
#pragma unroll
  for (int sel = 0; sel < 2; ++sel) {
    const int r = wm * 16 + lane / 4 + sel * 8, R = row0 + r;
    lo[sel] = 0, hi[sel] = 0, slope[sel] = 0.f;
    if (r < rows) {
      const KeyRange kr = mb.keys_of_row(R / group);
      lo[sel] = kr.lo;
      hi[sel] = min(kr.hi, k1);
      if (p.alibi_slopes) slope[sel] = p.alibi_slopes[b * p.alibi_batch_stride + kvh * group + R % group];
    }
  }

  float o[kD / 8][4];
#pragma unroll
  for (int i = 0; i < kD / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int mi = lane / 8;
  // Tiles every row of the CTA sees completely need no per-element mask; with no softcap and
  // no ALiBi their logits are one multiply.
  const bool plain_logits = p.softcap == 0.f && p.alibi_slopes == nullptr;
  const int full_lo = mb.keys_of_row((row0 + rows - 1) / group).lo;  // the latest lo of the rows
  const int full_hi = min(mb.keys_of_row(row0 / group).hi, k1);      // the earliest hi

  ptx::cp_async_wait_group<Tile::kStages - 1>();  // the Q group (the K/V tiles may still fly)
  __syncthreads();  // Q is in shared memory
  std::uint32_t qf[Tile::kQInRegisters ? kD / 16 : 1][4];
  if constexpr (Tile::kQInRegisters) {
#pragma unroll
    for (int ks = 0; ks < kD / 16; ++ks)
      ptx::ldmatrix_x4(qf[ks], ptx::smem_addr(sQ + Tile::swz(wm * 16 + lane % 16, ks * 2 + lane / 16)));
  }

  for (int tile = 0; tile < n_tiles; ++tile) {
    ptx::cp_async_wait_group<Tile::kStages - 2>();
    __syncthreads();  // the tile is visible to all warps; the stage refilled below is free
    {
      const int nt = tile + Tile::kStages - 1;
      if (nt < n_tiles) load_tile(nt, nt % Tile::kStages, next_block);
      next_block = block_of(nt + 1);
      ptx::cp_async_commit_group();
    }
    const T* sK = sKV + (tile % Tile::kStages) * 2 * Tile::kTileElems;
    const T* sV = sK + Tile::kTileElems;
    const int c0 = k0 + tile * Tile::kTileN;
    const bool fast = plain_logits && c0 >= full_lo && c0 + Tile::kTileN <= full_hi;
    for (int i = 0; i < wm_count; ++i) {
      const int st = wn * wm_count + i;  // 16-key subtile of this warp
      float s[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
#pragma unroll
      for (int ks = 0; ks < kD / 16; ++ks) {
        std::uint32_t kb[4];
        ptx::ldmatrix_x4(kb, ptx::smem_addr(sK + Tile::swz(st * 16 + (mi / 2) * 8 + lane % 8, ks * 2 + mi % 2)));
        if constexpr (Tile::kQInRegisters) {
          mma_16816<T>(s[0], qf[ks], kb[0], kb[1]);
          mma_16816<T>(s[1], qf[ks], kb[2], kb[3]);
        } else {
          std::uint32_t a[4];
          ptx::ldmatrix_x4(a, ptx::smem_addr(sQ + Tile::swz(wm * 16 + lane % 16, ks * 2 + lane / 16)));
          mma_16816<T>(s[0], a, kb[0], kb[1]);
          mma_16816<T>(s[1], a, kb[2], kb[3]);
        }
      }
      if (fast) {
#pragma unroll
        for (int nb = 0; nb < 2; ++nb)
#pragma unroll
          for (int e = 0; e < 4; ++e) s[nb][e] *= p.scale_log2;
      } else {
        // Logits in base 2, masked keys -inf.
#pragma unroll
        for (int nb = 0; nb < 2; ++nb)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int sel = e / 2;
            const int key = c0 + st * 16 + nb * 8 + 2 * (lane % 4) + (e % 2);
            float x = s[nb][e];
            x = p.softcap > 0.f ? p.softcap * tanhf(x * p.scale / p.softcap) : x * p.scale;
            if (p.alibi_slopes) {
              const int dist = (lane / 4 + sel * 8 + wm * 16 + row0) / group + L - p.seqlen_q - key;
              x -= slope[sel] * static_cast<float>(dist < 0 ? -dist : dist);
            }
            s[nb][e] = (key >= lo[sel] && key < hi[sel]) ? x * kLog2e : -INFINITY;
          }
      }
      float factor[2];
#pragma unroll
      for (int sel = 0; sel < 2; ++sel) {
        float mx = fmaxf(fmaxf(s[0][2 * sel], s[0][2 * sel + 1]), fmaxf(s[1][2 * sel], s[1][2 * sel + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m[sel], mx);
        const float m_use = m_new == -INFINITY ? 0.f : m_new;  // no key yet: keep exp2 finite
        factor[sel] = ptx::ex2_approx_ftz(m[sel] - m_use);
        float sum = 0.f;
#pragma unroll
        for (int nb = 0; nb < 2; ++nb)
#pragma unroll
          for (int e = 2 * sel; e < 2 * sel + 2; ++e) {
            s[nb][e] = ptx::ex2_approx_ftz(s[nb][e] - m_use);
            sum += s[nb][e];
          }
        l[sel] = l[sel] * factor[sel] + sum;  // per-thread partial: the quad sums once at the end
        m[sel] = m_new;
      }
      // Once the running maximum settles the factors are 1: skip the rescale of O then.
      if (__any_sync(0xffffffffu, factor[0] != 1.f || factor[1] != 1.f)) {
#pragma unroll
        for (int nb = 0; nb < kD / 8; ++nb) {
          o[nb][0] *= factor[0], o[nb][1] *= factor[0];
          o[nb][2] *= factor[1], o[nb][3] *= factor[1];
        }
      }
      const std::uint32_t pa[4] = {E::pack2(s[0][0], s[0][1]), E::pack2(s[0][2], s[0][3]),
                                   E::pack2(s[1][0], s[1][1]), E::pack2(s[1][2], s[1][3])};
#pragma unroll
      for (int ds = 0; ds < kD / 16; ++ds) {
        std::uint32_t vb[4];
        ptx::ldmatrix_x4_trans(vb, ptx::smem_addr(sV + Tile::swz(st * 16 + (mi % 2) * 8 + lane % 8, ds * 2 + mi / 2)));
        mma_16816<T>(o[2 * ds], pa, vb[0], vb[1]);
        mma_16816<T>(o[2 * ds + 1], pa, vb[2], vb[3]);
      }
    }
  }

  // ---- epilogue: merge the warps that shared rows, then store O / LSE or the split's part.
  ptx::cp_async_wait_group<0>();
  __syncthreads();
#pragma unroll
  for (int sel = 0; sel < 2; ++sel) {
    l[sel] += __shfl_xor_sync(0xffffffffu, l[sel], 1);
    l[sel] += __shfl_xor_sync(0xffffffffu, l[sel], 2);
  }
  float* sO = reinterpret_cast<float*>(smem_raw + Tile::kSmemQ);
  float* sM = sO + Tile::kWarps * 16 * Tile::kOStride;
  float* sL = sM + Tile::kWarps * 16;
  // Only the m-tile's real rows: a GQA group of 4 fills 4 of 16, and the padding rows' stores
  // were three quarters of the epilogue's shared-memory traffic (the merge below reads r < rows).
  const int wrows = rows - wm * 16;
#pragma unroll
  for (int sel = 0; sel < 2; ++sel) {
    if (sel * 8 >= wrows) break;  // warp-uniform
    const int r = lane / 4 + sel * 8;
    if (r < wrows) {
#pragma unroll
      for (int nb = 0; nb < kD / 8; ++nb) {
        const int col = nb * 8 + 2 * (lane % 4);
        *reinterpret_cast<float2*>(&sO[(warp * 16 + r) * Tile::kOStride + col]) = make_float2(o[nb][2 * sel], o[nb][2 * sel + 1]);
      }
    }
  }
  if (lane % 4 == 0) {
    sM[warp * 16 + lane / 4] = m[0], sM[warp * 16 + lane / 4 + 8] = m[1];
    sL[warp * 16 + lane / 4] = l[0], sL[warp * 16 + lane / 4 + 8] = l[1];
  }
  __syncthreads();
  // The (m, l) of the warps that shared a row are merged once per row, not per element: thread
  // (r, w) holds warp w's state of row r and a butterfly over the wn_count threads of the row
  // merges them; sW[src] becomes the weight of warp row src in the normalised output, and the
  // columns need one multiply-add per warp (a per-element merge cost ~2.6 us of a batch-1 call
  // at one warp per scheduler). rows * wn_count <= kWarps * 16, whole warps.
  const int wn_count = Tile::kWarps / wm_count;
  float* sW = sL + Tile::kWarps * 16;
  float* sLse = sW + Tile::kWarps * 16;
  if (threadIdx.x < Tile::kWarps * 16) {
    const int r = threadIdx.x / wn_count, w = threadIdx.x % wn_count;
    const int src = (r / 16 + w * wm_count) * 16 + r % 16;
    SoftmaxStats part;
    if (r < rows) part.m = sM[src], part.l = sL[src];
    SoftmaxStats st = part;
    for (int off = 1; off < wn_count; off <<= 1) {
      SoftmaxStats other;
      other.m = __shfl_xor_sync(0xffffffffu, st.m, off);
      other.l = __shfl_xor_sync(0xffffffffu, st.l, off);
      float fa, fb;
      st.merge(other, fa, fb);
    }
    if (r < rows) {
      sW[src] = (part.m == -INFINITY || st.m == -INFINITY) ? 0.f : exp2f(part.m - st.m) * st.inv_sum();
      if (w == 0) sLse[r] = st.lse();
    }
  }
  __syncthreads();
  const int rows_total = p.batch * p.heads_q * p.seqlen_q;
  constexpr int kQuads = kD / 4;
  // The warps' rows weighted and summed, the warp count a compile-time constant so the loads
  // of all kWn warp rows issue together (a runtime loop waited on each in turn).
  auto merge_warps_and_store = [&](auto wn_constant) {
    constexpr int kWn = decltype(wn_constant)::value, kWm = Tile::kWarps / kWn;
    for (int e = threadIdx.x; e < rows * kQuads; e += Tile::kThreads) {
      const int r = e / kQuads, d = (e % kQuads) * 4;
      if (d >= p.head_dim) continue;  // head_dim is a multiple of 8: quads are whole
      const int tm = r / 16, rr = r % 16;
      float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
      for (int i = 0; i < kWn; ++i) {
        const int src = (tm + i * kWm) * 16 + rr;
        const float wt = sW[src];
        const float4 v = *reinterpret_cast<const float4*>(&sO[src * Tile::kOStride + d]);
        if (wt != 0.f) acc.x += v.x * wt, acc.y += v.y * wt, acc.z += v.z * wt, acc.w += v.w * wt;  // 0: saw no key
      }
      const int R = row0 + r, t = R / group, h = kvh * group + R % group;
      if (splits > 1 && cluster_merge) {
        // The part stays in this CTA's shared memory, in place of the first warp row it read:
        // row r of the part is sO row r (r = tm * 16 + rr, the i = 0 source), read and written
        // by this thread only.
        *reinterpret_cast<float4*>(&sO[r * Tile::kOStride + d]) = acc;
      } else if (splits == 1) {
        T* out = static_cast<T*>(p.o) + b * p.o_batch_stride + t * p.o_row_stride + h * p.o_head_stride + d;
        out[0] = E::from_float(acc.x), out[1] = E::from_float(acc.y);
        out[2] = E::from_float(acc.z), out[3] = E::from_float(acc.w);
        if (d == 0 && p.lse != nullptr) p.lse[b * p.lse_batch_stride + h * p.lse_head_stride + t * p.lse_row_stride] = sLse[r];
      } else {
        const std::int64_t row_id = (static_cast<std::int64_t>(split) * rows_total) + (static_cast<std::int64_t>(b) * p.heads_q + h) * p.seqlen_q + t;
        *reinterpret_cast<float4*>(o_part + row_id * p.head_dim + d) = acc;
        if (d == 0) lse_part[row_id] = sLse[r];
      }
    }
  };
  if (wm_count == 1) merge_warps_and_store(std::integral_constant<int, Tile::kWarps>{});
  else if (wm_count == 2) merge_warps_and_store(std::integral_constant<int, Tile::kWarps / 2>{});
  else if constexpr (Tile::kWarps >= 4) merge_warps_and_store(std::integral_constant<int, Tile::kWarps / 4>{});
  if (splits > 1 && cluster_merge) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    merge_cluster_parts<T, Tile::kThreads>(p, sO, Tile::kOStride, sLse, rows, splits, split, b, kvh, row0, group);
#else
    __trap();  // the host asks for the cluster merge only from sm_90 code
#endif
  } else if (splits > 1) {
    // The last CTA of this (batch, KV head, row group) to finish merges every split's part of
    // its rows. The barrier makes every thread's part visible to thread 0, whose acq_rel
    // arrival publishes them (release is cumulative) and, in the last CTA, acquires every other
    // CTA's parts; the second barrier hands that on to the CTA's threads: one fenced atomic per
    // CTA instead of a __threadfence in every thread. The last CTA zeroes the counter for the
    // next call (split_scratch.hpp). The flag lives in the Q region, unused since the main
    // loop (a static __shared__ int would add to a footprint sized to the SM).
    int* last = reinterpret_cast<int*>(smem_raw);
    __syncthreads();
    if (threadIdx.x == 0) {
      unsigned* counter = &split_counters[blockIdx.y * gridDim.x + blockIdx.x];
      const bool is_last = ptx::atom_add_acq_rel_gpu_u32(counter, 1u) == unsigned(splits - 1);
      if (is_last) *counter = 0u;
      *last = is_last;
    }
    __syncthreads();
    if (!*last) return;
    float* weight = reinterpret_cast<float*>(smem_raw + Tile::kSmemQ) + warp * kMaxSplits;
    for (int r = warp; r < rows; r += Tile::kWarps) {
      const int R = row0 + r, t = R / group, h = kvh * group + R % group;
      combine_split_row<T, kD>(p, o_part, lse_part, splits, (b * p.heads_q + h) * p.seqlen_q + t, weight, lane);
    }
  }
}

}  // namespace flashattn::detail::decode
