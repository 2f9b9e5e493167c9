// Building blocks of the sm80 backward: element types, swizzled shared-memory tiles,
// global<->shared tile copies, and the four ldmatrix operand patterns the five products need.
//
// Shared tiles are row-major with rows of L (a multiple of 64, or 32) 16-bit elements; the
// 16-byte chunk index is XORed with (row % 8), or with (row / 2) % 4 for 64-byte rows (two rows
// per 128 bytes), so the 8 rows an ldmatrix phase reads, and the 8 rows of a fragment store,
// land in 8 different bank groups.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/ptx/cp_async.cuh"
#include "cuda/ptx/ldmatrix.cuh"
#include "cuda/ptx/mma.cuh"
#include "cuda/sm80/tile_size_bwd_sm80.hpp"

namespace flashattn::detail::sm80_bwd {

// --------------------------------------------------------------- element types
template <typename T>
struct Elem;
template <>
struct Elem<__half> {
  __device__ static float to_float(__half x) { return __half2float(x); }
  __device__ static std::uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  }
  __device__ static __half from_float(float x) { return __float2half_rn(x); }
  __device__ static void mma(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                             const float (&c)[4]) {
    ptx::mma_m16n8k16_f32_f16(d, a, b, c);
  }
};
template <>
struct Elem<__nv_bfloat16> {
  __device__ static float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
  __device__ static std::uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  }
  __device__ static __nv_bfloat16 from_float(float x) { return __float2bfloat16_rn(x); }
  __device__ static void mma(float (&d)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2],
                             const float (&c)[4]) {
    ptx::mma_m16n8k16_f32_bf16(d, a, b, c);
  }
};

// --------------------------------------------------------------- swizzled shared tiles
// Element offset of (row, col) in a swizzled tile of row length L; col % 8 == 0 for
// ldmatrix / 16-byte accesses, any even col for 4-byte fragment stores.
// L = 32 serves the P / dS tiles of 32-key blocks (BwdTile<256, true>); a row offset that is a
// multiple of 8 keeps either pattern, so row steps stay immediates (row_bytes).
template <int L>
__device__ __forceinline__ int swz(int row, int col) {
  static_assert(L % 64 == 0 || L == 32, "swizzle needs rows of whole 128-byte lines, or 64-byte rows");
  if constexpr (L == 32) return row * L + (((col >> 3) ^ (row >> 1)) & 3) * 8 + (col & 7);
  else return row * L + ((((col >> 3) ^ row) & 7) | ((col >> 3) & ~7)) * 8 + (col & 7);
}

// Copies rows [0, R) x cols [0, L) of a global tile (row stride in elements) into a
// swizzled shared tile; rows >= nrows and cols >= ncols are zero-filled, which pads
// sequence ends and head dims below L. `vec` = 16-byte aligned rows: cp.async, else
// element loads (arbitrary user strides). Each thread owns one 16-byte column chunk and
// every kRowStep-th row, so its addresses advance by constants: the swizzle phase
// (row % 8) is the same for all of its rows.
template <int R, int L, typename T>
__device__ __forceinline__ void load_tile(T* smem, const T* g, std::int64_t row_stride, int nrows, int ncols,
                                          bool vec, int tid) {
  constexpr int kChunks = L / 8;
  constexpr int kRowStep = kThreads / kChunks;
  static_assert(kThreads % kChunks == 0 && kRowStep % 8 == 0 && R % kRowStep == 0, "tile / thread shape");
  const int r0 = tid / kChunks, c = (tid % kChunks) * 8;
  const bool col_ok = c < ncols;
  const T* src = g + r0 * row_stride + c;
  std::uint32_t dst = ptx::smem_addr(smem + swz<L>(r0, c));
  const std::int64_t step = kRowStep * row_stride;
  if (vec) {
#pragma unroll
    for (int i = 0; i < R / kRowStep; ++i, src += step, dst += kRowStep * L * 2) {
      const bool valid = col_ok && r0 + i * kRowStep < nrows;
      ptx::cp_async_cg_16(dst, valid ? src : g, valid);
    }
  } else {
    // Rare (unaligned user strides): kept rolled, so it costs the hot loop no i-cache.
#pragma unroll 1
    for (int i = 0; i < R / kRowStep; ++i, src += step) {
      const bool valid = col_ok && r0 + i * kRowStep < nrows;
      alignas(16) std::uint16_t tmp[8];
      const std::uint16_t* s16 = reinterpret_cast<const std::uint16_t*>(src);
#pragma unroll
      for (int e = 0; e < 8; ++e) tmp[e] = valid ? s16[e] : std::uint16_t(0);
      *reinterpret_cast<uint4*>(smem + swz<L>(r0 + i * kRowStep, c)) = *reinterpret_cast<const uint4*>(tmp);
    }
  }
}

// Stores rows [0, nrows) x cols [0, ncols) of a swizzled shared tile to global memory.
template <int R, int L, typename T>
__device__ __forceinline__ void store_tile(const T* smem, T* g, std::int64_t row_stride, int nrows, int ncols,
                                           bool vec, int tid) {
  constexpr int kChunks = L / 8;
#pragma unroll
  for (int idx = tid; idx < R * kChunks; idx += kThreads) {
    const int r = idx / kChunks, c = (idx % kChunks) * 8;
    if (r >= nrows || c >= ncols) continue;
    const uint4 v = *reinterpret_cast<const uint4*>(smem + swz<L>(r, c));
    T* dst = g + r * row_stride + c;
    if (vec) {
      *reinterpret_cast<uint4*>(dst) = v;
    } else {
      const std::uint16_t* s16 = reinterpret_cast<const std::uint16_t*>(&v);
      std::uint16_t* d16 = reinterpret_cast<std::uint16_t*>(dst);
#pragma unroll
      for (int e = 0; e < 8; ++e) d16[e] = s16[e];
    }
  }
}

// --------------------------------------------------------------- operand addresses
// Lane roles of one ldmatrix.x4: lane l addresses row (l % 8) of 8x8 matrix l / 8. The
// four operand patterns use two lane->(row, col) maps:
//   RowsBy8:  row += 8 * bit3(l), col += 8 * bit4(l)  (A stored [m][k]; B stored [k][n] + .trans)
//   RowsBy16: row += 8 * bit4(l), col += 8 * bit3(l)  (B stored [n][k]; A stored [k][m] + .trans)
// A 16x16 block at (r0, c0), r0 % 8 == 0, c0 % 16 == 0, starts for this lane at byte
//   2 * (r0 * L) + lane_offset(c0)
// so row steps are immediates and only the column decides the swizzle. The loops below
// keep one register per distinct column block and add rows as immediates, which keeps
// the address arithmetic out of the accumulators' register budget.
enum class LaneMap { rows_by8, rows_by16 };

template <int L, LaneMap Map>
__device__ __forceinline__ std::uint32_t lane_offset(int lane, int c0) {
  const int bit_r = Map == LaneMap::rows_by8 ? (lane >> 3) & 1 : lane >> 4;
  const int bit_c = Map == LaneMap::rows_by8 ? lane >> 4 : (lane >> 3) & 1;
  const int row = (lane & 7) + 8 * bit_r;
  const int col = c0 + 8 * bit_c;
  return static_cast<std::uint32_t>(swz<L>(row, col)) * 2u;
}

// Byte offset of row block r0 in a tile of row length L (a multiple of 8 rows keeps the swizzle).
template <int L>
constexpr std::uint32_t row_bytes(int r0) {
  return static_cast<std::uint32_t>(r0 * L * 2);
}

// kFirst: the product starts the accumulators (C = 0, which ptxas encodes as RZ) instead of
// adding to them, so they need no zero fill.
template <typename T, bool kFirst = false>
__device__ __forceinline__ void mma2(float (&d0)[4], float (&d1)[4], const std::uint32_t (&a)[4],
                                     const std::uint32_t (&b)[4]) {
  const std::uint32_t b0[2] = {b[0], b[1]}, b1[2] = {b[2], b[3]};
  if constexpr (kFirst) {
    constexpr float zero[4] = {0.f, 0.f, 0.f, 0.f};
    Elem<T>::mma(d0, a, b0, zero);
    Elem<T>::mma(d1, a, b1, zero);
  } else {
    Elem<T>::mma(d0, a, b0, d0);
    Elem<T>::mma(d1, a, b1, d1);
  }
}

}  // namespace flashattn::detail::sm80_bwd
