// Register fragments of mma.sync m16n8k16 and the warp-level tile products built on them.
// Layout of a 16x8 fp32 accumulator (PTX ISA 9.7.14.5.8): lane l holds rows g = l / 4 and
// g + 8, columns 2 (l % 4) and 2 (l % 4) + 1; c[0], c[1] are row g, c[2], c[3] row g + 8.
// Shared by the forward and the backward kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/ptx/ldmatrix.cuh"
#include "cuda/ptx/mma.cuh"

namespace flashattn::detail::sm80 {

// D += A B for 16-bit operands of type Elem.
template <typename Elem>
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                            std::uint32_t b1) {
  const std::uint32_t b[2] = {b0, b1};
  if constexpr (std::is_same_v<Elem, __half>)
    ptx::mma_m16n8k16_f32_f16(d, a, b, d);
  else
    ptx::mma_m16n8k16_f32_bf16(d, a, b, d);
}

// Two fp32 values as one register of two 16-bit elements (lo = first, the lower column).
template <typename Elem>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<Elem, __half>) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  } else {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  }
}

// A operand (16x16, row-major) from two adjacent 16x8 accumulator tiles: the P of S = Q K^T
// feeds O += P V without leaving registers.
template <typename Elem>
__device__ __forceinline__ void accumulators_to_a(std::uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack2<Elem>(lo[0], lo[1]);
  a[1] = pack2<Elem>(lo[2], lo[3]);
  a[2] = pack2<Elem>(hi[0], hi[1]);
  a[3] = pack2<Elem>(hi[2], hi[3]);
}

// Per-lane ldmatrix addresses. Each returns the lane's address for the first 16x16 block;
// later blocks are Tile::advance<rows, 2 * k-step>() away.
//
// A operand (row-major, e.g. Q): block rows [row0, row0 + 16), columns [0, 16).
template <typename Tile>
__device__ __forceinline__ std::uint32_t a_lane_addr(std::uint32_t tile_base, int row0, int lane) {
  return Tile::lane_addr(tile_base, row0 + (lane & 15), lane >> 4);
}
// Two B operands (k16 x n8, "col") from a tile stored [n][k] (K for S = Q K^T): n rows
// [0, 16), k columns [0, 16); regs 0, 1 are n rows 0..7, regs 2, 3 rows 8..15.
template <typename Tile>
__device__ __forceinline__ std::uint32_t b_nk_lane_addr(std::uint32_t tile_base, int lane) {
  return Tile::lane_addr(tile_base, ((lane >> 4) << 3) + (lane & 7), (lane >> 3) & 1);
}
// Two B operands from a tile stored [k][n] (V for O = P V), read with ldmatrix.trans: k rows
// [0, 16), n columns [0, 16); regs 0, 1 are columns 0..7, regs 2, 3 columns 8..15.
template <typename Tile>
__device__ __forceinline__ std::uint32_t b_kn_trans_lane_addr(std::uint32_t tile_base, int lane) {
  return Tile::lane_addr(tile_base, (((lane >> 3) & 1) << 3) + (lane & 7), lane >> 4);
}

}  // namespace flashattn::detail::sm80
