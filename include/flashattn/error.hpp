/// @file error.hpp
/// The one exception type thrown by the library.
#pragma once

#include <stdexcept>
#include <string>

namespace flashattn {

/// Raised for invalid arguments (`argument` names the culprit) and for backend
/// failures (`argument` is empty). A call that throws has written nothing.
class Error : public std::runtime_error {
 public:
  enum class Kind { invalid_argument, unsupported, runtime };

  Error(Kind kind, std::string argument, const std::string& message)
      : std::runtime_error(argument.empty() ? message : argument + ": " + message),
        kind_(kind),
        argument_(std::move(argument)) {}

  Kind kind() const { return kind_; }
  /// Name of the offending argument ("q", "cu_seqlens_k", ...), or "".
  const std::string& argument() const { return argument_; }

 private:
  Kind kind_;
  std::string argument_;
};

}  // namespace flashattn
