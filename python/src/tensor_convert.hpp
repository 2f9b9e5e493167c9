// Conversion of Python tensors (torch.Tensor, numpy.ndarray) into flashattn::TensorView,
// reading pointer, dtype, device, sizes and strides in place: nothing is ever copied, so a
// strided view reaches the library with its own strides.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include "flashattn/tensor_view.hpp"

namespace flashattn::python {

// None -> an absent TensorView. Anything that is neither a torch.Tensor nor a numpy.ndarray,
// a dtype the library does not know, a device other than CPU/CUDA, or a rank above
// TensorView::kMaxRank raises flashattn::Error(invalid_argument) naming `name`.
// `writable`: the caller writes into it (a read-only numpy array is then rejected).
TensorView to_view(nanobind::handle obj, const char* name, bool writable = false);

}  // namespace flashattn::python
