// How much shared memory one block may opt in to on a device: what the CUDA engines size their
// tiles by. Hopper offers 227 KiB, A100 / Orin 163 KiB, the other Ampere and Ada GPUs 99 KiB;
// each engine keeps a tile for every one of those (the largest that fits wins).
//
// FLASHATTN_MAX_SMEM_PER_BLOCK=<bytes> lowers the figure (never raises it), so the tiles the
// smaller GPUs run can be built, tested and timed on the GPU at hand:
//   FLASHATTN_MAX_SMEM_PER_BLOCK=101376  (99 KiB: sm_86 / sm_89)
//   FLASHATTN_MAX_SMEM_PER_BLOCK=166912  (163 KiB: sm_80 / sm_87)
// Read on every call (a getenv): tests switch it between calls.
#pragma once

#include <cstddef>

namespace flashattn::detail {

inline constexpr std::size_t kSmemOptinHopper = 232448;  // sm_90
inline constexpr std::size_t kSmemOptinA100 = 166912;    // sm_80, sm_87
inline constexpr std::size_t kSmemOptinAda = 101376;     // sm_86, sm_89

// Bytes of dynamic + static shared memory a block may use on `device` (the limit above applied).
std::size_t device_smem_per_block(int device);

// The limit FLASHATTN_MAX_SMEM_PER_BLOCK sets, or 0 when unset or not a positive number.
std::size_t smem_limit_from_env();

}  // namespace flashattn::detail
