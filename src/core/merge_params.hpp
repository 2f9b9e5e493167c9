// Parameters of merge_states: P partial (O, LSE) states of the same rows over disjoint
// key sets, combined into one. Rows are addressed as (batch, row, head).
#pragma once

#include <cstdint>

#include "flashattn/dtype.hpp"

namespace flashattn::detail {

struct MergeParams {
  const void* o_parts = nullptr;
  const float* lse_parts = nullptr;
  void* out = nullptr;
  float* lse = nullptr;  // optional
  DType o_parts_dtype = DType::f32;
  DType out_dtype = DType::f32;
  int parts = 0, batch = 0, seqlen = 0, heads = 0, head_dim = 0;
  // Strides in elements: o_parts (part, batch, row, head), lse_parts (part, batch, head, row).
  std::int64_t op_part_stride = 0, op_batch_stride = 0, op_row_stride = 0, op_head_stride = 0;
  std::int64_t lp_part_stride = 0, lp_batch_stride = 0, lp_head_stride = 0, lp_row_stride = 0;
  std::int64_t out_batch_stride = 0, out_row_stride = 0, out_head_stride = 0;
  std::int64_t lse_batch_stride = 0, lse_head_stride = 0, lse_row_stride = 0;
  Device device = Device::cpu();
  void* stream = nullptr;
};

}  // namespace flashattn::detail
