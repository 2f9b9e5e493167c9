/// @file flashattn.hpp
/// Umbrella header: include this to use flashattn from C++.
#pragma once

#include "flashattn/attention.hpp"
#include "flashattn/dtype.hpp"
#include "flashattn/error.hpp"
#include "flashattn/kvcache.hpp"
#include "flashattn/options.hpp"
#include "flashattn/tensor_view.hpp"
