// Host tensors for tests: owning storage of any dtype, fresh random fill, NaN poisoning,
// read-back as double, and views with permuted / padded strides.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "flashattn/tensor_view.hpp"

namespace flashattn::testing {

class HostTensor {
 public:
  HostTensor() = default;
  // Contiguous tensor of `shape`; `pad_last` extra elements per row of the last dim make the
  // other strides non-trivial (views of a larger buffer).
  HostTensor(DType t, std::vector<std::int64_t> shape, std::int64_t pad_last = 0);

  TensorView view(Device dev = Device::cpu()) const;  // points at this host storage
  void* data() { return storage_.data(); }
  const void* data() const { return storage_.data(); }
  std::size_t bytes() const { return storage_.size(); }
  std::int64_t numel() const;
  DType dtype() const { return dtype_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }

  void fill_random(std::mt19937_64& rng, float lo = -1.f, float hi = 1.f);
  void fill_value(float v);
  void poison();  // NaN everywhere, including padding
  // Logical elements in row-major order, as double.
  std::vector<double> to_double() const;
  float get(std::int64_t logical) const;
  void set(std::int64_t logical, float v);
  std::int64_t storage_offset(std::int64_t logical) const;

 private:
  DType dtype_ = DType::f32;
  std::vector<std::int64_t> shape_, strides_;
  std::vector<std::uint8_t> storage_;
};

// Fresh seed per call (tests draw new inputs every run), printed on failure by callers.
std::uint64_t fresh_seed();

}  // namespace flashattn::testing
