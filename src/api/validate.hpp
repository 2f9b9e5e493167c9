// Argument checks shared by every public call. Each throws flashattn::Error naming the
// argument; none writes anything.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "flashattn/error.hpp"
#include "flashattn/options.hpp"
#include "flashattn/tensor_view.hpp"

namespace flashattn::detail {

[[noreturn]] void fail(const std::string& arg, const std::string& message);
[[noreturn]] void unsupported(const std::string& arg, const std::string& message);

std::string shape_string(const TensorView& t);

void check_defined(const TensorView& t, const char* name);
void check_rank(const TensorView& t, int rank, const char* name);
void check_dtype(const TensorView& t, DType want, const char* name);
void check_attention_dtype(const TensorView& t, const char* name);
void check_same_device(const TensorView& t, const TensorView& ref, const char* name, const char* ref_name);
void check_sizes(const TensorView& t, std::initializer_list<std::int64_t> want, const char* name);
void check_last_dim_contiguous(const TensorView& t, const char* name);
void check_strides_valid(const TensorView& t, const char* name);
// Outputs must not have two elements at the same address.
void check_non_overlapping(const TensorView& t, const char* name);
// `out` shares no byte with `in`.
void check_no_alias(const TensorView& out, const char* out_name, const TensorView& in, const char* in_name);
void check_head_dim(std::int64_t d, const char* name);

// Options against the problem: window, softcap, dropout, scale, ALiBi slopes.
void check_options(const Options& o, const TensorView& q, std::int64_t batch, std::int64_t heads_q);

// cu_seqlens: int32, (batch + 1), starts at 0, non-decreasing, last <= total rows, each
// length <= max_seqlen. Reads the values (copied to the host for device tensors).
std::vector<int> check_cu_seqlens(const TensorView& cu, const char* name, std::int64_t batch,
                                  std::int64_t total_rows, int max_seqlen, const char* max_name);

}  // namespace flashattn::detail
