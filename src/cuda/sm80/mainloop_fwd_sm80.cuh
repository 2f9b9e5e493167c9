// The two warp-level matrix products of the forward mainloop on mma.sync m16n8k16:
// S = Q K^T (Q and K from swizzled shared memory via ldmatrix) and O += P V (P straight from
// the S accumulators, or for a band's warps from shared memory; V via ldmatrix.trans). Each
// K / V fragment read from shared memory feeds all kMSlices m16 slices of the warp.
#pragma once

#include <cstdint>
#include <type_traits>

#include "cuda/sm80/mma_fragments_sm80.cuh"

namespace flashattn::detail::sm80 {

// Compile-time loops: the ldmatrix addresses are constant steps from one per-lane base.
template <int kBegin, int kEnd, typename F>
__device__ __forceinline__ void static_for(F&& f) {
  if constexpr (kBegin < kEnd) {
    f(std::integral_constant<int, kBegin>{});
    static_for<kBegin + 1, kEnd>(f);
  }
}

// s = Q K^T for the warp's rows; q_lane = a_lane_addr of the warp's first row, k_lane =
// b_nk_lane_addr of the K tile.
template <typename Traits>
__device__ __forceinline__ void gemm_qk(float (&s)[Traits::kMSlices][Traits::kNTilesS][4], std::uint32_t q_lane,
                                        std::uint32_t k_lane) {
  using Elem = typename Traits::Elem;
  using TQ = typename Traits::SmemQ;
  using TK = typename Traits::SmemKV;
#pragma unroll
  for (int mi = 0; mi < Traits::kMSlices; ++mi)
#pragma unroll
    for (int nj = 0; nj < Traits::kNTilesS; ++nj)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[mi][nj][e] = 0.f;
  static_for<0, Traits::kHeadDim / 16>([&](auto kk) {
    std::uint32_t a[Traits::kMSlices][4];
    static_for<0, Traits::kMSlices>([&](auto mi) { ptx::ldmatrix_x4(a[mi], TQ::template advance<16 * mi, 2 * kk>(q_lane)); });
    static_for<0, Traits::kNTilesS / 2>([&](auto nj) {
      std::uint32_t b[4];
      ptx::ldmatrix_x4(b, TK::template advance<16 * nj, 2 * kk>(k_lane));
#pragma unroll
      for (int mi = 0; mi < Traits::kMSlices; ++mi) {
        mma_16x8x16<Elem>(s[mi][2 * nj], a[mi], b[0], b[1]);
        mma_16x8x16<Elem>(s[mi][2 * nj + 1], a[mi], b[2], b[3]);
      }
    });
  });
}

// The warp's Q fragments for all k-steps, for kernels that keep them in registers.
template <typename Traits>
__device__ __forceinline__ void load_q_fragments(std::uint32_t (&q)[Traits::kMSlices][Traits::kHeadDim / 16][4],
                                                 std::uint32_t q_lane) {
  using TQ = typename Traits::SmemQ;
  static_for<0, Traits::kHeadDim / 16>([&](auto kk) {
    static_for<0, Traits::kMSlices>([&](auto mi) { ptx::ldmatrix_x4(q[mi][kk], TQ::template advance<16 * mi, 2 * kk>(q_lane)); });
  });
}

// s = Q K^T with Q already in registers.
template <typename Traits>
__device__ __forceinline__ void gemm_qk_rs(float (&s)[Traits::kMSlices][Traits::kNTilesS][4],
                                           const std::uint32_t (&q)[Traits::kMSlices][Traits::kHeadDim / 16][4],
                                           std::uint32_t k_lane) {
  using Elem = typename Traits::Elem;
  using TK = typename Traits::SmemKV;
#pragma unroll
  for (int mi = 0; mi < Traits::kMSlices; ++mi)
#pragma unroll
    for (int nj = 0; nj < Traits::kNTilesS; ++nj)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[mi][nj][e] = 0.f;
  static_for<0, Traits::kHeadDim / 16>([&](auto kk) {
    static_for<0, Traits::kNTilesS / 2>([&](auto nj) {
      std::uint32_t b[4];
      ptx::ldmatrix_x4(b, TK::template advance<16 * nj, 2 * kk>(k_lane));
#pragma unroll
      for (int mi = 0; mi < Traits::kMSlices; ++mi) {
        mma_16x8x16<Elem>(s[mi][2 * nj], q[mi][kk], b[0], b[1]);
        mma_16x8x16<Elem>(s[mi][2 * nj + 1], q[mi][kk], b[2], b[3]);
      }
    });
  });
}

// o += p V; v_lane = b_kn_trans_lane_addr of the V tile.
template <typename Traits>
__device__ __forceinline__ void gemm_pv(float (&o)[Traits::kMSlices][Traits::kNTilesO][4],
                                        const float (&p)[Traits::kMSlices][Traits::kNTilesS][4], std::uint32_t v_lane) {
  using Elem = typename Traits::Elem;
  using TV = typename Traits::SmemKV;
  static_for<0, Traits::kBlockN / 16>([&](auto kk) {
    std::uint32_t a[Traits::kMSlices][4];
#pragma unroll
    for (int mi = 0; mi < Traits::kMSlices; ++mi) accumulators_to_a<Elem>(a[mi], p[mi][2 * kk], p[mi][2 * kk + 1]);
    static_for<0, Traits::kHeadDim / 16>([&](auto dj) {
      std::uint32_t b[4];
      ptx::ldmatrix_x4_trans(b, TV::template advance<16 * kk, 2 * dj>(v_lane));
#pragma unroll
      for (int mi = 0; mi < Traits::kMSlices; ++mi) {
        mma_16x8x16<Elem>(o[mi][2 * dj], a[mi], b[0], b[1]);
        mma_16x8x16<Elem>(o[mi][2 * dj + 1], a[mi], b[2], b[3]);
      }
    });
  });
}

// o += P V for a warp of a band (kBandWarps = 2): P of the band's rows and every key of the tile
// from shared memory (p_lane = a_lane_addr of the band's first row in SmemP), V's columns of
// this warp (fwd_o_column: 32 of each 64-column block; v_lane = b_kn_trans_lane_addr advanced
// to the warp's first).
template <typename Traits>
__device__ __forceinline__ void gemm_pv_smem(float (&o)[Traits::kMSlices][Traits::kNTilesO][4], std::uint32_t p_lane,
                                             std::uint32_t v_lane) {
  using Elem = typename Traits::Elem;
  using TP = typename Traits::SmemP;
  using TV = typename Traits::SmemKV;
  static_for<0, Traits::kBlockN / 16>([&](auto kk) {
    std::uint32_t a[Traits::kMSlices][4];
    static_for<0, Traits::kMSlices>([&](auto mi) { ptx::ldmatrix_x4(a[mi], TP::template advance<16 * mi, 2 * kk>(p_lane)); });
    static_for<0, Traits::kWarpCols / 16>([&](auto dj) {
      std::uint32_t b[4];
      ptx::ldmatrix_x4_trans(b, TV::template advance<16 * kk, 8 * (dj / 2) + 2 * (dj % 2)>(v_lane));
#pragma unroll
      for (int mi = 0; mi < Traits::kMSlices; ++mi) {
        mma_16x8x16<Elem>(o[mi][2 * dj], a[mi], b[0], b[1]);
        mma_16x8x16<Elem>(o[mi][2 * dj + 1], a[mi], b[2], b[3]);
      }
    });
  });
}

}  // namespace flashattn::detail::sm80
