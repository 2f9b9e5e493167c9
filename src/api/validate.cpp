#include "api/validate.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "dispatch/device_memory.hpp"

namespace flashattn::detail {

void fail(const std::string& arg, const std::string& message) {
  throw Error(Error::Kind::invalid_argument, arg, message);
}

void unsupported(const std::string& arg, const std::string& message) {
  throw Error(Error::Kind::unsupported, arg, message);
}

std::string shape_string(const TensorView& t) {
  std::ostringstream s;
  s << "(";
  for (int d = 0; d < t.rank; ++d) s << (d ? ", " : "") << t.sizes[d];
  s << ")";
  return s.str();
}

void check_defined(const TensorView& t, const char* name) {
  if (t.data == nullptr) fail(name, "is null (a required tensor was not given)");
}

void check_rank(const TensorView& t, int rank, const char* name) {
  if (t.rank != rank)
    fail(name, "expected " + std::to_string(rank) + " dimensions, got " + std::to_string(t.rank) +
                   " with shape " + shape_string(t));
  for (int d = 0; d < t.rank; ++d)
    if (t.sizes[d] < 0) fail(name, "negative size in shape " + shape_string(t));
}

void check_dtype(const TensorView& t, DType want, const char* name) {
  if (t.dtype != want)
    fail(name, std::string("expected dtype ") + dtype_name(want) + ", got " + dtype_name(t.dtype));
}

void check_attention_dtype(const TensorView& t, const char* name) {
  if (t.dtype == DType::f8_e4m3)
    unsupported(name, "fp8_e4m3 is reserved for the Hopper FP8 forward, not available on this path");
  if (t.dtype != DType::f16 && t.dtype != DType::bf16 && t.dtype != DType::f32)
    fail(name, std::string("dtype must be fp16, bf16 or fp32, got ") + dtype_name(t.dtype));
}

void check_same_device(const TensorView& t, const TensorView& ref, const char* name, const char* ref_name) {
  if (!(t.device == ref.device)) {
    auto dev = [](Device d) {
      return d.type == DeviceType::cpu ? std::string("cpu") : "cuda:" + std::to_string(d.index);
    };
    fail(name, "is on " + dev(t.device) + " but " + ref_name + " is on " + dev(ref.device));
  }
}

void check_sizes(const TensorView& t, std::initializer_list<std::int64_t> want, const char* name) {
  bool ok = t.rank == static_cast<int>(want.size());
  int d = 0;
  for (auto w : want) ok = ok && t.sizes[d++] == w;
  if (!ok) {
    std::ostringstream s;
    s << "expected shape (";
    d = 0;
    for (auto w : want) s << (d++ ? ", " : "") << w;
    s << "), got " << shape_string(t);
    fail(name, s.str());
  }
}

void check_strides_valid(const TensorView& t, const char* name) {
  for (int d = 0; d < t.rank; ++d)
    if (t.strides[d] < 0) fail(name, "negative stride in dimension " + std::to_string(d));
}

void check_last_dim_contiguous(const TensorView& t, const char* name) {
  check_strides_valid(t, name);
  if (t.rank > 0 && t.sizes[t.rank - 1] > 1 && t.strides[t.rank - 1] != 1)
    fail(name, "last dimension must be contiguous (stride 1), got stride " +
                   std::to_string(t.strides[t.rank - 1]));
}

void check_non_overlapping(const TensorView& t, const char* name) {
  std::vector<std::pair<std::int64_t, std::int64_t>> dims;  // (stride, size)
  for (int d = 0; d < t.rank; ++d)
    if (t.sizes[d] > 1) dims.emplace_back(t.strides[d], t.sizes[d]);
  std::sort(dims.begin(), dims.end());
  std::int64_t extent = 1;  // elements spanned by the faster dimensions
  for (auto [stride, size] : dims) {
    if (stride < extent)
      fail(name, "is an output whose strides make elements overlap (stride " + std::to_string(stride) + ")");
    extent = stride * (size - 1) + extent;
  }
}

namespace {
// Byte interval [lo, hi) covered by a strided tensor (its bounding box).
std::pair<std::uintptr_t, std::uintptr_t> byte_span(const TensorView& t) {
  const auto base = reinterpret_cast<std::uintptr_t>(t.data);
  std::int64_t last = 0;
  for (int d = 0; d < t.rank; ++d) {
    if (t.sizes[d] == 0) return {base, base};
    last += (t.sizes[d] - 1) * t.strides[d];
  }
  return {base, base + static_cast<std::uintptr_t>((last + 1) * static_cast<std::int64_t>(dtype_size(t.dtype)))};
}
}  // namespace

void check_no_alias(const TensorView& out, const char* out_name, const TensorView& in, const char* in_name) {
  if (!out.defined() || !in.defined() || !(out.device == in.device)) return;
  auto [a0, a1] = byte_span(out);
  auto [b0, b1] = byte_span(in);
  if (a0 < b1 && b0 < a1)
    fail(out_name, std::string("overlaps ") + in_name + " in memory; outputs must not alias inputs or each other");
}

void check_head_dim(std::int64_t d, const char* name) {
  if (d < 8 || d > 256 || d % 8 != 0)
    fail(name, "head_dim must be a multiple of 8 between 8 and 256, got " + std::to_string(d));
}

void check_options(const Options& o, const TensorView& q, std::int64_t batch, std::int64_t heads_q) {
  if (o.softmax_scale && !std::isfinite(*o.softmax_scale))
    fail("softmax_scale", "must be finite, got " + std::to_string(*o.softmax_scale));
  if (o.window_left < -1) fail("window_left", "must be -1 (unbounded) or >= 0, got " + std::to_string(o.window_left));
  if (o.window_right < -1) fail("window_right", "must be -1 (unbounded) or >= 0, got " + std::to_string(o.window_right));
  if (o.causal && o.window_right > 0)
    fail("window_right", "must be -1 or 0 with causal=true (causal means window_right = 0), got " +
                             std::to_string(o.window_right));
  if (!(o.softcap >= 0.f) || !std::isfinite(o.softcap))
    fail("softcap", "must be finite and >= 0 (0 disables it), got " + std::to_string(o.softcap));
  if (!(o.dropout_p >= 0.f && o.dropout_p < 1.f))
    fail("dropout_p", "must be in [0, 1), got " + std::to_string(o.dropout_p));
  const TensorView& a = o.alibi_slopes;
  if (a.defined()) {
    check_dtype(a, DType::f32, "alibi_slopes");
    check_same_device(a, q, "alibi_slopes", "q");
    check_last_dim_contiguous(a, "alibi_slopes");
    const bool per_head = a.rank == 1 && a.sizes[0] == heads_q;
    const bool per_batch_head = a.rank == 2 && a.sizes[0] == batch && a.sizes[1] == heads_q;
    if (!per_head && !per_batch_head)
      fail("alibi_slopes", "expected shape (" + std::to_string(heads_q) + ") or (" + std::to_string(batch) +
                               ", " + std::to_string(heads_q) + "), got " + shape_string(a));
  } else if (a.rank != 0) {
    fail("alibi_slopes", "is null but has a shape; pass a default TensorView to disable ALiBi");
  }
}

std::vector<int> check_cu_seqlens(const TensorView& cu, const char* name, std::int64_t batch,
                                  std::int64_t total_rows, int max_seqlen, const char* max_name) {
  check_defined(cu, name);
  check_rank(cu, 1, name);
  check_dtype(cu, DType::i32, name);
  if (cu.sizes[0] != batch + 1)
    fail(name, "expected batch + 1 = " + std::to_string(batch + 1) + " entries, got " + std::to_string(cu.sizes[0]));
  if (cu.sizes[0] > 1 && cu.strides[0] != 1) fail(name, "must be contiguous");
  if (max_seqlen < 0) fail(max_name, "must be >= 0, got " + std::to_string(max_seqlen));
  std::vector<int> host(static_cast<std::size_t>(batch + 1));
  copy_to_host(host.data(), cu.data, host.size() * sizeof(int), cu.device);
  if (host[0] != 0) fail(name, "must start at 0, got " + std::to_string(host[0]));
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int64_t len = static_cast<std::int64_t>(host[b + 1]) - host[b];
    if (len < 0)
      fail(name, "must be non-decreasing; entry " + std::to_string(b + 1) + " (" + std::to_string(host[b + 1]) +
                     ") < entry " + std::to_string(b) + " (" + std::to_string(host[b]) + ")");
    if (len > max_seqlen)
      fail(max_name, "is " + std::to_string(max_seqlen) + " but sequence " + std::to_string(b) + " in " + name +
                         " has length " + std::to_string(len));
  }
  if (host[batch] > total_rows)
    fail(name, "last entry " + std::to_string(host[batch]) + " exceeds the " + std::to_string(total_rows) +
                   " packed rows of the tensor");
  return host;
}

}  // namespace flashattn::detail
