// GPU sweep of flashattn-bench: the CUDA engine (through the public API) beside naive
// standard attention on the same device — S = Q K^T and O = P V with cuBLAS, and a
// softmax kernel that materialises P — timed with CUDA events (median), with the fp64
// oracle checking a slice of the engine's output where the oracle fits.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/params_builder.hpp"
#include "bench_types.hpp"
#include "core/numeric_types.hpp"
#include "cpu/element_access.hpp"
#include "cpu/reference.hpp"
#include "flashattn/flashattn.hpp"

namespace flashattn::bench {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}
void check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": cuBLAS status " + std::to_string(int(s)));
}

struct DeviceArray {
  void* p = nullptr;
  std::size_t bytes = 0;
  explicit DeviceArray(std::size_t b) : bytes(b) { check(cudaMalloc(&p, b ? b : 1), "cudaMalloc"); }
  ~DeviceArray() { cudaFree(p); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
};

// Uniform(-1, 1) in the element type, hashed from the index (no host round trip).
__global__ void fill_random(std::uint16_t* x, std::int64_t n, std::uint32_t seed, bool bf16) {
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < n; i += std::int64_t(gridDim.x) * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 0x9E3779B1u ^ seed;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    const float u = (h & 0xFFFFFF) / float(0x800000) - 1.f;
    x[i] = bf16 ? __bfloat16_as_ushort(__float2bfloat16(u)) : __half_as_ushort(__float2half(u));
  }
}

// One block per row of S (fp32): scale, causal mask, softmax; writes P in the input dtype.
template <typename T>
__global__ void softmax_rows(const float* S, T* P, int n, float scale, bool causal) {
  const std::int64_t row = blockIdx.x;
  const int i = static_cast<int>(row % n);
  const float* s = S + row * n;
  T* p = P + row * n;
  const int visible = causal ? i + 1 : n;
  __shared__ float red[32];
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < visible; j += blockDim.x) mx = fmaxf(mx, s[j] * scale);
  for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < int(blockDim.x / 32); ++w) mx = fmaxf(mx, red[w]);
  __syncthreads();
  float sum = 0.f;
  for (int j = threadIdx.x; j < visible; j += blockDim.x) sum += __expf(s[j] * scale - mx);
  for (int o = 16; o; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = sum;
  __syncthreads();
  sum = 0.f;
  for (int w = 0; w < int(blockDim.x / 32); ++w) sum += red[w];
  const float inv = 1.f / sum;
  for (int j = threadIdx.x; j < n; j += blockDim.x)
    p[j] = static_cast<T>(j < visible ? __expf(s[j] * scale - mx) * inv : 0.f);
}

template <typename F>
double median_event_ms(int reps, F&& f) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms;
  for (int r = 0; r < reps; ++r) {
    cudaEventRecord(a);
    f();
    cudaEventRecord(b);
    check(cudaEventSynchronize(b), "timing");
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

bool gpu_present() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

std::string gpu_name() {
  cudaDeviceProp p;
  check(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
  return p.name;
}

std::vector<BenchRow> run_gpu_sweep(const BenchConfig& c, const Progress& progress) {
  if (c.dtype == DType::f32) throw std::runtime_error("--dtype: the GPU sweep runs fp16 or bf16");
  const bool bf16 = c.dtype == DType::bf16;
  cublasHandle_t blas;
  check(cublasCreate(&blas), "cublasCreate");
  std::vector<BenchRow> rows;
  int idx = 0;
  for (int n : c.sizes) {
    ++idx;
    const std::string tag = "[" + std::to_string(idx) + "/" + std::to_string(c.sizes.size()) + "] N=" + std::to_string(n);
    const int B = c.batch_for(n), H = c.heads, D = c.head_dim;
    BenchRow row;
    row.n = n;
    row.batch = B;
    const std::int64_t elems = std::int64_t(B) * n * H * D;
    const std::size_t bytes = elems * 2;
    DeviceArray q(bytes), k(bytes), v(bytes), o(bytes), dout(bytes), dq(bytes), dk(bytes), dv(bytes),
        lse(sizeof(float) * B * H * n);
    int salt = 1;
    for (DeviceArray* a : {&q, &k, &v, &dout}) fill_random<<<1024, 256>>>(static_cast<std::uint16_t*>(a->p), elems, 0x1234u * salt++, bf16);
    check(cudaDeviceSynchronize(), "fill");
    const Device dev = Device::cuda(0);
    auto view = [&](DeviceArray& a) { return TensorView(a.p, c.dtype, {B, n, H, D}, dev); };
    const TensorView lse_v(lse.p, DType::f32, {B, H, n}, dev);
    Options opts;
    opts.causal = c.causal;
    row.engine = backend_name(view(q));

    progress(tag + " flash forward");
    auto fwd = [&] { forward(view(q), view(k), view(v), view(o), lse_v, opts); };
    fwd();
    check(cudaDeviceSynchronize(), "forward");
    row.flash_ms = median_event_ms(std::max(c.reps, 10), fwd);
    row.flash_gflops = attention_flops(c, n) / (row.flash_ms * 1e6);
    row.flash_mem_mb = (8.0 * bytes + lse.bytes) / 1e6;
    if (c.backward) {
      progress(tag + " flash backward");
      auto bwd = [&] { backward(view(dout), view(q), view(k), view(v), view(o), lse_v, view(dq), view(dk), view(dv), opts); };
      bwd();
      check(cudaDeviceSynchronize(), "backward");
      row.flash_bwd_ms = median_event_ms(std::max(c.reps, 10), bwd);
      row.flash_bwd_gflops = 2.5 * attention_flops(c, n) / (row.flash_bwd_ms * 1e6);
      row.flash_mem_mb += 4.0 * elems / 1e6;  // the fp32 dQ accumulator
    }

    if (n <= c.check_max) {
      progress(tag + " oracle check (batch 0, heads 0-1)");
      // Host copy of batch 0; the oracle reads two heads through the full strides.
      const std::size_t one = std::size_t(n) * H * D;
      std::vector<std::uint16_t> hq(one), hk(one), hv(one), ho(one);
      check(cudaMemcpy(hq.data(), q.p, one * 2, cudaMemcpyDeviceToHost), "copy q");
      check(cudaMemcpy(hk.data(), k.p, one * 2, cudaMemcpyDeviceToHost), "copy k");
      check(cudaMemcpy(hv.data(), v.p, one * 2, cudaMemcpyDeviceToHost), "copy v");
      check(cudaMemcpy(ho.data(), o.p, one * 2, cudaMemcpyDeviceToHost), "copy o");
      const int Hc = std::min(H, 2);
      auto host_view = [&](std::vector<std::uint16_t>& x) {
        return TensorView(x.data(), c.dtype, {1, n, Hc, D}, {std::int64_t(n) * H * D, std::int64_t(H) * D, D, 1});
      };
      detail::AttentionParams p = detail::make_params(host_view(hq), host_view(hk), host_view(hv), opts, nullptr);
      const auto ref = detail::reference_forward(p, detail::RefPrecision::fp64);
      const auto base = detail::reference_forward(p, detail::RefPrecision::input_dtype);
      double err = 0, berr = 0;
      for (int i = 0; i < n; ++i)
        for (int h = 0; h < Hc; ++h)
          for (int d = 0; d < D; ++d) {
            const std::size_t r = (std::size_t(i) * Hc + h) * D + d;
            const double e = detail::load_f32(ho.data(), c.dtype, (std::int64_t(i) * H + h) * D + d);
            err = std::max(err, std::isnan(e) ? INFINITY : std::abs(e - ref.o[r]));
            berr = std::max(berr, std::abs(base.o[r] - ref.o[r]));
          }
      row.max_err = err;
      row.err_bound = 2 * berr + (bf16 ? 1.6e-2 : 2e-3);
      row.check = err <= row.err_bound ? "pass" : "FAIL";
    }

    const double s_bytes = 4.0 * H * double(n) * n, p_bytes = 2.0 * H * double(n) * n;
    if (s_bytes + p_bytes <= double(c.naive_max_bytes)) {
      progress(tag + " naive cuBLAS attention");
      DeviceArray S(static_cast<std::size_t>(s_bytes)), P(static_cast<std::size_t>(p_bytes)), o2(bytes);
      const cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
      const float one = 1.f, zero = 0.f, scale = 1.f / std::sqrt(float(D));
      const long long ld = std::int64_t(H) * D;
      auto naive = [&] {
        // Per batch element, batched over heads (head h starts h * D into each row).
        for (int b = 0; b < B; ++b) {
          const std::size_t off = std::size_t(b) * n * H * D * 2;
          check(cublasGemmStridedBatchedEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, D, &one, static_cast<char*>(k.p) + off, t,
                                           int(ld), D, static_cast<char*>(q.p) + off, t, int(ld), D, &zero, S.p, CUDA_R_32F, n,
                                           std::int64_t(n) * n, H, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                "S = Q K^T");
          if (bf16)
            softmax_rows<<<std::int64_t(H) * n, 256>>>(static_cast<float*>(S.p), static_cast<__nv_bfloat16*>(P.p), n, scale, c.causal);
          else
            softmax_rows<<<std::int64_t(H) * n, 256>>>(static_cast<float*>(S.p), static_cast<__half*>(P.p), n, scale, c.causal);
          check(cublasGemmStridedBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, D, n, n, &one, static_cast<char*>(v.p) + off, t,
                                           int(ld), D, P.p, t, n, std::int64_t(n) * n, &zero, static_cast<char*>(o2.p) + off, t,
                                           int(ld), D, H, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                "O = P V");
        }
      };
      naive();
      check(cudaDeviceSynchronize(), "naive attention");
      row.naive_ms = median_event_ms(std::max(c.reps, 5), naive);
      row.naive_gflops = attention_flops(c, n) / (row.naive_ms * 1e6);
      row.naive_mem_mb = (5.0 * bytes + s_bytes + p_bytes) / 1e6;
    }
    rows.push_back(row);
  }
  cublasDestroy(blas);
  return rows;
}

}  // namespace flashattn::bench
