// Timing of the sm80 backward (not built by CMake; see the build line below): times the public
// flashattn::backward on CUDA tensors on the training anchor shapes (bf16, 16k tokens, hidden
// 2048, head dims 64 / 128 / 256, causal and not, seqlen 1k-16k): median CUDA-event time,
// TFLOP/s = 2.5 * 4 B H S^2 D (halved when causal), the convention torch's FA2 numbers use.
// Prints CSV: impl,hdim,causal,seqlen,batch,heads,bwd_ms,bwd_tflops.
// `sm80_bwd_tune D causal S [reps]` times one shape (for profilers).
//
// nvcc -std=c++20 -O3 -Iinclude -gencode=arch=compute_90a,code=sm_90a
//   bench/sm80_bwd_tune.cu <build dir>/libflashattn.a -cudart static -o sm80_bwd_tune
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "flashattn/flashattn.hpp"

using namespace flashattn;

__global__ void fill(__nv_bfloat16* p, size_t n, unsigned seed) {
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) {
    unsigned x = (unsigned)i * 2654435761u ^ seed;
    x ^= x >> 13; x *= 0x5bd1e995u; x ^= x >> 15;
    p[i] = __float2bfloat16((x & 0xFFFF) / 32768.f - 1.f);
  }
}
__global__ void fillf(float* p, size_t n, float v) {
  size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  if (i < n) p[i] = v;
}

template <class F>
float median_ms(F f, int reps) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 2; ++i) f();
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(a);
    f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms;
    cudaEventElapsedTime(&ms, a, b);
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int main(int argc, char** argv) {
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("# device: %s\n", prop.name);
  std::printf("impl,hdim,causal,seqlen,batch,heads,bwd_ms,bwd_tflops\n");
  // Optional: bench_bwd D causal S reps -> one shape (for profilers).
  std::vector<int> dims = {64, 128, 256}, seqs = {1024, 2048, 4096, 8192, 16384}, causals = {0, 1};
  int reps = 10;
  if (argc >= 4) {
    dims = {std::atoi(argv[1])};
    causals = {std::atoi(argv[2])};
    seqs = {std::atoi(argv[3])};
    reps = argc >= 5 ? std::atoi(argv[4]) : 1;
  }
  for (int D : dims)
    for (int causal : causals)
      for (int S : seqs) {
        const int B = 16384 / S, H = 2048 / D;
        const size_t n = size_t(B) * S * H * D;
        __nv_bfloat16 *q, *k, *v, *o, *dout, *dq, *dk, *dv;
        float* lse;
        for (auto pp : {&q, &k, &v, &o, &dout, &dq, &dk, &dv}) cudaMalloc(pp, n * 2);
        cudaMalloc(&lse, size_t(B) * H * S * 4);
        unsigned seed = 1;
        for (auto p : {q, k, v, o, dout}) fill<<<(n + 255) / 256, 256>>>(p, n, seed++);
        fillf<<<(B * H * S + 255) / 256, 256>>>(lse, size_t(B) * H * S, 6.f);
        auto view = [&](void* p) { return TensorView(p, DType::bf16, {B, S, H, D}, Device::cuda(0)); };
        TensorView lv(lse, DType::f32, {B, H, S}, Device::cuda(0));
        Options opts;
        opts.causal = causal;
        const float bwd = median_ms(
            [&] { backward(view(dout), view(q), view(k), view(v), view(o), lv, view(dq), view(dk), view(dv), opts); },
            reps);
        cudaError_t err = cudaDeviceSynchronize();
        if (err != cudaSuccess) {
          std::printf("# CUDA error %s\n", cudaGetErrorString(err));
          return 1;
        }
        const double flops = 4.0 * B * H * double(S) * S * D / (causal ? 2 : 1);
        std::printf("flashattn_sm80,%d,%d,%d,%d,%d,%.3f,%.1f\n", D, causal, S, B, H, bwd, 2.5 * flops / bwd / 1e9);
        std::fflush(stdout);
        for (auto p : {q, k, v, o, dout, dq, dk, dv}) cudaFree(p);
        cudaFree(lse);
      }
  return 0;
}
