// Arrival counters of the split-KV decode ("last CTA merges", decode_combine_kernel.cuh),
// kept zeroed between calls so that a call needs no memset.
//
// The last CTA of each (batch, KV head, row group) resets its counter to zero after merging,
// so a counter is zero again whenever the kernel that used it has finished. A call therefore
// needs counters that no kernel still running can touch:
// - an eager call takes its stream's region: calls on one stream run one after another;
// - a call captured into a CUDA graph takes counters of its own, never handed out again (a
//   graph cannot run concurrently with itself, and no other call shares them);
// Counters come from device chunks zeroed once, outside any capture. When none can be had
// (a capture before the first eager call, or a stream that cannot allocate right now) the
// caller falls back to counters in its scratch zeroed by a memset on the stream, which costs
// a node of its own per call (~2 us per graph-replayed decode step on an H200).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace flashattn::detail::decode {

// n zeroed counters for a call on `stream` of `device` (the current device), or nullptr.
unsigned* split_counters_for(int device, cudaStream_t stream, std::size_t n);

}  // namespace flashattn::detail::decode
