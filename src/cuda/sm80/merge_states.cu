// merge_states on the GPU: one warp per (batch, row, head) combines the P partial states
// (O_k, LSE_k) of the same row over disjoint key sets with the online-softmax merge:
//   m = max_k LSE_k,  w_k = 2^(LSE_k log2 e - m log2 e),  O = sum w_k O_k / sum w_k,
//   LSE = m + ln(sum w_k). Parts with LSE = -inf (or NaN: nothing seen) weigh 0; a row no part
// saw gives O = 0 and LSE = -inf, as the CPU engine's merge does.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "core/online_softmax.hpp"
#include "cuda/common/cuda_check.cuh"
#include "cuda/sm80/sm80_engine.hpp"

namespace flashattn::detail {
namespace sm80 {
namespace {

__device__ __forceinline__ float load_elem(const void* base, DType t, std::int64_t i) {
  switch (t) {
    case DType::f16: return __half2float(static_cast<const __half*>(base)[i]);
    case DType::bf16: return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
    default: return static_cast<const float*>(base)[i];
  }
}
__device__ __forceinline__ void store_elem(void* base, DType t, std::int64_t i, float v) {
  switch (t) {
    case DType::f16: static_cast<__half*>(base)[i] = __float2half_rn(v); break;
    case DType::bf16: static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(base)[i] = v;
  }
}

constexpr int kWarpsPerBlock = 4;
constexpr int kMaxDimPerLane = 8;  // 256 columns per pass

__global__ void __launch_bounds__(kWarpsPerBlock * 32) merge_states_kernel(const MergeParams m) {
  const int lane = threadIdx.x % 32;
  const std::int64_t rows = static_cast<std::int64_t>(m.batch) * m.seqlen * m.heads;
  const std::int64_t warps = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t w = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; w < rows;
       w += warps) {
    const int h = static_cast<int>(w % m.heads);
    const std::int64_t bi = w / m.heads;
    const int i = static_cast<int>(bi % m.seqlen);
    const int b = static_cast<int>(bi / m.seqlen);
    const std::int64_t lse_row = b * m.lp_batch_stride + h * m.lp_head_stride + i * m.lp_row_stride;
    const std::int64_t o_row = b * m.op_batch_stride + i * m.op_row_stride + h * m.op_head_stride;
    float mx = -INFINITY;
    for (int k = 0; k < m.parts; ++k) {
      const float l = m.lse_parts[k * m.lp_part_stride + lse_row];
      if (l == l) mx = fmaxf(mx, l * kLog2e);
    }
    float sum = 0.f;
    const std::int64_t out_row = b * m.out_batch_stride + i * m.out_row_stride + h * m.out_head_stride;
    for (int d0 = 0; d0 < m.head_dim; d0 += 32 * kMaxDimPerLane) {  // one pass for head_dim <= 256
      float acc[kMaxDimPerLane];
#pragma unroll
      for (int j = 0; j < kMaxDimPerLane; ++j) acc[j] = 0.f;
      sum = 0.f;
      if (mx != -INFINITY) {
        for (int k = 0; k < m.parts; ++k) {
          const float l = m.lse_parts[k * m.lp_part_stride + lse_row];
          if (!(l == l) || l == -INFINITY) continue;
          const float wk = exp2f(l * kLog2e - mx);
          sum += wk;
          const std::int64_t base = k * m.op_part_stride + o_row;
#pragma unroll
          for (int j = 0; j < kMaxDimPerLane; ++j) {
            const int d = d0 + lane + 32 * j;
            if (d < m.head_dim) acc[j] += wk * load_elem(m.o_parts, m.o_parts_dtype, base + d);
          }
        }
      }
      const float inv = sum > 0.f ? 1.f / sum : 0.f;
#pragma unroll
      for (int j = 0; j < kMaxDimPerLane; ++j) {
        const int d = d0 + lane + 32 * j;
        if (d < m.head_dim) store_elem(m.out, m.out_dtype, out_row + d, acc[j] * inv);
      }
    }
    if (m.lse != nullptr && lane == 0)
      m.lse[b * m.lse_batch_stride + h * m.lse_head_stride + i * m.lse_row_stride] =
          sum > 0.f ? (mx + log2f(sum)) * kLn2 : -INFINITY;
  }
}

}  // namespace
}  // namespace sm80

void sm80_merge_states(const MergeParams& m) {
  const std::int64_t rows = static_cast<std::int64_t>(m.batch) * m.seqlen * m.heads;
  if (rows == 0) return;
  int device = 0;
  FLASHATTN_CUDA_CHECK(cudaGetDevice(&device));
  if (device != m.device.index) FLASHATTN_CUDA_CHECK(cudaSetDevice(m.device.index));
  const std::int64_t blocks = (rows + sm80::kWarpsPerBlock - 1) / sm80::kWarpsPerBlock;
  const unsigned grid = static_cast<unsigned>(blocks < (1 << 30) ? blocks : (1 << 30));
  sm80::merge_states_kernel<<<grid, sm80::kWarpsPerBlock * 32, 0, static_cast<cudaStream_t>(m.stream)>>>(m);
  const cudaError_t launched = cudaGetLastError();
  if (device != m.device.index) cudaSetDevice(device);
  FLASHATTN_CUDA_CHECK(launched);
}

}  // namespace flashattn::detail
