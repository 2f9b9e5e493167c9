// Host side of the sm80 backward (FlashAttention-2 algorithm):
//   1. preprocess: Drow = rowsum(dO * O), LSE in base 2, dq_accum zeroed  (flash_bwd_preprocess.cu)
//   2. main kernel over (kv tile, kv head, batch): dK, dV in registers over every q tile of
//      the GQA group, dQ summed into an fp32 scratch with red.add  (flash_bwd_kernel.cuh)
//   3. dQ fp32 -> dtype                                          (flash_bwd_convert_dq.cu)
// Deterministic mode: one int per (batch, q head, q tile) counts the kv tiles that have
// added into that q tile; kv tile j waits for its turn (the number of visiting kv tiles
// before it), so every dQ element is summed in increasing key order on every run. dK / dV
// never need it: one block owns each kv tile and loops over the group's q heads itself.
// The cost is the wait; the alternative (a partial dQ buffer per kv tile, summed in order)
// needs O(n_kv_tiles * Sq * D) scratch and was rejected for long sequences.
// Overlapped dQ conversion (sm_90): step 3 is a programmatic dependent launch. Each main block
// issues griddepcontrol.launch_dependents as it starts and counts itself done for its (batch, kv
// head) pair once its dQ reds are out; the conversion's blocks may then start as soon as the last
// main block has, fill the SMs the main kernel's last wave leaves idle, and wait per pair.
// FLASHATTN_BWD_OVERLAP=0 launches it in plain stream order instead (for comparisons).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "cuda/common/cuda_check.cuh"
#include "cuda/common/device_guard.cuh"
#include "cuda/common/device_smem.hpp"
#include "cuda/common/env_switch.hpp"
#include "cuda/sm80/bwd_block_order.hpp"
#include "cuda/sm80/flash_bwd_sm80.hpp"
#include "cuda/sm80/sm80_engine.hpp"
#include "cuda/sm80/tile_size_bwd_sm80.hpp"
#include "dispatch/device_memory.hpp"
#include "flashattn/error.hpp"

namespace flashattn::detail {
namespace {

using namespace sm80_bwd;

bool aligned16(const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; }

bool rows_vectorizable(const void* ptr, std::int64_t batch_stride, std::int64_t row_stride, std::int64_t head_stride,
                       bool varlen) {
  return aligned16(ptr) && row_stride % 8 == 0 && head_stride % 8 == 0 && (varlen || batch_stride % 8 == 0);
}

int padded_head_dim(int d) { return d <= 64 ? 64 : d <= 128 ? 128 : 256; }

// One allocation holding every scratch buffer, freed on the stream after the last kernel.
class Scratch {
 public:
  Scratch(std::size_t bytes, int device, cudaStream_t stream) : device_(device), stream_(stream) {
    ptr_ = device_allocate(std::max<std::size_t>(bytes, 256), device, stream);
  }
  ~Scratch() { device_free(ptr_, device_, stream_); }
  char* data() const { return static_cast<char*>(ptr_); }

 private:
  int device_;
  cudaStream_t stream_;
  void* ptr_ = nullptr;
};

std::size_t round_up(std::size_t x) { return (x + 255) / 256 * 256; }

template <typename T>
void run_main(const AttentionParams& p, const BwdScratch& sc, int dpad, cudaStream_t stream) {
  if (sc.compact) {
    switch (dpad) {
      case 64: run_bwd_main<T, 64, true>(p, sc, stream); break;
      case 128: run_bwd_main<T, 128, true>(p, sc, stream); break;
      default: run_bwd_main<T, 256, true>(p, sc, stream); break;
    }
    return;
  }
  switch (dpad) {
    case 64: run_bwd_main<T, 64, false>(p, sc, stream); break;
    case 128: run_bwd_main<T, 128, false>(p, sc, stream); break;
    default: run_bwd_main<T, 256, false>(p, sc, stream); break;
  }
}

}  // namespace

namespace sm80_bwd {
int bwd_block_m(int padded_dim, bool compact) {
  if (compact)
    return padded_dim == 64    ? BwdTile<64, true>::kBlockM
           : padded_dim == 128 ? BwdTile<128, true>::kBlockM
                               : BwdTile<256, true>::kBlockM;
  return padded_dim == 64 ? BwdTile<64>::kBlockM : padded_dim == 128 ? BwdTile<128>::kBlockM : BwdTile<256>::kBlockM;
}
int bwd_block_n(int padded_dim, bool compact) {
  if (compact)
    return padded_dim == 64    ? BwdTile<64, true>::kBlockN
           : padded_dim == 128 ? BwdTile<128, true>::kBlockN
                               : BwdTile<256, true>::kBlockN;
  return padded_dim == 64 ? BwdTile<64>::kBlockN : padded_dim == 128 ? BwdTile<128>::kBlockN : BwdTile<256>::kBlockN;
}
}  // namespace sm80_bwd

void sm80_backward(const AttentionParams& p) {
  const int device = p.device.index;
  DeviceGuard guard(device);
  const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
  const bool varlen = p.is_varlen();
  const int dpad = padded_head_dim(p.head_dim);

  // The device's opt-in shared memory, lowered by FLASHATTN_MAX_SMEM_PER_BLOCK (device_smem.hpp).
  const std::size_t smem_limit = device_smem_per_block(device);
  const BwdTileChoice tile = choose_bwd_tile(dpad, smem_limit);
  if (tile.kind == BwdTileKind::none) {
    // The smallest tile there is at this head dim, with one stage.
    const std::size_t need = kBwdStaticSmem + (bwd_tile_smem(dpad, BwdTileKind::compact, 1) > 0
                                                   ? bwd_tile_smem(dpad, BwdTileKind::compact, 1)
                                                   : bwd_tile_smem(dpad, BwdTileKind::standard, 1));
    throw Error(Error::Kind::unsupported, "",
                "sm80 backward: head_dim " + std::to_string(p.head_dim) + " needs " + std::to_string(need) +
                    " bytes of shared memory per block, the device offers " + std::to_string(smem_limit));
  }

  BwdScratch sc;
  bool overlap_convert = false;
  const bool compact = tile.kind == BwdTileKind::compact;
  sc.compact = compact;
  const int block_m = bwd_block_m(dpad, compact);
  // Whole 64-row blocks for the preprocess (and q tiles): a multiple of block_m either way.
  const int row_block = std::max(block_m, 64);
  sc.seq_pad = (p.seqlen_q + row_block - 1) / row_block * row_block;
  sc.rows_alloc = std::int64_t(p.batch) * sc.seq_pad;
  sc.dq_ld = dpad;
  sc.n_kv_tiles = (p.seqlen_k + bwd_block_n(dpad, compact) - 1) / bwd_block_n(dpad, compact);
  sc.n_q_tiles = (p.seqlen_q + block_m - 1) / block_m;
  sc.stages = tile.stages;
  sc.dq_scale = bwd_plain(p) ? p.scale : 1.f;
  {
    // Longest blocks first where the keys' right edge is bounded (causal; kv tile 0 then sees the
    // most q tiles), in groups whose q side stays in L2 (bwd_block_order.hpp). Head dims padded
    // to 128 and 256 only: at 64 the grouped order lost at 1k (H200, causal, three interleaved
    // rounds: -2..-7%) and gained 0-3% from 4k. One block per SM: every tile's shared memory is
    // over half of what an SM offers.
    int l2 = 0, sms = 0, major = 0;
    FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
    FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    overlap_convert = major >= 9 && env_switch("FLASHATTN_BWD_OVERLAP") != EnvSwitch::off;
    const bool masked = p.window_right >= 0 && dpad >= 128;
    const std::int64_t q_side = std::int64_t(p.heads_q / p.heads_kv) * p.seqlen_q *
                                (2 * std::int64_t(p.head_dim) * 2 + 2 * std::int64_t(sizeof(float)));
    sc.pair_group =
        bwd_pair_group(masked, p.batch * p.heads_kv, sc.n_kv_tiles, sms, q_side, static_cast<std::size_t>(l2));
  }
  sc.vec_in = rows_vectorizable(p.q, p.q_batch_stride, p.q_row_stride, p.q_head_stride, varlen) &&
              rows_vectorizable(p.k, p.k_batch_stride, p.k_row_stride, p.k_head_stride, varlen) &&
              rows_vectorizable(p.v, p.v_batch_stride, p.v_row_stride, p.v_head_stride, varlen) &&
              rows_vectorizable(p.dout, p.do_batch_stride, p.do_row_stride, p.do_head_stride, varlen);
  sc.vec_out = rows_vectorizable(p.dk, p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride, varlen) &&
               rows_vectorizable(p.dv, p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride, varlen);

  const std::size_t rows = static_cast<std::size_t>(p.heads_q) * sc.rows_alloc;
  const std::size_t dq_bytes = round_up(rows * sc.dq_ld * sizeof(float));
  const std::size_t row_bytes = round_up(rows * sizeof(float));
  const std::size_t sem_bytes =
      p.deterministic ? round_up(std::size_t(p.batch) * p.heads_q * sc.n_q_tiles * sizeof(int)) : 0;
  const std::size_t done_bytes = overlap_convert ? round_up(std::size_t(p.batch) * p.heads_kv * sizeof(unsigned)) : 0;
  Scratch scratch(dq_bytes + 2 * row_bytes + sem_bytes + done_bytes, device, stream);
  sc.dq_accum = reinterpret_cast<float*>(scratch.data());
  sc.lse2 = reinterpret_cast<float*>(scratch.data() + dq_bytes);
  sc.drow = reinterpret_cast<float*>(scratch.data() + dq_bytes + row_bytes);
  if (p.deterministic) sc.semaphores = reinterpret_cast<int*>(scratch.data() + dq_bytes + 2 * row_bytes);
  if (overlap_convert) sc.pair_done = reinterpret_cast<unsigned*>(scratch.data() + dq_bytes + 2 * row_bytes + sem_bytes);

  // The preprocess zero-fills dq_accum (and pair_done).
  if (sem_bytes) FLASHATTN_CUDA_CHECK(cudaMemsetAsync(sc.semaphores, 0, sem_bytes, stream));
  run_bwd_preprocess(p, sc, stream);
  if (p.dtype == DType::f16)
    run_main<__half>(p, sc, dpad, stream);
  else
    run_main<__nv_bfloat16>(p, sc, dpad, stream);
  run_bwd_convert_dq(p, sc, stream);
}

}  // namespace flashattn::detail
