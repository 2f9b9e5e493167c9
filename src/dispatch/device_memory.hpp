// Host-side access to tensor memory on any device, for the few values the API must read
// (cu_seqlens during validation) and for library-internal scratch allocations.
#pragma once

#include <cstddef>

#include "flashattn/dtype.hpp"
#include "flashattn/options.hpp"

namespace flashattn::detail {

// Synchronous copy of `bytes` from `src` (on `device`) to host memory.
void copy_to_host(void* dst, const void* src, std::size_t bytes, Device device);

// Library-internal device scratch, through the allocator set by set_device_allocator.
void* device_allocate(std::size_t bytes, int device, StreamHandle stream);
void device_free(void* ptr, int device, StreamHandle stream);
// Whether no allocator was set (device_allocate is cudaMallocAsync): scratch the library may then
// keep in pools of its own without bypassing a framework's accounting.
bool device_allocator_is_default();

}  // namespace flashattn::detail
