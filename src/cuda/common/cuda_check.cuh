// Turns CUDA runtime failures into flashattn::Error (backend failures name no argument).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "flashattn/error.hpp"

#define FLASHATTN_CUDA_CHECK(expr)                                                                 \
  do {                                                                                             \
    const cudaError_t fa_err_ = (expr);                                                            \
    if (fa_err_ != cudaSuccess)                                                                    \
      throw ::flashattn::Error(::flashattn::Error::Kind::runtime, "",                             \
                               std::string(#expr) + " failed: " + cudaGetErrorString(fa_err_));    \
  } while (0)
