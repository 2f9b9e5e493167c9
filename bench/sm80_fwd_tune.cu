// Timing and tile tuning of the sm80 forward (not built by CMake; see the build line below).
// Times the public flashattn::forward on CUDA tensors and, with the argument `tune` (d 64 /
// 128) or `tune-big` (d 192 / 256, seqlen 512 to 16k), a few alternative kernels launched
// directly; `bands` (d 192 / 256): the one-slice tile against warp bands (kBandWarps = 2) as
// TMA, plain cp.async and general kernels (`sm80_fwd_tune 128`: the public forward alone at that
// head dim, seqlen 512 to 16k),
// on the training anchor shapes (bf16, 16k tokens, hidden 2048): median CUDA-event time over
// rotated input sets, TFLOP/s = 4 B H S^2 D (halved when causal). Prints CSV:
// impl,hdim,causal,seqlen,ms,tflops.
//
// nvcc -std=c++20 -O3 -Isrc -Iinclude -gencode=arch=compute_90a,code=sm_90a
//   --expt-relaxed-constexpr bench/sm80_fwd_tune.cu <build dir>/libflashattn.a -cudart static -o sm80_fwd_tune
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "api/params_builder.hpp"
#include "cuda/sm80/flash_fwd_launch_template.cuh"
#include "flashattn/flashattn.hpp"

using namespace flashattn;
namespace sm80 = flashattn::detail::sm80;

#define CHECK(x)                                                                        \
  do {                                                                                  \
    cudaError_t e_ = (x);                                                               \
    if (e_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                     \
    }                                                                                   \
  } while (0)

__global__ void fill_random(__nv_bfloat16* x, std::int64_t n, std::uint32_t seed) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    x[i] = __float2bfloat16((h & 0xFFFF) / 32768.f - 1.f);
  }
}

template <typename Fn>
float median_ms(Fn&& fn, int reps) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn(i);
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    CHECK(cudaEventRecord(a));
    fn(i);
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  CHECK(cudaGetLastError());
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

template <typename Traits, bool kPlain = false>
void run_variant(const detail::AttentionParams& p) {
  sm80::run_flash_fwd_traits<Traits, kPlain>(p);
}
// The sm_90 TMA kernel of a tile (plain calls); exits where the call cannot take it.
template <typename Traits>
void run_tma_variant(const detail::AttentionParams& p) {
  if (!sm80::run_flash_fwd_tma_traits<Traits>(p)) {
    std::fprintf(stderr, "TMA kernel declined the call\n");
    std::exit(1);
  }
}

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  const bool big = mode == "tune-big" || mode == "bands";
  const bool tune = mode == "tune" || big;
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::fprintf(stderr, "device: %s\n", prop.name);
  constexpr int kSets = 3;  // rotate inputs so repeated runs do not time L2
  std::printf("impl,hdim,causal,seqlen,ms,tflops\n");
  const int one_dim = tune ? 0 : std::atoi(mode.c_str());  // `sm80_fwd_tune 128`: that head dim, 512-16k
  const std::vector<int> dims = big ? std::vector<int>{192, 256}
                                : tune ? std::vector<int>{64, 128}
                                : one_dim > 0 ? std::vector<int>{one_dim}
                                              : std::vector<int>{64, 128, 192, 256};
  const std::vector<int> seqlens = big || one_dim > 0 ? std::vector<int>{512, 1024, 2048, 4096, 8192, 16384}
                                                      : std::vector<int>{1024, 2048, 4096, 8192};
  for (int D : dims)
    for (int causal : {0, 1})
      for (int S : seqlens) {
        const int B = 16384 / S, H = 2048 / D;
        const std::int64_t n = std::int64_t(B) * S * H * D;
        std::vector<void*> q(kSets), k(kSets), v(kSets);
        void* o;
        float* lse;
        for (int s = 0; s < kSets; ++s) {
          for (void** ptr : {&q[s], &k[s], &v[s]}) {
            CHECK(cudaMalloc(ptr, n * 2));
            fill_random<<<1024, 256>>>(static_cast<__nv_bfloat16*>(*ptr), n, 977u * s + 13u * (ptr == &k[s]) + 7u * (ptr == &v[s]));
          }
        }
        CHECK(cudaMalloc(&o, n * 2));
        CHECK(cudaMalloc(&lse, std::int64_t(B) * H * S * 4));
        CHECK(cudaDeviceSynchronize());
        Options opts;
        opts.causal = causal;
        auto view = [&](void* ptr) { return TensorView(ptr, DType::bf16, {B, S, H, D}, Device::cuda(0)); };
        const TensorView lv(lse, DType::f32, {B, H, S}, Device::cuda(0));
        const double flops = 4.0 * B * H * double(S) * S * D / (causal ? 2 : 1);
        auto report = [&](const char* impl, float ms) {
          std::printf("%s,%d,%d,%d,%.4f,%.1f\n", impl, D, causal, S, ms, flops / (ms * 1e-3) / 1e12);
          std::fflush(stdout);
        };
        report("flashattn", median_ms([&](int i) { forward(view(q[i % kSets]), view(k[i % kSets]), view(v[i % kSets]), view(o), lv, opts); }, 20));
        if (tune) {
          auto params = [&](int i) {
            detail::AttentionParams p = detail::make_params(view(q[i % kSets]), view(k[i % kSets]), view(v[i % kSets]), opts, nullptr);
            p.o = o;
            p.lse = lse;
            p.o_batch_stride = p.q_batch_stride;
            p.o_row_stride = p.q_row_stride;
            p.o_head_stride = p.q_head_stride;
            p.lse_batch_stride = std::int64_t(H) * S;
            p.lse_head_stride = S;
            p.lse_row_stride = 1;
            return p;
          };
          using E = __nv_bfloat16;
          // "general": the kernel with every option a runtime flag (what non-plain calls
          // get, and what every call got before the plain kernel); "plain": hooks and
          // dropout compiled out. The public path ("flashattn") runs FwdConfig::Plain.
          if (D == 64) {
            report("t64_general_128x64x4_qregs", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<64, 128, 64, 4, E>>(params(i)); }, 20));
            report("t64_plain_128x64x4_qregs", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<64, 128, 64, 4, E>, true>(params(i)); }, 20));
          } else if (mode == "bands") {
            // One-slice warps against bands of two warps (FwdKernelTraits kBandWarps = 2).
            auto both = [&](auto one, auto band, auto band8) {
              using T1 = decltype(one);
              using T2 = decltype(band);
              using T8 = decltype(band8);
              char buf[96];
              std::snprintf(buf, sizeof buf, "t%d_tma_1slice_64x64x4", D);
              report(buf, median_ms([&](int i) { run_tma_variant<T1>(params(i)); }, 20));
              std::snprintf(buf, sizeof buf, "t%d_tma_band_64x64x4", D);
              report(buf, median_ms([&](int i) { run_tma_variant<T2>(params(i)); }, 20));
              std::snprintf(buf, sizeof buf, "t%d_tma_band_128x64x8", D);
              report(buf, median_ms([&](int i) { run_tma_variant<T8>(params(i)); }, 20));
              std::snprintf(buf, sizeof buf, "t%d_plain_1slice_64x64x4", D);
              report(buf, median_ms([&](int i) { run_variant<T1, true>(params(i)); }, 20));
              std::snprintf(buf, sizeof buf, "t%d_plain_band_64x64x4", D);
              report(buf, median_ms([&](int i) { run_variant<T2, true>(params(i)); }, 20));
              std::snprintf(buf, sizeof buf, "t%d_general_1slice_64x64x4", D);
              report(buf, median_ms([&](int i) { run_variant<T1>(params(i)); }, 20));
              std::snprintf(buf, sizeof buf, "t%d_general_band_64x64x4", D);
              report(buf, median_ms([&](int i) { run_variant<T2>(params(i)); }, 20));
            };
            if (D == 256)
              both(sm80::FwdKernelTraits<256, 64, 64, 4, E>{}, sm80::FwdKernelTraits<256, 64, 64, 4, E, 1, 0, 2>{},
                   sm80::FwdKernelTraits<256, 128, 64, 8, E, 1, 0, 2>{});
            else
              both(sm80::FwdKernelTraits<192, 64, 64, 4, E>{}, sm80::FwdKernelTraits<192, 64, 64, 4, E, 1, 0, 2>{},
                   sm80::FwdKernelTraits<192, 128, 64, 8, E, 1, 0, 2>{});
          } else if (D == 192) {
            report("t192_general_64x64x4", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<192, 64, 64, 4, E>>(params(i)); }, 20));
            report("t192_plain_64x64x4", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<192, 64, 64, 4, E>, true>(params(i)); }, 20));
            report("t192_plain_64x128x4", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<192, 64, 128, 4, E>, true>(params(i)); }, 20));
            report("t192_plain_128x64x8", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<192, 128, 64, 8, E>, true>(params(i)); }, 20));
          } else if (D == 256) {
            report("t256_general_64x64x4", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<256, 64, 64, 4, E>>(params(i)); }, 20));
            report("t256_plain_64x64x4", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<256, 64, 64, 4, E>, true>(params(i)); }, 20));
            report("t256_plain_64x32x4", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<256, 64, 32, 4, E>, true>(params(i)); }, 20));
            report("t256_plain_64x128x4", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<256, 64, 128, 4, E>, true>(params(i)); }, 20));
            report("t256_plain_128x64x8", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<256, 128, 64, 8, E>, true>(params(i)); }, 20));
          } else {
            report("t128_general_128x32x4", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<128, 128, 32, 4, E>>(params(i)); }, 20));
            report("t128_plain_128x32x4", median_ms([&](int i) { run_variant<sm80::FwdKernelTraits<128, 128, 32, 4, E>, true>(params(i)); }, 20));
          }
        }
        for (int s = 0; s < kSets; ++s) {
          CHECK(cudaFree(q[s]));
          CHECK(cudaFree(k[s]));
          CHECK(cudaFree(v[s]));
        }
        CHECK(cudaFree(o));
        CHECK(cudaFree(lse));
      }
  return 0;
}
