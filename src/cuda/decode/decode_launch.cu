// Host side of the CUDA decode engine: append kernel, attention kernel (which merges its splits);
// the split heuristic; the device copy used by the block manager's copy-on-write.
#include <cuda_runtime.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/common/cuda_check.cuh"
#include "cuda/common/device_guard.cuh"
#include "cuda/common/device_smem.hpp"
#include "cuda/common/env_switch.hpp"
#include "cuda/decode/decode_append_kernel.cuh"
#include "cuda/decode/decode_fwd_sm80_mma.cuh"
#include "cuda/decode/decode_heuristics.hpp"
#include "cuda/decode/decode_instances.hpp"
#include "cuda/decode/split_scratch.hpp"
#include "dispatch/device_memory.hpp"
#include "inference/decode_engines.hpp"

namespace flashattn::detail {
namespace {

using decode::DecodeTile;
using decode::SmemTier;

int kd_for(int head_dim) { return head_dim <= 64 ? 64 : (head_dim <= 128 ? 128 : 256); }

// Every tile fits the budget it is named after (decode_instances.hpp).
template <int kD>
constexpr bool tiles_fit_their_tiers() {
  return DecodeTile<kD, SmemTier::kib227>::kSmem <= kSmemOptinHopper &&
         DecodeTile<kD, SmemTier::kib163>::kSmem <= kSmemOptinA100 && DecodeTile<kD, SmemTier::kib99>::kSmem <= kSmemOptinAda;
}
static_assert(tiles_fit_their_tiers<64>() && tiles_fit_their_tiers<128>() && tiles_fit_their_tiers<256>());
// Head dim 64's largest tile fits 163 KiB: it has no tile of its own there.
static_assert(DecodeTile<64, SmemTier::kib227>::kSmem <= kSmemOptinA100);

struct TileChoice {
  SmemTier tier = SmemTier::kib227;
  int max_rows = 0;  // query rows per CTA
};

template <int kD>
TileChoice tile_for(std::size_t smem_per_block) {
  if (DecodeTile<kD, SmemTier::kib227>::kSmem <= smem_per_block) return {SmemTier::kib227, DecodeTile<kD, SmemTier::kib227>::kMaxRows};
  if (kD > 64 && DecodeTile<kD, SmemTier::kib163>::kSmem <= smem_per_block)
    return {SmemTier::kib163, DecodeTile<kD, SmemTier::kib163>::kMaxRows};
  if (DecodeTile<kD, SmemTier::kib99>::kSmem <= smem_per_block) return {SmemTier::kib99, DecodeTile<kD, SmemTier::kib99>::kMaxRows};
  throw Error(Error::Kind::unsupported, "", "the CUDA decode kernel for head dims up to " + std::to_string(kD) + " needs " +
                                                std::to_string(DecodeTile<kD, SmemTier::kib99>::kSmem) +
                                                " bytes of shared memory per block; the device offers " +
                                                std::to_string(smem_per_block));
}

// Head dim 256 on a 227 KiB device: the three-stage tile streams long splits faster and short
// ones slower than the two-stage (163 KiB) tile, for a reason not found (H200, GQA 32/8, bf16,
// one token, graph us, three / two stages, same run: batch 8 x 8k keys, 2 splits of 4k keys
// 141.6 / 158.3; 32 x 4k, unsplit 266.5 / 302.6; 1 x 8k, splits of 2k / 1k / 512 / 256 keys:
// 82.0 / 47.8 / 52.0 / 53.1 against 77.7 / 42.6 / 33.9 / 41.2). Splits shorter than 4k keys
// take the two-stage tile; both hold one CTA per SM and 64 rows, so the split count stands.
constexpr int kD256ThreeStageMinSplitKeys = 4096;

TileChoice for_split_length(TileChoice choice, int head_dim, int keys_per_split) {
  if (kd_for(head_dim) == 256 && choice.tier == SmemTier::kib227 && keys_per_split < kD256ThreeStageMinSplitKeys)
    return {SmemTier::kib163, DecodeTile<256, SmemTier::kib163>::kMaxRows};
  return choice;
}
static_assert(DecodeTile<256, SmemTier::kib163>::kMaxRows == DecodeTile<256, SmemTier::kib227>::kMaxRows);

TileChoice tile_for_head_dim(int head_dim, std::size_t smem_per_block) {
  const int kd = kd_for(head_dim);
  return kd == 64 ? tile_for<64>(smem_per_block) : kd == 128 ? tile_for<128>(smem_per_block) : tile_for<256>(smem_per_block);
}

// Calls f(head dim, tier) with both as std::integral_constant, for the instantiated tile of head
// dim kd and `tier` (head dim 64 has no 163 KiB tile: tile_for never picks it).
template <typename F>
decltype(auto) with_tile(int kd, SmemTier tier, F&& f) {
  using std::integral_constant;
  using T = SmemTier;
  switch (kd * 4 + static_cast<int>(tier)) {
    case 64 * 4 + static_cast<int>(T::kib99): return f(integral_constant<int, 64>{}, integral_constant<T, T::kib99>{});
    case 64 * 4 + static_cast<int>(T::kib227): return f(integral_constant<int, 64>{}, integral_constant<T, T::kib227>{});
    case 128 * 4 + static_cast<int>(T::kib99): return f(integral_constant<int, 128>{}, integral_constant<T, T::kib99>{});
    case 128 * 4 + static_cast<int>(T::kib163): return f(integral_constant<int, 128>{}, integral_constant<T, T::kib163>{});
    case 128 * 4 + static_cast<int>(T::kib227): return f(integral_constant<int, 128>{}, integral_constant<T, T::kib227>{});
    case 256 * 4 + static_cast<int>(T::kib99): return f(integral_constant<int, 256>{}, integral_constant<T, T::kib99>{});
    case 256 * 4 + static_cast<int>(T::kib163): return f(integral_constant<int, 256>{}, integral_constant<T, T::kib163>{});
    default: return f(integral_constant<int, 256>{}, integral_constant<T, T::kib227>{});
  }
}

struct DeviceInfo {
  int sms = 0;
  int major = 0;
  int ctas_per_sm[3][3] = {{-1, -1, -1}, {-1, -1, -1}, {-1, -1, -1}};  // [kD 64, 128, 256][tier], -1: not asked yet
  // Resident clusters of s CTAs, [kD][tier][s]; -1: not asked yet, 0: no cluster merge there.
  int clusters[3][3][decode::kMaxClusterSplits + 1];
  DeviceInfo() {
    for (auto& kd : clusters)
      for (auto& tier : kd)
        for (int& n : tier) n = -1;
  }
};

std::mutex device_info_mutex;

DeviceInfo& device_info_locked(int device) {
  static std::vector<DeviceInfo> cache;
  if (static_cast<int>(cache.size()) <= device) cache.resize(static_cast<std::size_t>(device) + 1);
  DeviceInfo& info = cache[static_cast<std::size_t>(device)];
  if (info.sms == 0) {
    int major = 0, minor = 0, sms = 0;
    FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    FLASHATTN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    if (major * 10 + minor < 80)
      throw Error(Error::Kind::unsupported, "q", "the CUDA decode engine needs compute capability 8.0 or newer");
    info.sms = sms;
    info.major = major;
  }
  return info;
}

int kd_index(int kd) { return kd == 64 ? 0 : (kd == 128 ? 1 : 2); }

// Whether the tile's attention kernel runs sm_90 code on `device` (info's device).
bool tile_sm90_code(const DeviceInfo& info, int device, int kd, SmemTier tier) {
  if (info.major < 9) return false;
  const DeviceGuard on_device(device);
  return with_tile(kd, tier, [&](auto d, auto t) { return decode::decode_sm90_code<d(), t()>(device); });
}

// Throws (before anything runs) on a device older than sm_80.
void check_device(int device) {
  std::lock_guard<std::mutex> lock(device_info_mutex);
  device_info_locked(device);
}

// SMs, and resident CTAs per SM of the tile `choice` of head dim kd (asked once per device).
std::pair<int, int> device_slots(int device, int kd, TileChoice choice) {
  std::lock_guard<std::mutex> lock(device_info_mutex);
  DeviceInfo& info = device_info_locked(device);
  int& n = info.ctas_per_sm[kd_index(kd)][static_cast<int>(choice.tier)];
  if (n < 0) {
    const DeviceGuard on_device(device);
    n = with_tile(kd, choice.tier, [](auto d, auto tier) { return decode::decode_occupancy<d(), tier()>(); });
  }
  return {info.sms, n};
}

// What the split count and the merge depend on.
struct DecodeShape {
  int device, batch, heads_kv, heads_q, seqlen_q, max_seqlen_k, head_dim;
  // Attention CTAs of the unsplit grid with `max_rows` query rows per CTA.
  int ctas(int max_rows) const {
    const int rows = (heads_q / heads_kv) * seqlen_q;
    return batch * heads_kv * ((rows + max_rows - 1) / max_rows);
  }
};

DecodeShape shape_of(const DecodeParams& p) {
  return {p.device.index, p.batch, p.heads_kv, p.heads_q, p.seqlen_q, p.k_rows.capacity(), p.head_dim};
}

// FLASHATTN_DECODE_CLUSTER_MERGE: unset = where it fits, 0 = never (so the memory merge is tested
// and measured on Hopper too), 1 = required, an `unsupported` error where it cannot run (so tests
// know which merge they checked).
EnvSwitch cluster_mode() { return env_switch("FLASHATTN_DECODE_CLUSTER_MERGE"); }

// Whether the grid of `splits` splits with tile `tile` can merge through clusters' shared memory
// (decode_cluster_merge.cuh): sm_90 code, 2-16 splits, and every cluster of the grid resident at
// once (the split count assumes one wave). Asked once per device, tile and split count.
bool clusters_fit(const DecodeShape& sh, TileChoice tile, int splits) {
  if (splits < 2 || splits > decode::kMaxClusterSplits) return false;
  const int kd = kd_for(sh.head_dim);
  std::lock_guard<std::mutex> lock(device_info_mutex);
  DeviceInfo& info = device_info_locked(sh.device);
  int& n = info.clusters[kd_index(kd)][static_cast<int>(tile.tier)][splits];
  if (n < 0) {
    n = 0;
    if (tile_sm90_code(info, sh.device, kd, tile.tier)) {
      const DeviceGuard on_device(sh.device);
      n = with_tile(kd, tile.tier, [&](auto d, auto tier) { return decode::decode_max_clusters<d(), tier()>(sh.device, splits); });
    }
  }
  return sh.ctas(tile.max_rows) <= n;
}

// The split count of a call whose tile is `choice` (decode_heuristics.hpp): the memory merge's
// count, or a cluster-merged one for short contexts.
int device_splits(const DecodeShape& sh, TileChoice choice, EnvSwitch mode) {
  const auto [sms, per_sm] = device_slots(sh.device, kd_for(sh.head_dim), choice);
  const int tiles = (sh.max_seqlen_k + decode::kSplitGrainKeys - 1) / decode::kSplitGrainKeys;
  const int memory_splits = decode::choose_device_splits(sh.ctas(choice.max_rows), sms, per_sm, tiles);
  if (mode == EnvSwitch::off) return memory_splits;
  return decode::prefer_cluster_splits(memory_splits, tiles, [&](int s) {
    return clusters_fit(sh, for_split_length(choice, sh.head_dim, (sh.max_seqlen_k + s - 1) / s), s);
  });
}

// The tile of an unsplit call: head dim 128's 227 KiB tile (one CTA per SM) gives way to its
// 99 KiB tile (two per SM) for grids of several waves of short CTAs that the latter packs as
// tightly (prefer_smaller_tile, decode_heuristics.hpp). Both hold 64 query rows: same grid.
TileChoice for_grid(TileChoice choice, const DecodeShape& sh) {
  if (kd_for(sh.head_dim) != 128 || choice.tier != SmemTier::kib227) return choice;
  const TileChoice two_per_sm{SmemTier::kib99, DecodeTile<128, SmemTier::kib99>::kMaxRows};
  const auto [sms, big_per_sm] = device_slots(sh.device, 128, choice);
  const int small_per_sm = device_slots(sh.device, 128, two_per_sm).second;
  const bool smaller = decode::prefer_smaller_tile(sh.ctas(choice.max_rows), sh.max_seqlen_k, sms, big_per_sm, small_per_sm);
  return smaller ? two_per_sm : choice;
}
static_assert(DecodeTile<128, SmemTier::kib99>::kMaxRows == DecodeTile<128, SmemTier::kib227>::kMaxRows);
// The tile taken there must have the programmatic kernels that grids of several waves launch with.
static_assert(decode::has_programmatic_launch(128, SmemTier::kib99));

int resolve_splits(const DecodeParams& p, TileChoice choice, EnvSwitch mode) {
  if (p.num_splits > 0) return std::min(p.num_splits, decode::kMaxSplits);
  return device_splits(shape_of(p), choice, mode);
}

// Whether this call's splits merge through clusters (clusters_fit, cluster_mode); the current
// device is p.device.
bool use_cluster_merge(const DecodeParams& p, TileChoice tile, EnvSwitch mode) {
  if (p.num_splits < 2 || mode == EnvSwitch::off) return false;
  const bool fits = clusters_fit(shape_of(p), tile, p.num_splits);
  if (!fits && mode == EnvSwitch::on)
    throw Error(Error::Kind::unsupported, "num_splits",
                "FLASHATTN_DECODE_CLUSTER_MERGE=1, but " + std::to_string(p.num_splits) +
                    " splits cannot merge in clusters here (sm_90 code, at most " +
                    std::to_string(decode::kMaxClusterSplits) + " splits, every cluster resident at once)");
  return fits;
}

// FLASHATTN_DECODE_PDL: unset = calls launch programmatically (programmatic_launch) where their
// kernels run sm_90 code and the grid gains from it (programmatic_launch_pays,
// decode_heuristics.hpp); 1 = wherever their kernels run sm_90 code, whatever the grid (tests of
// the wait); 0 = every call in plain stream order (the A/B, and tests of both).
EnvSwitch pdl_mode() { return env_switch("FLASHATTN_DECODE_PDL"); }

// Whether this call's kernels launch programmatically: each then waits in its own code for the
// grid ahead of it, which only its sm_90 code does (the append's too, when there is one). Split
// calls too, but not those merged in clusters (a launch of its own kind), and without the L2
// prefetch (decode_attention_kernel): a split call is one wave whose tail is its merge, and the
// gain is the next call's launch and prologue under that tail (H200, graph us, stream order /
// programmatic, three interleaved rounds of one run: batch 1 x 4k 11.6 / 11.2-11.3, 1 x 8k 15.1 /
// 14.7, 1 x 64k 66.3 / 65.9-66.0, 1 x 128k 124.7-125.0 / 124.2-124.6, 8 x 8k 64.8-65.0 / 64.9-65.0;
// with a one-tile prefetch it lost: 1 x 4k 11.7 / 13.4, 1 x 8k 15.3 / 17.5).
bool programmatic_launch(const DecodeParams& p, TileChoice tile, bool cluster_merge, bool append) {
  const EnvSwitch mode = pdl_mode();
  if (mode == EnvSwitch::off || cluster_merge) return false;
  if (!decode::has_programmatic_launch(kd_for(p.head_dim), tile.tier)) return false;
  if (mode == EnvSwitch::automatic) {
    const auto [sms, per_sm] = device_slots(p.device.index, kd_for(p.head_dim), tile);
    if (!decode::programmatic_launch_pays(shape_of(p).ctas(tile.max_rows) * p.num_splits, sms * per_sm)) return false;
  }
  std::lock_guard<std::mutex> lock(device_info_mutex);
  DeviceInfo& info = device_info_locked(p.device.index);
  if (!tile_sm90_code(info, p.device.index, kd_for(p.head_dim), tile.tier)) return false;
  if (!append) return true;
  const int d = p.device.index;  // the current device (cuda_decode)
  return p.dtype == DType::bf16 ? decode::append_sm90_code<__nv_bfloat16>(d) : decode::append_sm90_code<__half>(d);
}

template <typename T>
void launch_attention(const DecodeParams& p, TileChoice choice, float* o_part, float* lse_part, unsigned* counters,
                      bool cluster_merge, bool programmatic, cudaStream_t stream) {
  with_tile(kd_for(p.head_dim), choice.tier, [&](auto d, auto tier) {
    decode::launch_attention<T, d(), tier()>(p, o_part, lse_part, counters, cluster_merge, programmatic, stream);
  });
}

}  // namespace

int cuda_decode_num_splits(int device, int batch, int heads_kv, int heads_q, int seqlen_q, int max_seqlen_k,
                           int head_dim) {
  check_device(device);
  const TileChoice choice = tile_for_head_dim(head_dim, device_smem_per_block(device));
  return device_splits({device, batch, heads_kv, heads_q, seqlen_q, max_seqlen_k, head_dim}, choice, cluster_mode());
}

void cuda_decode(const DecodeParams& p0) {
  DecodeParams p = p0;
  // Both throw before anything runs: a device older than sm_80, no tile that fits.
  check_device(p.device.index);
  const TileChoice choice = tile_for_head_dim(p.head_dim, device_smem_per_block(p.device.index));
  const cudaStream_t stream = static_cast<cudaStream_t>(p.stream);
  const DeviceGuard on_device(p.device.index);
  const bool bf16 = p.dtype == DType::bf16;
  const bool attend = p.batch > 0 && p.seqlen_q > 0;
  // The split count, tile and merge are settled before anything runs (a required cluster merge
  // that cannot run is an error, the cache not yet appended to).
  const EnvSwitch mode = cluster_mode();
  p.num_splits = attend ? resolve_splits(p, choice, mode) : 1;
  TileChoice tile = for_split_length(choice, p.head_dim, (p.k_rows.capacity() + p.num_splits - 1) / p.num_splits);
  if (p.num_splits == 1) tile = for_grid(tile, shape_of(p));
  const bool cluster_merge = attend && use_cluster_merge(p, tile, mode);
  const bool append = p.k_new != nullptr && p.seqlen_new > 0 && p.batch > 0;
  const bool programmatic = attend && programmatic_launch(p, tile, cluster_merge, append);
  if (append) {
    if (bf16) decode::launch_append<__nv_bfloat16>(p, programmatic, stream);
    else decode::launch_append<__half>(p, programmatic, stream);
  }
  if (attend) {
    const int splits = p.num_splits;
    float* o_part = nullptr;
    float* lse_part = nullptr;
    unsigned* counters = nullptr;
    void* scratch = nullptr;
    const std::size_t rows = static_cast<std::size_t>(p.batch) * p.heads_q * p.seqlen_q;
    if (splits > 1 && !cluster_merge) {
      // Parts, and one arrival counter per attention CTA of the unsplit grid (the last CTA of
      // each to finish merges the parts, see decode_combine_kernel.cuh), from the stream's
      // scratch (split_scratch.hpp); the parts from the device allocator instead when the
      // caller routes scratch to its own (a framework's caching allocator) or the pool has none.
      const int row_groups = ((p.heads_q / p.heads_kv) * p.seqlen_q + choice.max_rows - 1) / choice.max_rows;
      const std::size_t n_counters = static_cast<std::size_t>(p.batch) * p.heads_kv * row_groups;
      const std::size_t part_floats = rows * splits * (p.head_dim + 1);
      const decode::SplitScratch pooled =
          decode::split_scratch_for(p.device.index, stream, n_counters, device_allocator_is_default() ? part_floats : 0);
      counters = pooled.counters;
      float* parts = pooled.parts;
      const std::size_t own_counters = counters == nullptr ? n_counters : 0;  // fallback: zeroed here
      const std::size_t own_floats = parts == nullptr ? part_floats : 0;
      if (own_counters + own_floats > 0) {
        scratch = device_allocate(own_floats * sizeof(float) + own_counters * sizeof(unsigned), p.device.index, p.stream);
        if (parts == nullptr) parts = static_cast<float*>(scratch);
      }
      o_part = parts;
      lse_part = o_part + rows * splits * p.head_dim;
      if (own_counters > 0) {
        counters = reinterpret_cast<unsigned*>(static_cast<float*>(scratch) + own_floats);
        const cudaError_t err = cudaMemsetAsync(counters, 0, n_counters * sizeof(unsigned), stream);
        if (err != cudaSuccess) device_free(scratch, p.device.index, p.stream);
        FLASHATTN_CUDA_CHECK(err);
      }
    }
    if (bf16) launch_attention<__nv_bfloat16>(p, tile, o_part, lse_part, counters, cluster_merge, programmatic, stream);
    else launch_attention<__half>(p, tile, o_part, lse_part, counters, cluster_merge, programmatic, stream);
    if (scratch != nullptr) device_free(scratch, p.device.index, p.stream);
  }
}

void cuda_copy_async(void* dst, const void* src, std::size_t bytes, int device, StreamHandle stream) {
  const DeviceGuard on_device(device);
  FLASHATTN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)));
}

}  // namespace flashattn::detail
