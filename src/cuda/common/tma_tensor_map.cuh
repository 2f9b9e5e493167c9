// Host side of the sm_90 TMA loads of the sm80 engine: whether a device can take them, and
// the tiled tensor map of one (batch, seqlen, heads, head_dim) fp16 / bf16 tensor whose box
// (64 columns x box_rows rows of one head) lands in shared memory with the 128-byte swizzle the
// engine's tiles already use. cuTensorMapEncodeTiled is reached through the runtime's driver
// entry point, so the library needs no libcuda link.
#pragma once

#include <cuda.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <type_traits>

#include "cuda/common/cuda_check.cuh"
#include "cuda/common/device_smem.hpp"
#include "cuda/common/kernel_built_for_sm90.hpp"

namespace flashattn::detail {

// A compute capability 9.0 device on which the TMA kernel `kernel` has its sm_90 code and a
// block may have `smem_bytes` of dynamic shared memory.
inline bool tma_device_fits(int device, std::size_t smem_bytes, const void* kernel) {
  int major = 0;
  FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major == 9 && smem_bytes <= device_smem_per_block(device) && kernel_built_for_sm90(kernel, device);
}

// Encodes `map` for the tensor at `base` with dims (head_dim, seqlen, heads, batch) and element
// strides row / head / batch; rows and columns outside the tensor are zero-filled by the copies.
// False (nothing to launch with) when the strides do not fit a tensor map or no encoder exists.
template <typename T>
bool encode_bshd_tensor_map(CUtensorMap* map, const void* base, int head_dim, int seqlen, int heads, int batch,
                            int box_rows, std::int64_t row_stride, std::int64_t head_stride, std::int64_t batch_stride) {
  static_assert(std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>, "fp16 / bf16 tiles");
  using Encode = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                              const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                              CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  static const Encode encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      fn = nullptr;
    return reinterpret_cast<Encode>(fn);
  }();
  if (encode == nullptr || row_stride <= 0 || head_stride <= 0 || (batch > 1 && batch_stride <= 0)) return false;
  const CUtensorMapDataType type =
      std::is_same_v<T, __half> ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  const cuuint64_t dims[4] = {cuuint64_t(head_dim), cuuint64_t(seqlen), cuuint64_t(heads), cuuint64_t(batch)};
  // A batch of one never steps its stride; any 16-byte multiple is valid there.
  const cuuint64_t strides[3] = {cuuint64_t(row_stride) * sizeof(T), cuuint64_t(head_stride) * sizeof(T),
                                 cuuint64_t(batch > 1 ? batch_stride : 8) * sizeof(T)};
  const cuuint32_t box[4] = {64, cuuint32_t(box_rows), 1, 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  return encode(map, type, 4, const_cast<void*>(base), dims, strides, box, elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

}  // namespace flashattn::detail
