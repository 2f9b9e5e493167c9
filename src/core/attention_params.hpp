// The one plain struct every backend reads: built once by src/api after validation.
// Strides are in elements. Backends never validate, allocate user-visible memory or throw.
#pragma once

#include <cstdint>

#include "core/host_device.hpp"
#include "flashattn/dtype.hpp"

namespace flashattn::detail {

struct AttentionParams {
  // Forward inputs/outputs. For the backward pass `o` and `lse` are inputs.
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  void* o = nullptr;
  float* lse = nullptr;  // may be null in the forward pass
  // Backward only.
  const void* dout = nullptr;
  void* dq = nullptr;
  void* dk = nullptr;
  void* dv = nullptr;

  // Strides (elements). Batch strides are unused for varlen (rows are packed).
  std::int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  std::int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  std::int64_t v_batch_stride = 0, v_row_stride = 0, v_head_stride = 0;
  std::int64_t o_batch_stride = 0, o_row_stride = 0, o_head_stride = 0;
  std::int64_t do_batch_stride = 0, do_row_stride = 0, do_head_stride = 0;
  std::int64_t dq_batch_stride = 0, dq_row_stride = 0, dq_head_stride = 0;
  std::int64_t dk_batch_stride = 0, dk_row_stride = 0, dk_head_stride = 0;
  std::int64_t dv_batch_stride = 0, dv_row_stride = 0, dv_head_stride = 0;
  // lse: (batch, heads, seqlen) or, varlen, (heads, total_q).
  std::int64_t lse_batch_stride = 0, lse_head_stride = 0, lse_row_stride = 1;

  int batch = 0;
  int seqlen_q = 0;  // max over the batch for varlen
  int seqlen_k = 0;
  int heads_q = 0;
  int heads_kv = 0;
  int head_dim = 0;

  // Varlen: int32 prefix sums (batch + 1) on the tensors' device, else null.
  const int* cu_seqlens_q = nullptr;
  const int* cu_seqlens_k = nullptr;

  float scale = 0.f;       // multiplies q.k
  float scale_log2 = 0.f;  // scale * log2(e): the softmax runs in base 2
  // Resolved mask: causal sets window_right = 0. -1 = unbounded.
  int window_left = -1;
  int window_right = -1;
  bool causal = false;
  float softcap = 0.f;  // 0 = off
  const float* alibi_slopes = nullptr;
  std::int64_t alibi_batch_stride = 0;  // 0 when slopes are (heads)
  float dropout_p = 0.f;
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;
  bool deterministic = false;

  DType dtype = DType::f32;
  Device device = Device::cpu();
  void* stream = nullptr;

  FA_HOST_DEVICE bool is_varlen() const { return cu_seqlens_q != nullptr; }
};

// Per-sequence geometry, resolved from the batch index (host or device).
struct SeqGeometry {
  std::int64_t q_row0 = 0;  // first packed row (varlen) or 0
  std::int64_t k_row0 = 0;
  int seqlen_q = 0;
  int seqlen_k = 0;
};

FA_HOST_DEVICE SeqGeometry seq_geometry(const AttentionParams& p, int b) {
  SeqGeometry g;
  if (p.cu_seqlens_q != nullptr) {
    g.q_row0 = p.cu_seqlens_q[b];
    g.k_row0 = p.cu_seqlens_k[b];
    g.seqlen_q = p.cu_seqlens_q[b + 1] - p.cu_seqlens_q[b];
    g.seqlen_k = p.cu_seqlens_k[b + 1] - p.cu_seqlens_k[b];
  } else {
    g.seqlen_q = p.seqlen_q;
    g.seqlen_k = p.seqlen_k;
  }
  return g;
}

// Element offsets of row `row` (within sequence b) of head h in each tensor.
FA_HOST_DEVICE std::int64_t q_offset(const AttentionParams& p, int b, std::int64_t row0, int row, int h) {
  return (p.is_varlen() ? 0 : b * p.q_batch_stride) + (row0 + row) * p.q_row_stride + h * p.q_head_stride;
}
FA_HOST_DEVICE std::int64_t k_offset(const AttentionParams& p, int b, std::int64_t row0, int row, int h) {
  return (p.is_varlen() ? 0 : b * p.k_batch_stride) + (row0 + row) * p.k_row_stride + h * p.k_head_stride;
}
FA_HOST_DEVICE std::int64_t v_offset(const AttentionParams& p, int b, std::int64_t row0, int row, int h) {
  return (p.is_varlen() ? 0 : b * p.v_batch_stride) + (row0 + row) * p.v_row_stride + h * p.v_head_stride;
}
FA_HOST_DEVICE std::int64_t o_offset(const AttentionParams& p, int b, std::int64_t row0, int row, int h) {
  return (p.is_varlen() ? 0 : b * p.o_batch_stride) + (row0 + row) * p.o_row_stride + h * p.o_head_stride;
}
FA_HOST_DEVICE std::int64_t do_offset(const AttentionParams& p, int b, std::int64_t row0, int row, int h) {
  return (p.is_varlen() ? 0 : b * p.do_batch_stride) + (row0 + row) * p.do_row_stride + h * p.do_head_stride;
}
FA_HOST_DEVICE std::int64_t dq_offset(const AttentionParams& p, int b, std::int64_t row0, int row, int h) {
  return (p.is_varlen() ? 0 : b * p.dq_batch_stride) + (row0 + row) * p.dq_row_stride + h * p.dq_head_stride;
}
FA_HOST_DEVICE std::int64_t dk_offset(const AttentionParams& p, int b, std::int64_t row0, int row, int h) {
  return (p.is_varlen() ? 0 : b * p.dk_batch_stride) + (row0 + row) * p.dk_row_stride + h * p.dk_head_stride;
}
FA_HOST_DEVICE std::int64_t dv_offset(const AttentionParams& p, int b, std::int64_t row0, int row, int h) {
  return (p.is_varlen() ? 0 : b * p.dv_batch_stride) + (row0 + row) * p.dv_row_stride + h * p.dv_head_stride;
}
FA_HOST_DEVICE std::int64_t lse_offset(const AttentionParams& p, int b, std::int64_t row0, int row, int h) {
  return (p.is_varlen() ? 0 : b * p.lse_batch_stride) + h * p.lse_head_stride + (row0 + row) * p.lse_row_stride;
}

}  // namespace flashattn::detail
