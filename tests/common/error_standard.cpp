#include "common/error_standard.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace flashattn::testing {

double default_atol(DType t) {
  switch (t) {
    case DType::f16: return 2e-3;
    case DType::bf16: return 1.6e-2;
    default: return 2e-5;
  }
}

Verdict judge(const std::vector<double>& engine, const std::vector<double>& baseline,
              const std::vector<double>& oracle, DType t, const std::string& what, double atol_scale) {
  Verdict v;
  if (engine.size() != oracle.size() || baseline.size() != oracle.size()) {
    v.ok = false;
    v.message = what + ": size mismatch";
    return v;
  }
  std::size_t worst = 0;
  for (std::size_t i = 0; i < oracle.size(); ++i) {
    const double o = oracle[i], e = engine[i];
    if (std::isnan(e)) {
      v.ok = false;
      v.message = what + ": NaN at element " + std::to_string(i) + " (oracle " + std::to_string(o) + ")";
      return v;
    }
    if (std::isinf(o) || std::isinf(e)) {
      if (e != o) {
        v.ok = false;
        v.message = what + ": element " + std::to_string(i) + " is " + std::to_string(e) + ", oracle " + std::to_string(o);
        return v;
      }
      continue;
    }
    const double err = std::abs(e - o);
    if (err > v.engine_err) {
      v.engine_err = err;
      worst = i;
    }
    if (!std::isinf(baseline[i])) v.baseline_err = std::max(v.baseline_err, std::abs(baseline[i] - o));
  }
  v.bound = 2.0 * v.baseline_err + default_atol(t) * atol_scale;
  if (v.engine_err > v.bound) {
    std::ostringstream s;
    s << what << ": max error " << v.engine_err << " at element " << worst << " (engine " << engine[worst]
      << ", oracle " << oracle[worst] << ") exceeds 2 x baseline " << v.baseline_err << " + atol = " << v.bound;
    v.ok = false;
    v.message = s.str();
  }
  return v;
}

}  // namespace flashattn::testing
