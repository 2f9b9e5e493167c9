// Internal entry points of the sm80 backward, one translation unit each.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "core/attention_params.hpp"
#include "cuda/sm80/flash_bwd_params.hpp"

namespace flashattn::detail::sm80_bwd {

// D = rowsum(dO * O) and LSE * log2(e) per (q head, row) into the scratch (flash_bwd_preprocess.cu).
void run_bwd_preprocess(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream);
// fp32 dQ accumulator -> p.dq in the input dtype with p's strides (flash_bwd_convert_dq.cu).
void run_bwd_convert_dq(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream);

// The main kernel for padded head dim D (flash_bwd_hdim<D>.cu; kCompact: the 99 KiB tiles,
// flash_bwd_hdim<D>_compact.cu). T: __half or __nv_bfloat16.
template <typename T, int D, bool kCompact>
void run_bwd_main(const AttentionParams& p, const BwdScratch& sc, cudaStream_t stream);

// The plain kernel (no dropout / softcap / ALiBi) serves the call: the common training case.
inline bool bwd_plain(const AttentionParams& p) {
  return p.dropout_p <= 0.f && p.softcap <= 0.f && p.alibi_slopes == nullptr;
}

// Tile extents of padded head dim D, standard or compact tile (BwdTile).
int bwd_block_n(int padded_dim, bool compact);
int bwd_block_m(int padded_dim, bool compact);

}  // namespace flashattn::detail::sm80_bwd
