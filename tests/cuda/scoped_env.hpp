// Sets an environment variable for one scope, then restores what was there (or unsets it):
// the engines' environment knobs (shared-memory limit, decode merge) under test.
#pragma once

#include <cstdlib>
#include <optional>
#include <string>

namespace flashattn::testing {

class ScopedEnv {
 public:
  // nullopt: unset for the scope.
  ScopedEnv(const char* var, const std::optional<std::string>& value) : var_(var) {
    if (const char* old = std::getenv(var)) previous_ = old;
    if (value)
      setenv(var, value->c_str(), 1);
    else
      unsetenv(var);
  }
  ~ScopedEnv() {
    if (previous_)
      setenv(var_, previous_->c_str(), 1);
    else
      unsetenv(var_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* var_;
  std::optional<std::string> previous_;
};

}  // namespace flashattn::testing
