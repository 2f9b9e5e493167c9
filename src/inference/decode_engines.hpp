// Entry points of the decode engines and the device helpers of the block manager. The CPU
// engine lives in src/cpu/decode_cpu.cpp, the CUDA one in src/cuda/decode/.
#pragma once

#include <cstddef>

#include "flashattn/options.hpp"
#include "inference/decode_params.hpp"

namespace flashattn::detail {

void cpu_decode(const DecodeParams& p);

#if FLASHATTN_WITH_CUDA
void cuda_decode(const DecodeParams& p);
// Split count the CUDA engine would pick (num_splits == 0).
int cuda_decode_num_splits(int device, int batch, int heads_kv, int heads_q, int seqlen_q, int max_seqlen_k,
                           int head_dim);
// Device-to-device copy of `bytes` ordered on `stream` (copy-on-write of cache blocks).
void cuda_copy_async(void* dst, const void* src, std::size_t bytes, int device, StreamHandle stream);
#endif

}  // namespace flashattn::detail
