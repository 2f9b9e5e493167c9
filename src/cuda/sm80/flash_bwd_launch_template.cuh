// Launches the main backward kernel for one (dtype, padded head dim); included by the
// per-head-dim instantiation files only, so each compiles one kernel pair (three at D = 64: the
// plain kernel's TMA form too).
#pragma once

#include <type_traits>

#include "cuda/common/cuda_check.cuh"
#include "cuda/sm80/flash_bwd_kernel.cuh"
#include "cuda/sm80/flash_bwd_sm80.hpp"

namespace flashattn::detail::sm80_bwd {

// Fills tm with Q / dO tensor maps for the sm_90 TMA q-side loads (see BwdTma) and returns true
// when this call can take them: a compute capability 9.0 device, padded batches (not varlen),
// 16-byte aligned rows, two stages and `smem` bytes of dynamic shared memory available.
template <typename T>
bool bwd_tma_maps(const AttentionParams& p, const BwdScratch& sc, std::size_t smem, BwdTma& tm) {
  tm.enabled = 0;
  if (p.is_varlen() || !sc.vec_in || sc.stages != 2) return false;
  int major = 0, optin = 0;
  FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, p.device.index));
  FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, p.device.index));
  if (major != 9 || smem + 128 > std::size_t(optin)) return false;  // 128: the kernel's static shared memory
  using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                              const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                              CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  static Encode encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      fn = nullptr;
    return reinterpret_cast<Encode>(fn);
  }();
  if (encode == nullptr) return false;
  const CUtensorMapDataType type =
      std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  auto make = [&](CUtensorMap* map, const void* base, std::int64_t row, std::int64_t head, std::int64_t batch) {
    const cuuint64_t dims[4] = {cuuint64_t(p.head_dim), cuuint64_t(p.seqlen_q), cuuint64_t(p.heads_q),
                                cuuint64_t(p.batch)};
    const cuuint64_t strides[3] = {cuuint64_t(row) * sizeof(T), cuuint64_t(head) * sizeof(T),
                                   cuuint64_t(batch) * sizeof(T)};
    const cuuint32_t box[4] = {64, cuuint32_t(BwdTile<64>::kBlockM), 1, 1};
    const cuuint32_t elem[4] = {1, 1, 1, 1};
    if (row <= 0 || head <= 0 || (p.batch > 1 && batch <= 0)) return false;
    return encode(map, type, 4, const_cast<void*>(base), dims, strides, box, elem, CU_TENSOR_MAP_INTERLEAVE_NONE,
                  CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
  };
  const bool ok = make(&tm.q, p.q, p.q_row_stride, p.q_head_stride, p.batch > 1 ? p.q_batch_stride : 16) &&
                  make(&tm.dout, p.dout, p.do_row_stride, p.do_head_stride, p.batch > 1 ? p.do_batch_stride : 16);
  tm.enabled = ok ? 1 : 0;
  return ok;
}

template <typename T, int D>
void run_bwd_main(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream) {
  using Tile = BwdTile<D>;
  const std::int64_t blocks = std::int64_t(sc.n_kv_tiles) * p.heads_kv * p.batch;
  if (blocks == 0) return;
  std::size_t smem = Tile::smem_bytes(sc.stages);
  BwdTma tm{};
  if constexpr (D == 64) {
    if (bwd_plain(p) && bwd_tma_maps<T>(p, sc, smem + 1024, tm)) smem += 1024;  // room to align the tiles to 1024 bytes
  }
  // The TMA form is a separate plain kernel: with the cp.async issue compiled in beside it, the plain
  // D = 64 kernel spilled 4 bytes.
  auto kernel = bwd_plain(p) ? (tm.enabled ? flash_bwd_kernel<T, D, true, D == 64> : flash_bwd_kernel<T, D, true, false>)
                             : flash_bwd_kernel<T, D, false, false>;
  FLASHATTN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<dim3(static_cast<unsigned>(blocks)), kThreads, smem, stream>>>(p, sc, tm);
  FLASHATTN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flashattn::detail::sm80_bwd
