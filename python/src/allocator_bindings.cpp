// Routes the library's device scratch (e.g. the fp32 dQ accumulator of the CUDA backward)
// through Python callables, so the torch wrapper can hand it to torch's caching allocator
// instead of cudaMallocAsync. The callables are called with the GIL re-acquired (the attention
// bindings release it while the library runs).
#include <nanobind/nanobind.h>

#include <cstdint>
#include <string>

#include "flashattn/attention.hpp"
#include "flashattn/error.hpp"
#include "module_registry.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace flashattn::python {
namespace {

// Leaked on purpose: the callables must not be released after the interpreter is gone.
struct PyAllocator {
  nb::object allocate;    // (bytes, device, stream) -> int pointer
  nb::object deallocate;  // (pointer, device, stream) -> None
};
PyAllocator* g_current = nullptr;

void* py_allocate(std::size_t bytes, int device, StreamHandle stream, void* ctx) {
  if (!Py_IsInitialized()) throw Error(Error::Kind::runtime, "", "device allocator called after Python exited");
  nb::gil_scoped_acquire gil;
  auto* a = static_cast<PyAllocator*>(ctx);
  try {
    nb::object p = a->allocate(bytes, device, reinterpret_cast<std::uintptr_t>(stream));
    return reinterpret_cast<void*>(nb::cast<std::uintptr_t>(p));
  } catch (const nb::python_error& e) {
    throw Error(Error::Kind::runtime, "", std::string("the Python device allocator failed: ") + e.what());
  }
}

void py_deallocate(void* ptr, int device, StreamHandle stream, void* ctx) {
  if (!Py_IsInitialized()) return;
  nb::gil_scoped_acquire gil;
  auto* a = static_cast<PyAllocator*>(ctx);
  try {
    a->deallocate(reinterpret_cast<std::uintptr_t>(ptr), device, reinterpret_cast<std::uintptr_t>(stream));
  } catch (nb::python_error& e) {
    e.restore();
    PyErr_WriteUnraisable(nullptr);
  }
}

void set_allocator(nb::object allocate, nb::object deallocate) {
  if (allocate.is_none() != deallocate.is_none())
    throw Error(Error::Kind::invalid_argument, "deallocate", "allocate and deallocate must be given together");
  if (allocate.is_none()) {
    set_device_allocator(DeviceAllocator{});
    g_current = nullptr;  // the previous one is leaked: a call in flight may still use it
    return;
  }
  auto* a = new PyAllocator{std::move(allocate), std::move(deallocate)};
  DeviceAllocator d;
  d.allocate = py_allocate;
  d.deallocate = py_deallocate;
  d.ctx = a;
  set_device_allocator(d);
  g_current = a;
}

void bind_allocator(nb::module_& m) {
  m.def("set_device_allocator", &set_allocator, "allocate"_a.none(), "deallocate"_a.none(),
        "Route device scratch to allocate(bytes, device, stream) -> ptr / deallocate(ptr, device, stream); "
        "None, None restores the default (cudaMallocAsync).");
  m.def("has_python_device_allocator", [] { return g_current != nullptr; });
}

const BindingRegistrar registrar("allocator", &bind_allocator);

}  // namespace
}  // namespace flashattn::python
