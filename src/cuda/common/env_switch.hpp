// On / off switches of the CUDA engines read from the environment on every call (tests and
// comparisons flip them between calls): "0" is off, "1" is on, anything else or unset is the
// engine's own choice.
#pragma once

#include <cstdlib>
#include <cstring>

namespace flashattn::detail {

enum class EnvSwitch { automatic, off, on };

inline EnvSwitch env_switch(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return EnvSwitch::automatic;
  return std::strcmp(v, "0") == 0 ? EnvSwitch::off : std::strcmp(v, "1") == 0 ? EnvSwitch::on : EnvSwitch::automatic;
}

}  // namespace flashattn::detail
