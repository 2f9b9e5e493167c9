// Host side of the CUDA decode engine: append kernel, attention kernel (which merges its splits);
// the split heuristic; the device copy used by the block manager's copy-on-write.
#include <cuda_runtime.h>

#include <mutex>
#include <vector>

#include "cuda/common/cuda_check.cuh"
#include "cuda/decode/decode_append_kernel.cuh"
#include "cuda/decode/decode_fwd_sm80_mma.cuh"
#include "cuda/decode/decode_heuristics.hpp"
#include "cuda/decode/decode_instances.hpp"
#include "cuda/decode/split_counters.hpp"
#include "dispatch/device_memory.hpp"
#include "inference/decode_engines.hpp"

namespace flashattn::detail {
namespace {

using decode::DecodeTile;

int kd_for(int head_dim) { return head_dim <= 64 ? 64 : (head_dim <= 128 ? 128 : 256); }

struct DeviceInfo {
  int sms = 0;
  int cc = 0;
  int ctas_per_sm[3] = {0, 0, 0};  // kD 64, 128, 256
};

const DeviceInfo& device_info(int device) {
  static std::mutex mu;
  static std::vector<DeviceInfo> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(cache.size()) <= device) cache.resize(static_cast<std::size_t>(device) + 1);
  DeviceInfo& info = cache[static_cast<std::size_t>(device)];
  if (info.sms == 0) {
    int previous = 0;
    FLASHATTN_CUDA_CHECK(cudaGetDevice(&previous));
    FLASHATTN_CUDA_CHECK(cudaSetDevice(device));
    FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&info.sms, cudaDevAttrMultiProcessorCount, device));
    int major = 0, minor = 0;
    FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    info.cc = major * 10 + minor;
    if (info.cc < 80) {
      cudaSetDevice(previous);
      info.sms = 0;
      throw Error(Error::Kind::unsupported, "q", "the CUDA decode engine needs compute capability 8.0 or newer");
    }
    info.ctas_per_sm[0] = decode::decode_occupancy<64>();
    info.ctas_per_sm[1] = decode::decode_occupancy<128>();
    info.ctas_per_sm[2] = decode::decode_occupancy<256>();
    cudaSetDevice(previous);
  }
  return info;
}

int resolve_splits(const DecodeParams& p) {
  if (p.num_splits > 0) return std::min(p.num_splits, decode::kMaxSplits);
  return cuda_decode_num_splits(p.device.index, p.batch, p.heads_kv, p.heads_q, p.seqlen_q, p.k_rows.capacity(),
                                p.head_dim);
}

}  // namespace

int cuda_decode_num_splits(int device, int batch, int heads_kv, int heads_q, int seqlen_q, int max_seqlen_k,
                           int head_dim) {
  const DeviceInfo& info = device_info(device);
  const int kd = kd_for(head_dim);
  const int per_sm = info.ctas_per_sm[kd == 64 ? 0 : (kd == 128 ? 1 : 2)];
  const int rows = (heads_q / heads_kv) * seqlen_q;
  const int ctas = batch * heads_kv * ((rows + DecodeTile<64>::kMaxRows - 1) / DecodeTile<64>::kMaxRows);
  const int tiles = (max_seqlen_k + decode::kSplitGrainKeys - 1) / decode::kSplitGrainKeys;
  return decode::choose_device_splits(ctas, info.sms, per_sm, tiles);
}

void cuda_decode(const DecodeParams& p0) {
  DecodeParams p = p0;
  device_info(p.device.index);  // throws (before anything runs) on a device older than sm_80
  const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
  int previous = 0;
  FLASHATTN_CUDA_CHECK(cudaGetDevice(&previous));
  if (previous != p.device.index) FLASHATTN_CUDA_CHECK(cudaSetDevice(p.device.index));
  const bool bf16 = p.dtype == DType::bf16;
  if (p.k_new != nullptr && p.seqlen_new > 0 && p.batch > 0) {
    if (bf16) decode::launch_append<__nv_bfloat16>(p, stream);
    else decode::launch_append<__half>(p, stream);
  }
  if (p.batch > 0 && p.seqlen_q > 0) {
    const int splits = resolve_splits(p);
    p.num_splits = splits;
    float* o_part = nullptr;
    float* lse_part = nullptr;
    unsigned* counters = nullptr;
    void* scratch = nullptr;
    const std::size_t rows = static_cast<std::size_t>(p.batch) * p.heads_q * p.seqlen_q;
    if (splits > 1) {
      // Parts, and one arrival counter per attention CTA of the unsplit grid (the last CTA of
      // each to finish merges the parts, see decode_combine_kernel.cuh; split_counters.hpp).
      const int row_groups = ((p.heads_q / p.heads_kv) * p.seqlen_q + DecodeTile<64>::kMaxRows - 1) / DecodeTile<64>::kMaxRows;
      const std::size_t n_counters = static_cast<std::size_t>(p.batch) * p.heads_kv * row_groups;
      const std::size_t part_floats = rows * splits * (p.head_dim + 1);
      counters = decode::split_counters_for(p.device.index, stream, n_counters);
      const std::size_t own_counters = counters == nullptr ? n_counters : 0;  // fallback: zeroed here
      scratch = device_allocate(part_floats * sizeof(float) + own_counters * sizeof(unsigned), p.device.index, p.stream);
      o_part = static_cast<float*>(scratch);
      lse_part = o_part + rows * splits * p.head_dim;
      if (own_counters > 0) {
        counters = reinterpret_cast<unsigned*>(o_part + part_floats);
        const cudaError_t err = cudaMemsetAsync(counters, 0, n_counters * sizeof(unsigned), stream);
        if (err != cudaSuccess) device_free(scratch, p.device.index, p.stream);
        FLASHATTN_CUDA_CHECK(err);
      }
    }
    const int kd = kd_for(p.head_dim);
    if (kd == 64) bf16 ? decode::launch_attention<__nv_bfloat16, 64>(p, o_part, lse_part, counters, stream)
                       : decode::launch_attention<__half, 64>(p, o_part, lse_part, counters, stream);
    else if (kd == 128) bf16 ? decode::launch_attention<__nv_bfloat16, 128>(p, o_part, lse_part, counters, stream)
                             : decode::launch_attention<__half, 128>(p, o_part, lse_part, counters, stream);
    else bf16 ? decode::launch_attention<__nv_bfloat16, 256>(p, o_part, lse_part, counters, stream)
              : decode::launch_attention<__half, 256>(p, o_part, lse_part, counters, stream);
    if (splits > 1) device_free(scratch, p.device.index, p.stream);
  }
  if (previous != p.device.index) cudaSetDevice(previous);
}

void cuda_copy_async(void* dst, const void* src, std::size_t bytes, int device, StreamHandle stream) {
  int previous = 0;
  FLASHATTN_CUDA_CHECK(cudaGetDevice(&previous));
  if (previous != device) FLASHATTN_CUDA_CHECK(cudaSetDevice(device));
  const cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream));
  if (previous != device) cudaSetDevice(previous);
  FLASHATTN_CUDA_CHECK(err);
}

}  // namespace flashattn::detail
