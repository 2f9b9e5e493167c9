/// @file options.hpp
/// Attention options shared by every call and every backend.
#pragma once

#include <cstdint>
#include <optional>

#include "flashattn/tensor_view.hpp"

namespace flashattn {

/// What the attention computes beyond plain softmax(scale * Q K^T) V.
///
/// Mask conventions follow FlashAttention 2: with seqlen_q != seqlen_k the causal
/// diagonal is aligned to the bottom-right corner, i.e. query row i sees key j when
/// j <= i + seqlen_k - seqlen_q. A sliding window keeps keys with
///   i + seqlen_k - seqlen_q - window_left <= j <= i + seqlen_k - seqlen_q + window_right,
/// where -1 means unbounded on that side; `causal` is window_right = 0.
struct Options {
  /// Multiplies Q K^T; defaults to 1/sqrt(head_dim).
  std::optional<float> softmax_scale;
  bool causal = false;
  int window_left = -1;   ///< keys to the left of the diagonal; -1 = unbounded
  int window_right = -1;  ///< keys to the right of the diagonal; -1 = unbounded
  /// When > 0, logits become softcap * tanh(scale * q.k / softcap).
  float softcap = 0.0f;
  /// Optional fp32 ALiBi slopes, shape (heads_q) or (batch, heads_q); bias is
  /// -slope * |i + seqlen_k - seqlen_q - j| added after the softcap.
  TensorView alibi_slopes;
  /// Probability of dropping an attention weight (training only).
  float dropout_p = 0.0f;
  std::uint64_t seed = 0;    ///< Philox key for dropout
  std::uint64_t offset = 0;  ///< Philox offset, to draw a fresh mask per step
  /// Fixed reduction order in the backward pass (bitwise reproducible).
  bool deterministic = false;
};

/// Opaque stream handle (a cudaStream_t for CUDA tensors, ignored on the CPU).
using StreamHandle = void*;

}  // namespace flashattn
