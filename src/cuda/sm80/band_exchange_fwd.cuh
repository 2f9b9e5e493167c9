// What the two warps of a band (FwdKernelTraits::kBandWarps = 2) exchange through shared
// memory. Each warp holds S for the band's rows and its half of the tile's keys, and O for
// the band's rows and its half of the head dim; so per key tile the warps agree on the row
// maxima (so both scale by the same running max), and each writes its half of P for the
// other's columns. At the end they add their row sums. A named barrier per band (ids 1 ..
// bands) orders each exchange; bands never wait for one another.
//
// Reuse of the buffers across key tiles needs no extra barrier: a warp reads the other's
// maxima before the P barrier and P before the next tile's max barrier, and writes each
// buffer again only after the barrier that follows those reads.
#pragma once

#include <cstdint>

#include "cuda/ptx/bar_sync.cuh"
#include "cuda/ptx/ld_shared.cuh"
#include "cuda/ptx/st_shared.cuh"
#include "cuda/ptx/stmatrix.cuh"
#include "cuda/sm80/mainloop_fwd_sm80.cuh"
#include "cuda/sm80/mma_fragments_sm80.cuh"

namespace flashattn::detail::sm80 {

template <typename Traits>
struct FwdBandExchange {
  using TP = typename Traits::SmemP;
  static constexpr int kMSlices = Traits::kMSlices;
  std::uint32_t rows_own;    // this warp's float slot of row (warp_row0 + lane / 4)
  std::uint32_t rows_other;  // the other warp's slot of that row
  std::uint32_t p_store;     // stmatrix / st.shared base of this warp's keys in P
  std::uint32_t p_lane;      // ldmatrix base of the band's rows of P (the A operand of P V)
  std::uint32_t barrier;     // the band's named barrier

  // rows: kBlockM x 2 floats (row-major by warp of the band); p: the P tile.
  __device__ __forceinline__ FwdBandExchange(std::uint32_t rows, std::uint32_t p, int band, int part, int lane) {
    const int row = band * Traits::kWarpRows + lane / 4;
    rows_own = rows + 4u * static_cast<std::uint32_t>(part * Traits::kBlockM + row);
    rows_other = rows + 4u * static_cast<std::uint32_t>((1 - part) * Traits::kBlockM + row);
    const int row0 = band * Traits::kWarpRows;
    p_lane = a_lane_addr<TP>(p, row0, lane);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    // stmatrix.x4: lane l gives row 8 * bit3(l) + l % 8 of the 8-key block bit4(l).
    p_store = TP::lane_addr(p, row0 + (lane & 7) + 8 * ((lane >> 3) & 1), (lane >> 4) + part * Traits::kWarpKeys / 8);
#else
    // st.shared.b32: lane l holds the pair of keys 2 (l % 4) of row l / 4 (and l / 4 + 8).
    p_store = 2u * static_cast<std::uint32_t>(TP::offset(row0 + lane / 4, part * Traits::kWarpKeys + 2 * (lane % 4))) + p;
#endif
    barrier = 1u + static_cast<std::uint32_t>(band);
  }

  __device__ __forceinline__ void sync() const { ptx::bar_sync(barrier, 64); }

  // Writes this warp's per-row values, meets the other warp and folds its values in with op.
  template <typename Op>
  __device__ __forceinline__ void exchange(float (&x)[kMSlices][2], Op op) const {
    if ((threadIdx.x & 3) == 0) {
#pragma unroll
      for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const std::uint32_t off = 4u * (16 * mi + 8 * h);
          ptx::st_shared_f32(rows_own + off, x[mi][h]);
        }
    }
    sync();
#pragma unroll
    for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
      for (int h = 0; h < 2; ++h) x[mi][h] = op(x[mi][h], ptx::ld_shared_f32(rows_other + 4u * (16 * mi + 8 * h)));
  }
  __device__ __forceinline__ void operator()(float (&mx)[kMSlices][2]) const {
    exchange(mx, [](float a, float b) { return fmaxf(a, b); });
  }
  struct Sums {
    const FwdBandExchange& x;
    __device__ __forceinline__ void operator()(float (&sum)[kMSlices][2]) const {
      x.exchange(sum, [](float a, float b) { return a + b; });
    }
  };
  __device__ __forceinline__ Sums sums() const { return Sums{*this}; }

  // This warp's probabilities (the S accumulators after the softmax) into P as Elem, then the
  // band's barrier: P V reads the band's rows of every key. Steps from the store base: rows by
  // multiples of 8 keep the swizzle; the base's chunk (the warp's first key / 8, 0 or 4 within
  // a 64-key block) shares no bit with the steps' chunks, so a chunk step is an XOR.
  template <typename Elem>
  __device__ __forceinline__ void store_p(const float (&s)[kMSlices][Traits::kNTilesS][4]) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    static_for<0, kMSlices>([&](auto mi) {
      static_for<0, Traits::kNTilesS / 2>([&](auto n2) {
        ptx::stmatrix_x4(TP::template advance<16 * mi, 2 * n2>(p_store),
                         pack2<Elem>(s[mi][2 * n2][0], s[mi][2 * n2][1]), pack2<Elem>(s[mi][2 * n2][2], s[mi][2 * n2][3]),
                         pack2<Elem>(s[mi][2 * n2 + 1][0], s[mi][2 * n2 + 1][1]),
                         pack2<Elem>(s[mi][2 * n2 + 1][2], s[mi][2 * n2 + 1][3]));
      });
    });
#else
#pragma unroll
    for (int mi = 0; mi < kMSlices; ++mi)
#pragma unroll
      for (int nj = 0; nj < Traits::kNTilesS; ++nj)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          ptx::st_shared_b32((p_store ^ (static_cast<std::uint32_t>(nj) << 4)) + (16 * mi + 8 * h) * TP::kBlockCols * 2,
                             pack2<Elem>(s[mi][nj][2 * h], s[mi][nj][2 * h + 1]));
#endif
    sync();
  }
};

}  // namespace flashattn::detail::sm80
