// What the sm80 backward kernels read besides AttentionParams: the library scratch.
#pragma once

#include <cstdint>

namespace flashattn::detail::sm80_bwd {

// fp32 scratch laid out per q head over "scratch rows": b * seq_pad + row, where seq_pad is
// the (max) seqlen_q rounded up to the q tile, for padded batches and varlen alike, so each
// q tile owns a whole kBlockM-row region (the dQ accumulator is permuted within it).
struct BwdScratch {
  float* dq_accum = nullptr;  // (heads_q, rows_alloc, dq_ld) fp32, zeroed, summed by red.add;
                              // each q tile's kBlockM x dq_ld block is in DqLayout order
  float* lse2 = nullptr;      // (heads_q, rows_alloc): LSE * log2(e); +inf for rows that see no key
  float* drow = nullptr;      // (heads_q, rows_alloc): rowsum(dO * O)
  int* semaphores = nullptr;  // (batch, heads_q, q_tiles): deterministic dQ order, else null
  // (batch, heads_kv): main-kernel blocks of each pair done with their dQ reds, so the dQ conversion
  // may start a pair while the main kernel's last blocks run (flash_bwd_launch.cu); null: it waits
  // for the whole main kernel (stream order).
  unsigned* pair_done = nullptr;
  std::int64_t rows_alloc = 0;  // batch * seq_pad
  int seq_pad = 0;              // max seqlen_q rounded up to a multiple of kBlockM and of 64
  int dq_ld = 0;          // padded head dim of dq_accum rows
  int n_kv_tiles = 0;     // per sequence (max seqlen_k / kBlockN, rounded up)
  int n_q_tiles = 0;      // per sequence (max seqlen_q / kBlockM, rounded up)
  int stages = 1;         // Q/dO buffers: 2 overlaps the next tile's load (shared-memory budget)
  bool vec_in = false;    // q, k, v, dout: 16-byte aligned rows (cp.async usable)
  bool vec_out = false;   // dk, dv: 16-byte aligned rows
  bool compact = false;   // BwdTile<D, true> (99 KiB GPUs): the q tile and DqLayout of the dQ conversion
  float dq_scale = 1.f;   // applied by the dQ conversion: the plain kernel's dS leaves out the scale
  int pair_group = 0;     // block order (BwdBlockOrder::group, bwd_block_order.hpp)
};

// Element offset of (b, row0 + row, h) in a BSHD or packed tensor. Device-usable twin of
// the q_offset / k_offset ... helpers of core/attention_params.hpp.
__host__ __device__ inline std::int64_t bshd_offset(bool varlen, std::int64_t batch_stride, std::int64_t row_stride,
                                                    std::int64_t head_stride, int b, std::int64_t row0, int row, int h) {
  return (varlen ? 0 : b * batch_stride) + (row0 + row) * row_stride + h * head_stride;
}

// Scratch row of (b, row).
__host__ __device__ inline std::int64_t scratch_row(int seq_pad, int b, int row) {
  return std::int64_t(b) * seq_pad + row;
}

}  // namespace flashattn::detail::sm80_bwd
