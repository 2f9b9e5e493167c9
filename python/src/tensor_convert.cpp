// Reads torch tensors through their C-level attributes (data_ptr, dtype, shape, stride) and
// numpy arrays through __array_interface__; the few Python objects needed for that (types,
// dtypes, attribute names) are looked up once and kept.
#include "tensor_convert.hpp"

#include <cstring>
#include <string>

#include "flashattn/error.hpp"

namespace nb = nanobind;

namespace flashattn::python {
namespace {

[[noreturn]] void bad(const char* name, const std::string& message) {
  throw Error(Error::Kind::invalid_argument, name, message);
}

// Objects kept for the life of the process (never released: the interpreter may already be
// finalising when statics are destroyed).
struct TorchRefs {
  PyTypeObject* tensor_type = nullptr;
  PyObject* f32 = nullptr;
  PyObject* f16 = nullptr;
  PyObject* bf16 = nullptr;
  PyObject* i32 = nullptr;
  PyObject* f8_e4m3 = nullptr;
};

struct Names {
  PyObject* data_ptr = PyUnicode_InternFromString("data_ptr");
  PyObject* dtype = PyUnicode_InternFromString("dtype");
  PyObject* shape = PyUnicode_InternFromString("shape");
  PyObject* stride = PyUnicode_InternFromString("stride");
  PyObject* is_cuda = PyUnicode_InternFromString("is_cuda");
  PyObject* is_cpu = PyUnicode_InternFromString("is_cpu");
  PyObject* get_device = PyUnicode_InternFromString("get_device");
  PyObject* array_interface = PyUnicode_InternFromString("__array_interface__");
  PyObject* name = PyUnicode_InternFromString("name");
};

const Names& names() {
  static const Names* n = new Names();
  return *n;
}

// torch is looked up only once it has been imported by someone: a numpy-only user never
// imports it.
const TorchRefs* torch_refs() {
  static TorchRefs* refs = nullptr;
  if (refs) return refs;
  PyObject* modules = PySys_GetObject("modules");  // borrowed
  PyObject* torch = modules ? PyDict_GetItemString(modules, "torch") : nullptr;  // borrowed
  if (!torch) return nullptr;
  auto get = [&](const char* attr) -> PyObject* {
    PyObject* o = PyObject_GetAttrString(torch, attr);  // new reference, kept forever
    if (!o) PyErr_Clear();
    return o;
  };
  PyObject* tensor = get("Tensor");
  if (!tensor || !PyType_Check(tensor)) return nullptr;
  auto* r = new TorchRefs();
  r->tensor_type = reinterpret_cast<PyTypeObject*>(tensor);
  r->f32 = get("float32");
  r->f16 = get("float16");
  r->bf16 = get("bfloat16");
  r->i32 = get("int32");
  r->f8_e4m3 = get("float8_e4m3fn");
  refs = r;
  return refs;
}

std::int64_t as_i64(PyObject* o, const char* name) {
  const long long v = PyLong_AsLongLong(o);
  if (v == -1 && PyErr_Occurred()) throw nb::python_error();
  return v;
}

void fill_dims(TensorView& t, PyObject* shape, PyObject* stride, std::int64_t stride_divisor, const char* name) {
  // Both are tuples (torch.Size is a tuple subclass; numpy's __array_interface__ gives tuples).
  if (!PyTuple_Check(shape)) bad(name, "shape is not a tuple");
  const Py_ssize_t rank = PyTuple_GET_SIZE(shape);
  if (rank > TensorView::kMaxRank)
    bad(name, "has " + std::to_string(rank) + " dimensions; at most " + std::to_string(TensorView::kMaxRank) +
                  " are supported");
  t.rank = static_cast<int>(rank);
  for (Py_ssize_t d = 0; d < rank; ++d) t.sizes[d] = as_i64(PyTuple_GET_ITEM(shape, d), name);
  if (stride == Py_None) {  // C-contiguous numpy array
    std::int64_t s = 1;
    for (Py_ssize_t d = rank - 1; d >= 0; --d) {
      t.strides[d] = s;
      s *= t.sizes[d];
    }
    return;
  }
  if (!PyTuple_Check(stride) || PyTuple_GET_SIZE(stride) != rank) bad(name, "strides do not match its shape");
  for (Py_ssize_t d = 0; d < rank; ++d) {
    const std::int64_t s = as_i64(PyTuple_GET_ITEM(stride, d), name);
    if (s % stride_divisor != 0)
      bad(name, "stride of " + std::to_string(s) + " bytes in dimension " + std::to_string(d) +
                    " is not a multiple of the element size");
    t.strides[d] = s / stride_divisor;
  }
}

TensorView from_torch(PyObject* obj, const TorchRefs& r, const char* name) {
  const Names& n = names();
  TensorView t;
  nb::object dtype = nb::steal(PyObject_GetAttr(obj, n.dtype));
  if (!dtype.is_valid()) throw nb::python_error();
  PyObject* dt = dtype.ptr();
  if (dt == r.f32) t.dtype = DType::f32;
  else if (dt == r.f16) t.dtype = DType::f16;
  else if (dt == r.bf16) t.dtype = DType::bf16;
  else if (dt == r.i32) t.dtype = DType::i32;
  else if (r.f8_e4m3 && dt == r.f8_e4m3) t.dtype = DType::f8_e4m3;
  else bad(name, "has dtype " + nb::cast<std::string>(nb::str(dtype)) +
                     "; flashattn takes float16, bfloat16, float32 (and int32 for cu_seqlens)");

  nb::object is_cuda = nb::steal(PyObject_GetAttr(obj, n.is_cuda));
  if (!is_cuda.is_valid()) throw nb::python_error();
  if (is_cuda.ptr() == Py_True) {
    nb::object index = nb::steal(PyObject_CallMethodNoArgs(obj, n.get_device));
    if (!index.is_valid()) throw nb::python_error();
    t.device = Device::cuda(static_cast<int>(as_i64(index.ptr(), name)));
  } else {
    nb::object is_cpu = nb::steal(PyObject_GetAttr(obj, n.is_cpu));
    if (!is_cpu.is_valid()) throw nb::python_error();
    if (is_cpu.ptr() != Py_True) bad(name, "is on a device other than cpu or cuda");
    t.device = Device::cpu();
  }

  nb::object shape = nb::steal(PyObject_GetAttr(obj, n.shape));
  nb::object stride = nb::steal(PyObject_CallMethodNoArgs(obj, n.stride));
  if (!shape.is_valid() || !stride.is_valid()) throw nb::python_error();
  fill_dims(t, shape.ptr(), stride.ptr(), 1, name);

  nb::object ptr = nb::steal(PyObject_CallMethodNoArgs(obj, n.data_ptr));
  if (!ptr.is_valid()) throw nb::python_error();
  t.data = PyLong_AsVoidPtr(ptr.ptr());
  if (PyErr_Occurred()) throw nb::python_error();
  // An empty torch tensor may have a null data_ptr; the library reads "null" as "absent".
  return t;
}

TensorView from_array_interface(PyObject* obj, const char* name, bool writable) {
  const Names& n = names();
  nb::object iface = nb::steal(PyObject_GetAttr(obj, n.array_interface));
  if (!iface.is_valid() || !PyDict_Check(iface.ptr())) {
    PyErr_Clear();
    bad(name, std::string("expected a torch.Tensor or numpy.ndarray, got ") + Py_TYPE(obj)->tp_name);
  }
  TensorView t;
  nb::object dtype = nb::steal(PyObject_GetAttr(obj, n.dtype));
  nb::object dname = dtype.is_valid() ? nb::steal(PyObject_GetAttr(dtype.ptr(), n.name)) : nb::object();
  if (!dname.is_valid()) throw nb::python_error();
  const std::string dn = nb::cast<std::string>(dname);
  std::int64_t itemsize = 0;
  if (dn == "float32") t.dtype = DType::f32, itemsize = 4;
  else if (dn == "float16") t.dtype = DType::f16, itemsize = 2;
  else if (dn == "bfloat16") t.dtype = DType::bf16, itemsize = 2;
  else if (dn == "int32") t.dtype = DType::i32, itemsize = 4;
  else if (dn == "float8_e4m3fn") t.dtype = DType::f8_e4m3, itemsize = 1;
  else bad(name, "has dtype " + dn + "; flashattn takes float16, bfloat16 (ml_dtypes), float32 (and int32 for cu_seqlens)");

  PyObject* d = iface.ptr();
  PyObject* typestr = PyDict_GetItemString(d, "typestr");
  if (typestr && PyUnicode_Check(typestr)) {
    const char* ts = PyUnicode_AsUTF8(typestr);
    if (ts && ts[0] == '>') bad(name, "is big-endian; flashattn takes native (little-endian) arrays");
  }
  PyObject* data = PyDict_GetItemString(d, "data");
  if (!data || !PyTuple_Check(data) || PyTuple_GET_SIZE(data) != 2) bad(name, "has no data pointer");
  t.data = PyLong_AsVoidPtr(PyTuple_GET_ITEM(data, 0));
  if (PyErr_Occurred()) throw nb::python_error();
  if (writable && PyObject_IsTrue(PyTuple_GET_ITEM(data, 1))) bad(name, "is read-only but flashattn writes it");
  PyObject* shape = PyDict_GetItemString(d, "shape");
  PyObject* strides = PyDict_GetItemString(d, "strides");
  if (!shape) bad(name, "has no shape");
  fill_dims(t, shape, strides ? strides : Py_None, itemsize, name);
  t.device = Device::cpu();
  return t;
}

}  // namespace

TensorView to_view(nb::handle h, const char* name, bool writable) {
  PyObject* obj = h.ptr();
  if (obj == Py_None) return TensorView{};
  if (const TorchRefs* r = torch_refs(); r && PyObject_TypeCheck(obj, r->tensor_type))
    return from_torch(obj, *r, name);
  return from_array_interface(obj, name, writable);
}

}  // namespace flashattn::python
