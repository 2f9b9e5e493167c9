/// @file dtype.hpp
/// Element types and devices understood by flashattn. Free of CUDA types.
#pragma once

#include <cstddef>
#include <cstdint>

namespace flashattn {

/// Element type of a tensor. `f8_e4m3` is reserved for the Hopper FP8 forward.
enum class DType : std::uint8_t { f32, f16, bf16, f8_e4m3, i32 };

/// Bytes per element.
constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::f16: return 2;
    case DType::bf16: return 2;
    case DType::f8_e4m3: return 1;
    case DType::i32: return 4;
  }
  return 0;
}

/// Short name used in error messages and benchmark output ("fp16", ...).
constexpr const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "fp32";
    case DType::f16: return "fp16";
    case DType::bf16: return "bf16";
    case DType::f8_e4m3: return "fp8_e4m3";
    case DType::i32: return "int32";
  }
  return "?";
}

/// Where a tensor's memory lives.
enum class DeviceType : std::uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;  ///< CUDA ordinal; 0 for the CPU

  static constexpr Device cpu() { return {DeviceType::cpu, 0}; }
  static constexpr Device cuda(int i = 0) { return {DeviceType::cuda, i}; }
  constexpr bool operator==(const Device&) const = default;
};

}  // namespace flashattn
