// The extension module flashattn._C: translates flashattn::Error into Python exceptions and
// runs every binding file's registration (see module_registry.hpp).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <string>
#include <utility>
#include <vector>

#include "flashattn/attention.hpp"
#include "flashattn/error.hpp"
#include "module_registry.hpp"

namespace nb = nanobind;

namespace flashattn::python {
namespace {

std::vector<std::pair<const char*, BindFn>>& registry() {
  static std::vector<std::pair<const char*, BindFn>> r;
  return r;
}

// ValueError for a bad argument, NotImplementedError for what this build/engine cannot do,
// RuntimeError for failures; the instance carries `.argument` (the culprit's name, or "").
void raise_error(const Error& e) {
  PyObject* type = PyExc_RuntimeError;
  if (e.kind() == Error::Kind::invalid_argument) type = PyExc_ValueError;
  else if (e.kind() == Error::Kind::unsupported) type = PyExc_NotImplementedError;
  PyObject* exc = PyObject_CallFunction(type, "s", e.what());
  if (!exc) return;  // the failed call left its own exception set
  PyObject* arg = PyUnicode_FromString(e.argument().c_str());
  if (arg) {
    PyObject_SetAttrString(exc, "argument", arg);
    Py_DECREF(arg);
  }
  PyErr_Clear();
  PyErr_SetObject(type, exc);
  Py_DECREF(exc);
}

}  // namespace

BindingRegistrar::BindingRegistrar(const char* name, BindFn fn) { registry().emplace_back(name, fn); }

}  // namespace flashattn::python

NB_MODULE(_C, m) {
  using namespace flashattn::python;
  m.doc() = "flashattn C++ bindings (use the flashattn package, not this module, directly)";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const flashattn::Error& e) {
      raise_error(e);
    }
  });
  m.def("version", [] { return std::string(flashattn::version()); });
  nb::list parts;
  for (auto& [name, fn] : registry()) {
    fn(m);
    parts.append(nb::str(name));
  }
  m.attr("binding_parts") = nb::tuple(parts);
}
