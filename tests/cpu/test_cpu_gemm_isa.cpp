// The CPU engine's AVX-512 matrix product (tile_gemm_avx512.cpp) against a double-precision
// product on every row / column remainder, and whole attention calls on each kernel choice.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "common/attention_case.hpp"
#include "cpu/tile_gemm_avx512.hpp"

namespace flashattn::testing {
namespace {

bool host_has_avx512() {
  const bool before = detail::set_cpu_gemm_avx512(true);
  const bool has = detail::cpu_gemm_avx512();
  detail::set_cpu_gemm_avx512(before);
  return has;
}

TEST(CpuGemmIsa, Avx512ProductMatchesDoubleOnEveryRemainder) {
  if (!host_has_avx512()) GTEST_SKIP() << "no AVX-512 on this host";
  std::mt19937 rng(fresh_seed());
  std::normal_distribution<float> nd;
  for (int M : {1, 5, 11, 12, 13, 25, 64})
    for (int N : {8, 16, 24, 32, 40, 56, 64, 128})
      for (int K : {1, 7, 64})
        for (bool acc : {false, true}) {
          const int lda = K + 3, ldb = N + 8, ldc = N + 5;
          std::vector<float> A(M * lda), B(K * ldb), C(M * ldc);
          for (auto& x : A) x = nd(rng);
          for (auto& x : B) x = nd(rng);
          for (auto& x : C) x = nd(rng);
          const std::vector<float> C0 = C;
          detail::gemm_nn_avx512(M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, acc);
          for (int i = 0; i < M; ++i)
            for (int j = 0; j < ldc; ++j) {
              if (j >= N) {  // columns past N (and the padding) untouched
                ASSERT_EQ(C[i * ldc + j], C0[i * ldc + j]) << M << "x" << N << "x" << K << " col " << j;
                continue;
              }
              double ref = acc ? C0[i * ldc + j] : 0.0, mag = std::fabs(ref);
              for (int k = 0; k < K; ++k) {
                ref += double(A[i * lda + k]) * B[k * ldb + j];
                mag += std::fabs(double(A[i * lda + k]) * B[k * ldb + j]);
              }
              ASSERT_NEAR(C[i * ldc + j], ref, 1e-6 * mag + 1e-6) << M << "x" << N << "x" << K << " acc " << acc;
            }
        }
}

TEST(CpuGemmIsa, AttentionMatchesTheOracleOnEachKernel) {
  CaseSpec s;
  s.dtype = DType::f32;
  s.head_dim = 72;
  s.batch = 2;
  s.seqlen_q = 77;
  s.seqlen_k = 141;
  s.heads_q = 4;
  s.heads_kv = 2;
  s.causal = true;
  const bool before = detail::cpu_gemm_avx512();
  for (bool avx512 : {false, true}) {
    if (avx512 && !host_has_avx512()) continue;
    detail::set_cpu_gemm_avx512(avx512);
    SCOPED_TRACE(avx512 ? "avx512" : "avx2");
    AttentionCase c(s);
    c.run_forward();
    c.expect_forward_matches_oracle();
    c.run_backward();
    c.expect_backward_matches_oracle();
  }
  detail::set_cpu_gemm_avx512(before);
}

}  // namespace
}  // namespace flashattn::testing
