/// @file attention.hpp
/// The attention calls. Every call validates all of its arguments before it writes
/// anything: on a bad argument it throws flashattn::Error naming the argument and
/// leaves every output untouched.
///
/// Layouts (BSHD, last dimension contiguous, other strides arbitrary):
///   q: (batch, seqlen_q, heads_q, head_dim)      k, v: (batch, seqlen_k, heads_kv, head_dim)
///   out: like q                                  lse: (batch, heads_q, seqlen_q), fp32
/// Varlen forms pack the sequences: q (total_q, heads_q, head_dim), lse (heads_q, total_q),
/// with int32 cu_seqlens of length batch + 1.
/// heads_q must be a multiple of heads_kv (GQA / MQA); head_dim a multiple of 8, <= 256.
#pragma once

#include <cstddef>

#include "flashattn/error.hpp"
#include "flashattn/options.hpp"
#include "flashattn/tensor_view.hpp"

namespace flashattn {

/// O = softmax(scale * Q K^T + mask) V; writes `out` and (when given) `lse`, the natural
/// log-sum-exp of each row's logits (-inf for a row that sees no key; its O is 0).
void forward(const TensorView& q, const TensorView& k, const TensorView& v,
             const TensorView& out, const TensorView& lse, const Options& opts = {},
             StreamHandle stream = nullptr);

/// Gradients of `forward`: dq, dk, dv (shaped like q, k, v) from dout, and the forward's
/// inputs, out and lse. With GQA the gradient of each KV head is summed over its group.
void backward(const TensorView& dout, const TensorView& q, const TensorView& k,
              const TensorView& v, const TensorView& out, const TensorView& lse,
              const TensorView& dq, const TensorView& dk, const TensorView& dv,
              const Options& opts = {}, StreamHandle stream = nullptr);

/// Forward over packed variable-length sequences. cu_seqlens_q/k are int32 prefix sums
/// (batch + 1 entries, starting at 0) on the tensors' device; empty sequences are allowed.
void varlen_forward(const TensorView& q, const TensorView& k, const TensorView& v,
                    const TensorView& cu_seqlens_q, const TensorView& cu_seqlens_k,
                    int max_seqlen_q, int max_seqlen_k, const TensorView& out,
                    const TensorView& lse, const Options& opts = {},
                    StreamHandle stream = nullptr);

/// Backward of `varlen_forward`.
void varlen_backward(const TensorView& dout, const TensorView& q, const TensorView& k,
                     const TensorView& v, const TensorView& out, const TensorView& lse,
                     const TensorView& cu_seqlens_q, const TensorView& cu_seqlens_k,
                     int max_seqlen_q, int max_seqlen_k, const TensorView& dq,
                     const TensorView& dk, const TensorView& dv, const Options& opts = {},
                     StreamHandle stream = nullptr);

/// Combines P partial attention states computed over disjoint key sets into one:
/// o_parts (P, batch, seqlen, heads, head_dim) with lse_parts (P, batch, heads, seqlen),
/// or the packed forms (P, total, heads, head_dim) with (P, heads, total).
/// out has o_parts' shape without P; lse (optional) lse_parts' shape without P.
void merge_states(const TensorView& o_parts, const TensorView& lse_parts,
                  const TensorView& out, const TensorView& lse,
                  StreamHandle stream = nullptr);

/// Device-memory allocator for the library's internal scratch (e.g. the fp32 dQ
/// accumulator of the CUDA backward). Lets frameworks route it to their caching
/// allocator; the default uses cudaMallocAsync / cudaFreeAsync on the call's stream.
struct DeviceAllocator {
  void* (*allocate)(std::size_t bytes, int device, StreamHandle stream, void* ctx) = nullptr;
  void (*deallocate)(void* ptr, int device, StreamHandle stream, void* ctx) = nullptr;
  void* ctx = nullptr;
};
void set_device_allocator(const DeviceAllocator& allocator);

/// Name of the backend a call on these tensors would run on ("cpu", "sm80", ...),
/// honouring FLASHATTN_BACKEND.
const char* backend_name(const TensorView& q);

/// Library version string.
const char* version();

}  // namespace flashattn
