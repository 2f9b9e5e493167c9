// The error standard of DESIGN.md: an engine passes when its max error against the fp64
// oracle is at most 2x the error of naive attention computed in the input dtype, plus atol.
#pragma once

#include <string>
#include <vector>

#include "flashattn/dtype.hpp"

namespace flashattn::testing {

struct Verdict {
  bool ok = true;
  double engine_err = 0, baseline_err = 0, bound = 0;
  std::string message;  // names the first offending element when !ok
};

// atol per dtype: small against the values (|O| ~ 1), large against nothing.
double default_atol(DType t);

// engine, baseline and oracle hold the same logical elements. NaN anywhere in engine fails.
// Elements where the oracle is -inf (LSE of empty rows) must be -inf in the engine.
Verdict judge(const std::vector<double>& engine, const std::vector<double>& baseline,
              const std::vector<double>& oracle, DType t, const std::string& what, double atol_scale = 1.0);

}  // namespace flashattn::testing
