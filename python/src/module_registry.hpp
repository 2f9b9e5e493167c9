// Lets each binding file of the extension add its functions to the one module `flashattn._C`
// without the module file knowing them: python/CMakeLists.txt globs python/src/*.cpp, and each
// file registers itself with a static BindingRegistrar.
#pragma once

#include <nanobind/nanobind.h>

namespace flashattn::python {

using BindFn = void (*)(nanobind::module_&);

// Registered at load time of the extension, called in registration order by NB_MODULE.
struct BindingRegistrar {
  BindingRegistrar(const char* name, BindFn fn);
};

}  // namespace flashattn::python
