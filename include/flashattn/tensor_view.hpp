/// @file tensor_view.hpp
/// A non-owning view of a strided tensor: pointer, dtype, device, sizes, strides.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "flashattn/dtype.hpp"

namespace flashattn {

/// Non-owning strided view. Strides are in elements (not bytes), int64, and may be
/// arbitrary except that attention tensors need a contiguous last dimension.
/// A default-constructed view is "absent" (data == nullptr, rank 0).
struct TensorView {
  static constexpr int kMaxRank = 5;

  void* data = nullptr;
  DType dtype = DType::f32;
  Device device = Device::cpu();
  int rank = 0;
  std::int64_t sizes[kMaxRank] = {};
  std::int64_t strides[kMaxRank] = {};

  TensorView() = default;

  /// Contiguous (row-major) view.
  TensorView(void* ptr, DType t, std::initializer_list<std::int64_t> shape,
             Device dev = Device::cpu())
      : data(ptr), dtype(t), device(dev), rank(static_cast<int>(shape.size())) {
    int i = 0;
    for (auto s : shape) sizes[i++] = s;
    std::int64_t st = 1;
    for (int d = rank - 1; d >= 0; --d) {
      strides[d] = st;
      st *= sizes[d];
    }
  }

  /// View with explicit strides (in elements).
  TensorView(void* ptr, DType t, std::initializer_list<std::int64_t> shape,
             std::initializer_list<std::int64_t> stride, Device dev = Device::cpu())
      : data(ptr), dtype(t), device(dev), rank(static_cast<int>(shape.size())) {
    int i = 0;
    for (auto s : shape) sizes[i++] = s;
    i = 0;
    for (auto s : stride) strides[i++] = s;
  }

  bool defined() const { return data != nullptr; }
  std::int64_t size(int d) const { return sizes[d]; }
  std::int64_t stride(int d) const { return strides[d]; }
  std::int64_t numel() const {
    std::int64_t n = 1;
    for (int d = 0; d < rank; ++d) n *= sizes[d];
    return n;
  }
};

}  // namespace flashattn
