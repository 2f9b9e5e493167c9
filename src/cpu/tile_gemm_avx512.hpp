// The AVX-512 matrix product (tile_gemm_avx512.cpp) and whether gemm_nn uses it. Declarations
// only: this header is included by the x86-64-v4 translation unit too.
#pragma once

namespace flashattn::detail {

// C (M x N) (+)= A (M x K) * B (K x N), fp32 row-major, N a multiple of 8. Needs AVX-512 F + VL.
void gemm_nn_avx512(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                    bool accumulate);

// True when this host has AVX-512 F + VL at full width (not Zen 4) or FLASHATTN_CPU_ISA=avx512
// asks for it where it exists; FLASHATTN_CPU_ISA=avx2 turns it off (cpu_isa.cpp).
// Cached after the first call; tests switch it with set_cpu_gemm_avx512.
bool cpu_gemm_avx512();
// Forces the choice (false: AVX2 kernel) for this process; true only takes effect on a host
// that has AVX-512. Returns the previous choice.
bool set_cpu_gemm_avx512(bool use);

}  // namespace flashattn::detail
