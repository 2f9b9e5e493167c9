// A downstream program: one causal forward on the CPU through the installed package.
#include <flashattn/flashattn.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const int B = 1, S = 33, H = 2, D = 64;
  std::vector<float> q(B * S * H * D), k(q.size()), v(q.size()), o(q.size(), NAN), lse(B * H * S, NAN);
  for (std::size_t i = 0; i < q.size(); ++i) {
    q[i] = std::sin(0.1f * i);
    k[i] = std::cos(0.07f * i);
    v[i] = std::sin(0.03f * i + 1.f);
  }
  using flashattn::DType;
  using flashattn::TensorView;
  flashattn::Options opts;
  opts.causal = true;
  flashattn::forward(TensorView(q.data(), DType::f32, {B, S, H, D}), TensorView(k.data(), DType::f32, {B, S, H, D}),
                     TensorView(v.data(), DType::f32, {B, S, H, D}), TensorView(o.data(), DType::f32, {B, S, H, D}),
                     TensorView(lse.data(), DType::f32, {B, H, S}), opts);
  // Row 0 sees only key 0, so its output is v[0] exactly.
  for (int d = 0; d < D; ++d)
    if (std::abs(o[d] - v[d]) > 1e-6f) {
      std::printf("mismatch at %d\n", d);
      return 1;
    }
  for (float x : o)
    if (std::isnan(x)) return 1;
  std::printf("flashattn %s consumer ok (backend %s)\n", flashattn::version(),
              flashattn::backend_name(TensorView(q.data(), DType::f32, {B, S, H, D})));
  return 0;
}
