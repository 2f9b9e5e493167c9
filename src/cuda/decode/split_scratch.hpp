// Scratch of the split-KV decode's in-kernel merge ("last CTA merges", decode_combine_kernel.cuh):
// the arrival counters, kept zeroed between calls so that a call needs no memset, and the
// parts (o_part, lse_part), kept so that a call allocates nothing.
//
// A call allocating nothing matters beyond the allocation's own cost: a captured
// cudaMallocAsync / cudaFreeAsync pair becomes two memory nodes around the attention kernel, and
// kernels with other nodes between them do not overlap under programmatic launch (H200, batch 1 x
// 4k keys, graph us: programmatic split calls 11.7 with the memory nodes, 11.2-11.3 without,
// stream order 11.6-11.8 either way).
//
// The last CTA of each (batch, KV head, row group) resets its counter to zero after merging, so a
// counter is zero again whenever the kernel that used it has finished, and the parts are dead
// once it has. Calls that run one after another may therefore share both; calls that may run
// at once may not:
// - an eager call takes its stream's region: calls on one stream run one after another (a
//   programmatic one reads and writes neither before griddepcontrol.wait); cudaStreamPerThread
//   names a different stream in each thread, so it has a region per thread;
// - a call captured into a CUDA graph takes the region of its capture and stream: every call
//   captured later on that stream depends on it in the graph. (Two instantiations of one graph
//   launched to run at once would share it: not supported.)
// Regions come from device chunks allocated outside any capture (counters zeroed once) and
// never freed: a captured graph may refer to them for the life of the process. A capture
// cannot allocate a chunk, and a region too small for a call is replaced, not resized (the
// old one may still be in use by queued kernels). Where no region can be had the caller falls
// back: counters in its own scratch zeroed by a memset on the stream (a node of its own per
// call, ~2 us per graph-replayed decode step on an H200), parts from the device allocator.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace flashattn::detail::decode {

struct SplitScratch {
  unsigned* counters = nullptr;  // zeroed, or nullptr: none could be had
  float* parts = nullptr;        // uninitialised, or nullptr: none could be had (or not asked for)
};

// n_counters zeroed counters and part_floats floats of parts (0: none asked) for a call on
// `stream` of `device` (the current device).
SplitScratch split_scratch_for(int device, cudaStream_t stream, std::size_t n_counters, std::size_t part_floats);

}  // namespace flashattn::detail::decode
