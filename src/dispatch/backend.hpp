// The backend table: each engine (cpu, simt, sm80, sm90) exposes the same entry points,
// and dispatch picks one from the tensors' device, the GPU's compute capability and
// FLASHATTN_BACKEND. Entry points run on validated Params and never throw for user input.
#pragma once

#include "core/attention_params.hpp"
#include "core/merge_params.hpp"

namespace flashattn::detail {

struct Backend {
  const char* name;
  // Returns false when this engine cannot run these params (dtype, head dim, alignment);
  // the API then reports it as unsupported, quoting `requirements`, and runs nothing.
  bool (*supports)(const AttentionParams&);
  void (*forward)(const AttentionParams&);
  void (*backward)(const AttentionParams&);
  void (*merge_states)(const MergeParams&);
  const char* requirements;  // what `supports` checks, in words, for error messages
};

// The engine for tensors on `device` (FLASHATTN_BACKEND may force one). Throws
// flashattn::Error (unsupported) when none is built for that device.
const Backend& select_backend(Device device);

// Engines by name; nullptr when not built. Implemented by each engine's translation unit.
const Backend& cpu_backend();
const Backend* cuda_backend(const char* name, int device);  // name: "sm80", "sm90", "simt" or "" (best)

}  // namespace flashattn::detail
