// Element-wise hooks on a warp's score tile (accumulator layout of mma_fragments_sm80.cuh):
// the logits transform (softcap, ALiBi), the causal / window / sequence-end mask on partial
// tiles, and the dropout keep mask. The mainloop calls them on runtime flags and knows no
// feature itself. Coordinates are within the sequence: row_base / col_base are the first
// row / key of the warp's slice 0 / of the tile.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/logits_transform.hpp"
#include "core/mask.hpp"
#include "core/philox.hpp"
#include "cuda/ptx/tanh.cuh"

namespace flashattn::detail::sm80 {

// Logits transform: softcap * tanh(scale s / softcap) or scale s, plus the ALiBi bias.
// Once applied, scores are logits and the softmax exponent scale becomes log2(e).
struct LogitsHooks {
  float scale = 1.f;
  float softcap = 0.f;
  float softcap_in = 0.f;  // scale / softcap
  bool alibi = false;
  float slope = 0.f;
  int diag_offset = 0;  // seqlen_k - seqlen_q: the diagonal of row i is key i + diag_offset

  __device__ __forceinline__ float operator()(float s, int i, int j) const {
    float x = softcap > 0.f ? softcap * ptx::tanh_approx(s * softcap_in) : s * scale;
    if (alibi) {
      const int d = i + diag_offset - j;
      x -= slope * static_cast<float>(d < 0 ? -d : d);
    }
    return x;
  }
};

template <int kMSlices, int kNTilesS>
__device__ __forceinline__ void apply_logits_hooks(float (&s)[kMSlices][kNTilesS][4], const LogitsHooks& hooks,
                                                   int row_base, int col_base, int lane) {
#pragma unroll
  for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
    for (int nj = 0; nj < kNTilesS; ++nj)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = row_base + mi * 16 + (lane >> 2) + 8 * (e >> 1);
        const int j = col_base + nj * 8 + 2 * (lane & 3) + (e & 1);
        s[mi][nj][e] = hooks(s[mi][nj][e], i, j);
      }
}

// Scores of keys a row does not see become -inf (window, causal, and keys past seqlen_k).
template <int kMSlices, int kNTilesS>
__device__ __forceinline__ void apply_mask(float (&s)[kMSlices][kNTilesS][4], const MaskBounds& mask, int row_base,
                                           int col_base, int lane) {
#pragma unroll
  for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int i = row_base + mi * 16 + (lane >> 2) + 8 * h;
      const KeyRange r = mask.keys_of_row(i);
      const int lo = r.lo - col_base - 2 * (lane & 3), hi = r.hi - col_base - 2 * (lane & 3);
#pragma unroll
      for (int nj = 0; nj < kNTilesS; ++nj)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int jj = nj * 8 + e;
          if (jj < lo || jj >= hi) s[mi][nj][2 * h + e] = -INFINITY;
        }
    }
}

// Dropout keep bits of a warp's tile, bit 4 nj + e of word mi for accumulator s[mi][nj][e].
// The decisions are DropoutRng's, so the mask is identical to the CPU engine's bit for bit.
// One Philox call covers 4 columns of one row; lanes l and l ^ 1 hold the two column pairs of
// the same group of 4 in rows g and g + 8, so each computes one row's words (even lane row g,
// odd lane row g + 8) and hands its partner the pair it needs. The loop over column tiles is
// deliberately not unrolled: ten Philox rounds unrolled kNTilesS times would compete with the
// accumulators for registers.
template <int kMSlices, int kNTilesS>
__device__ __forceinline__ void dropout_keep_bits(std::uint64_t (&bits)[kMSlices], const DropoutRng& rng, int bh,
                                                  int row_base, int col_base, int lane) {
  static_assert(kNTilesS * 4 <= 64);
  const int odd = lane & 1;  // also: this lane's columns are the upper pair of their group
#pragma unroll
  for (int mi = 0; mi < kMSlices; ++mi) {
    const int i = row_base + mi * 16 + (lane >> 2) + 8 * odd;
    std::uint64_t b = 0;
#pragma unroll 1
    for (int nj = 0; nj < kNTilesS; ++nj) {
      const int j = col_base + nj * 8 + 2 * (lane & 3);
      const Philox4 w = rng.words(bh, i, j);
      const std::uint32_t mine0 = odd ? w.x[2] : w.x[0], mine1 = odd ? w.x[3] : w.x[1];
      const std::uint32_t give0 = odd ? w.x[0] : w.x[2], give1 = odd ? w.x[1] : w.x[3];
      const std::uint32_t got0 = __shfl_xor_sync(0xffffffffu, give0, 1);
      const std::uint32_t got1 = __shfl_xor_sync(0xffffffffu, give1, 1);
      // e = 0, 1: row g (the even lane's words); e = 2, 3: row g + 8 (the odd lane's).
      const std::uint32_t w0 = odd ? got0 : mine0, w1 = odd ? got1 : mine1;
      const std::uint32_t w2 = odd ? mine0 : got0, w3 = odd ? mine1 : got1;
      const std::uint64_t k = (rng.keep_word(w0) ? 1u : 0u) | (rng.keep_word(w1) ? 2u : 0u) |
                              (rng.keep_word(w2) ? 4u : 0u) | (rng.keep_word(w3) ? 8u : 0u);
      b |= k << (4 * nj);
    }
    bits[mi] = b;
  }
}

// Zeroes dropped probabilities (the 1 / (1 - p) factor is applied once to O).
template <int kMSlices, int kNTilesS>
__device__ __forceinline__ void apply_dropout(float (&s)[kMSlices][kNTilesS][4], const DropoutRng& rng, int bh,
                                              int row_base, int col_base, int lane) {
  std::uint64_t bits[kMSlices];
  dropout_keep_bits<kMSlices, kNTilesS>(bits, rng, bh, row_base, col_base, lane);
#pragma unroll
  for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
    for (int nj = 0; nj < kNTilesS; ++nj)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (((bits[mi] >> (4 * nj + e)) & 1u) == 0) s[mi][nj][e] = 0.f;
}

}  // namespace flashattn::detail::sm80
