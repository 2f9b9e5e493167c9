#include "common/test_tensors.hpp"

#include <chrono>
#include <cmath>
#include <cstring>

#include "cpu/element_access.hpp"

namespace flashattn::testing {

HostTensor::HostTensor(DType t, std::vector<std::int64_t> shape, std::int64_t pad_last)
    : dtype_(t), shape_(std::move(shape)) {
  strides_.assign(shape_.size(), 1);
  std::int64_t st = 1;
  for (int d = static_cast<int>(shape_.size()) - 1; d >= 0; --d) {
    strides_[d] = st;
    st *= shape_[d] + (d == static_cast<int>(shape_.size()) - 1 ? pad_last : 0);
  }
  storage_.assign(static_cast<std::size_t>(std::max<std::int64_t>(st, 1)) * dtype_size(t), 0);
}

TensorView HostTensor::view(Device dev) const {
  TensorView v;
  v.data = const_cast<std::uint8_t*>(storage_.data());
  v.dtype = dtype_;
  v.device = dev;
  v.rank = static_cast<int>(shape_.size());
  for (int d = 0; d < v.rank; ++d) {
    v.sizes[d] = shape_[d];
    v.strides[d] = strides_[d];
  }
  return v;
}

std::int64_t HostTensor::numel() const {
  std::int64_t n = 1;
  for (auto s : shape_) n *= s;
  return n;
}

std::int64_t HostTensor::storage_offset(std::int64_t logical) const {
  std::int64_t off = 0;
  for (int d = static_cast<int>(shape_.size()) - 1; d >= 0; --d) {
    off += (logical % shape_[d]) * strides_[d];
    logical /= shape_[d];
  }
  return off;
}

float HostTensor::get(std::int64_t logical) const {
  if (dtype_ == DType::i32) return static_cast<float>(reinterpret_cast<const int*>(storage_.data())[storage_offset(logical)]);
  return detail::load_f32(storage_.data(), dtype_, storage_offset(logical));
}

void HostTensor::set(std::int64_t logical, float v) {
  if (dtype_ == DType::i32) {
    reinterpret_cast<int*>(storage_.data())[storage_offset(logical)] = static_cast<int>(v);
    return;
  }
  detail::store_f32(storage_.data(), dtype_, storage_offset(logical), v);
}

void HostTensor::fill_random(std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  for (std::int64_t i = 0; i < numel(); ++i) set(i, u(rng));
}

void HostTensor::fill_value(float v) {
  for (std::int64_t i = 0; i < numel(); ++i) set(i, v);
}

void HostTensor::poison() {
  if (dtype_ == DType::f32) {
    auto* f = reinterpret_cast<float*>(storage_.data());
    for (std::size_t i = 0; i < storage_.size() / 4; ++i) f[i] = NAN;
  } else if (dtype_ == DType::f16 || dtype_ == DType::bf16) {
    auto* h = reinterpret_cast<std::uint16_t*>(storage_.data());
    for (std::size_t i = 0; i < storage_.size() / 2; ++i) h[i] = dtype_ == DType::f16 ? 0x7E00 : 0x7FC0;
  } else {
    std::memset(storage_.data(), 0xFF, storage_.size());
  }
}

std::vector<double> HostTensor::to_double() const {
  std::vector<double> out(static_cast<std::size_t>(numel()));
  for (std::int64_t i = 0; i < numel(); ++i) out[i] = get(i);
  return out;
}

std::uint64_t fresh_seed() {
  static std::uint64_t counter = 0;
  return static_cast<std::uint64_t>(std::chrono::high_resolution_clock::now().time_since_epoch().count()) ^
         (0x9E3779B97F4A7C15ull * ++counter);
}

}  // namespace flashattn::testing
