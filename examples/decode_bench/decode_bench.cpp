// Decode speed on the GPU: flashattn::forward_with_kvcache over a contiguous cache and paged
// caches (block size 16 and 256) for the anchor shapes (GQA 32/8, head dim 128, bf16, one new
// token; a few rows at head dim 256), plus the device's copy bandwidth measured in the same run.
// Prints CSV:
//   layout,batch,seqlen_k,seqlen_q,splits,us,GBps
// GB/s counts the K and V bytes the call must read once (2 * B * Sk * Hkv * D * 2) over the
// median CUDA-event time. Caches are cycled through enough copies to exceed the L2, so every
// call reads from HBM as a real decode step does.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "flashattn/attention.hpp"
#include "flashattn/kvcache.hpp"

#define CK(x)                                                                    \
  do {                                                                           \
    cudaError_t e_ = (x);                                                        \
    if (e_ != cudaSuccess) {                                                     \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));              \
      std::exit(1);                                                              \
    }                                                                            \
  } while (0)

using namespace flashattn;

namespace {

constexpr int kHq = 32, kHkv = 8;
int g_head_dim = 128;  // 256 for the last rows (layout contiguous_d256)
// DECODE_BENCH_PAD_KEYS=<n>: a contiguous cache holds Sk + n rows per sequence (cache_seqlens
// stays Sk), so the sequences do not start a power of two apart.
int g_pad_keys = 0;

void fill_random(void* dst, std::size_t bytes) {
  static std::vector<std::uint16_t> pattern;
  if (pattern.empty()) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    pattern.resize(std::size_t(16) << 20);
    for (auto& h : pattern) {
      float f = u(rng);
      std::uint32_t x;
      std::memcpy(&x, &f, 4);
      h = static_cast<std::uint16_t>(x >> 16);  // bf16 by truncation: fine for timing data
    }
  }
  const std::size_t chunk = pattern.size() * 2;
  for (std::size_t off = 0; off < bytes; off += chunk)
    CK(cudaMemcpy(static_cast<char*>(dst) + off, pattern.data(), std::min(chunk, bytes - off), cudaMemcpyHostToDevice));
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double copy_bandwidth() {
  const std::size_t bytes = std::size_t(2) << 30;
  void *a, *b;
  CK(cudaMalloc(&a, bytes));
  CK(cudaMalloc(&b, bytes));
  CK(cudaMemset(a, 1, bytes));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int i = 0; i < 12; ++i) {
    cudaEventRecord(e0);
    CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t;
    cudaEventElapsedTime(&t, e0, e1);
    if (i >= 2) ms.push_back(t);
  }
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (median(ms) * 1e-3) / 1e9;  // read + write
}

struct Result {
  double us, gbps;
  int splits;
  double graph_us = 0;  // per call when kGraphCalls calls are replayed as one CUDA graph (0: failed)
};

constexpr int kGraphCalls = 20;

// DECODE_BENCH_SCRATCH=fixed: the library's scratch (split parts) comes from one buffer
// allocated up front, as a framework's caching allocator hands it out (torch: the same block
// again for each call on one stream, and a captured graph's private pool), instead of the
// default cudaMallocAsync / cudaFreeAsync per call, which a capture records as memory nodes.
// Every call runs on one stream, so the calls reusing the buffer are ordered.
void use_fixed_scratch() {
  static void* buffer = nullptr;
  static constexpr std::size_t kBytes = std::size_t(256) << 20;
  CK(cudaMalloc(&buffer, kBytes));
  DeviceAllocator a;
  a.allocate = [](std::size_t bytes, int, StreamHandle, void*) -> void* {
    if (bytes > kBytes) {
      std::fprintf(stderr, "DECODE_BENCH_SCRATCH=fixed: %zu bytes asked, %zu held\n", bytes, kBytes);
      std::exit(1);
    }
    return buffer;
  };
  a.deallocate = [](void*, int, StreamHandle, void*) {};
  set_device_allocator(a);
}

// block_size 0 = contiguous cache. in_order: page i of the table is block i, the contiguous
// layout behind a block table (tells the table's cost from the scattered pages' cost).
// num_splits 0: the library's heuristic.
Result bench(int B, int Sk, int Sq, int block_size, int iters, bool in_order = false, int num_splits = 0) {
  const int kD = g_head_dim;
  const std::size_t kv_bytes = std::size_t(B) * Sk * kHkv * kD * 2;  // one of K or V
  const int copies = static_cast<int>(std::max<std::size_t>(1, (std::size_t(512) << 20) / (2 * kv_bytes) + 1));
  const int max_blocks = block_size ? (Sk + block_size - 1) / block_size : 0;
  const int num_blocks = block_size ? B * max_blocks : 0;
  std::vector<void*> ks(copies), vs(copies);
  const int rows = Sk + (block_size ? 0 : g_pad_keys);  // cache rows per sequence (contiguous)
  const std::size_t cache_bytes = block_size ? std::size_t(num_blocks) * block_size * kHkv * kD * 2 : std::size_t(B) * rows * kHkv * kD * 2;
  for (int c = 0; c < copies; ++c) {
    CK(cudaMalloc(&ks[c], cache_bytes));
    CK(cudaMalloc(&vs[c], cache_bytes));
    fill_random(ks[c], cache_bytes);
    fill_random(vs[c], cache_bytes);
  }
  void *q, *out, *seqlens, *table = nullptr;
  CK(cudaMalloc(&q, std::size_t(B) * Sq * kHq * kD * 2));
  CK(cudaMalloc(&out, std::size_t(B) * Sq * kHq * kD * 2));
  fill_random(q, std::size_t(B) * Sq * kHq * kD * 2);
  // No append: the new tokens' keys are already the last Sq of the Sk cached keys, and
  // cache_seqlens = Sk makes the call attend to all of them (causal, bottom-right aligned).
  std::vector<int> lens(B, Sk);
  CK(cudaMalloc(&seqlens, B * 4));
  CK(cudaMemcpy(seqlens, lens.data(), B * 4, cudaMemcpyHostToDevice));
  if (block_size) {
    std::vector<int> perm(num_blocks);
    std::iota(perm.begin(), perm.end(), 0);
    if (!in_order) std::shuffle(perm.begin(), perm.end(), std::mt19937(7));  // scattered pages, as a long-running server has
    CK(cudaMalloc(&table, perm.size() * 4));
    CK(cudaMemcpy(table, perm.data(), perm.size() * 4, cudaMemcpyHostToDevice));
  }
  TensorView tq(q, DType::bf16, {B, Sq, kHq, kD}, Device::cuda(0));
  TensorView to(out, DType::bf16, {B, Sq, kHq, kD}, Device::cuda(0));
  KVCacheInputs in;
  in.cache_seqlens = TensorView(seqlens, DType::i32, {B}, Device::cuda(0));
  if (block_size) in.block_table = TensorView(table, DType::i32, {B, max_blocks}, Device::cuda(0));
  KVCacheOptions o;
  o.causal = true;
  o.num_splits = num_splits;
  const int splits = num_splits > 0 ? num_splits : decode_num_splits_heuristic(tq, kHkv, block_size ? max_blocks * block_size : rows);
  auto call = [&](int c, cudaStream_t stream = nullptr) {
    TensorView tk, tv;
    if (block_size) {
      tk = TensorView(ks[c], DType::bf16, {num_blocks, block_size, kHkv, kD}, Device::cuda(0));
      tv = TensorView(vs[c], DType::bf16, {num_blocks, block_size, kHkv, kD}, Device::cuda(0));
    } else {
      tk = TensorView(ks[c], DType::bf16, {B, rows, kHkv, kD}, Device::cuda(0));
      tv = TensorView(vs[c], DType::bf16, {B, rows, kHkv, kD}, Device::cuda(0));
    }
    forward_with_kvcache(tq, tk, tv, in, to, TensorView{}, o, stream);
  };
  for (int i = 0; i < 3; ++i) call(i % copies);
  CK(cudaDeviceSynchronize());
  std::vector<cudaEvent_t> ev(2 * iters);
  for (auto& e : ev) cudaEventCreate(&e);
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(ev[2 * i]);
    call(i % copies);
    cudaEventRecord(ev[2 * i + 1]);
  }
  CK(cudaDeviceSynchronize());
  std::vector<float> ms(iters);
  for (int i = 0; i < iters; ++i) cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]);
  for (auto& e : ev) cudaEventDestroy(e);
  // The same calls replayed from a CUDA graph (how serving engines run decode steps): the
  // time per call without the host's launch overhead.
  double graph_us = 0;
  {
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    call(0, st);
    CK(cudaStreamSynchronize(st));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    bool ok = cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
    try {
      for (int i = 0; ok && i < kGraphCalls; ++i) call(i % copies, st);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "graph capture: %s\n", e.what());
      ok = false;
    }
    ok = cudaStreamEndCapture(st, &g) == cudaSuccess && ok;
    ok = ok && cudaGraphInstantiate(&ge, g, 0) == cudaSuccess;
    if (ok) {
      cudaEvent_t a, b2;
      cudaEventCreate(&a);
      cudaEventCreate(&b2);
      std::vector<float> gms;
      for (int r = 0; r < 7; ++r) {
        cudaEventRecord(a, st);
        cudaGraphLaunch(ge, st);
        cudaEventRecord(b2, st);
        CK(cudaEventSynchronize(b2));
        float t;
        cudaEventElapsedTime(&t, a, b2);
        if (r > 0) gms.push_back(t);
      }
      graph_us = median(gms) * 1e3 / kGraphCalls;
      cudaGraphExecDestroy(ge);
      cudaGraphDestroy(g);
    }
    cudaGetLastError();
    cudaStreamDestroy(st);
  }
  for (int c = 0; c < copies; ++c) cudaFree(ks[c]), cudaFree(vs[c]);
  cudaFree(q), cudaFree(out), cudaFree(seqlens), cudaFree(table);
  const double t = median(ms) * 1e-3;
  return {t * 1e6, 2.0 * kv_bytes / t / 1e9, splits, graph_us};
}

}  // namespace

int main(int argc, char** argv) {
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("# device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  if (const char* pad = std::getenv("DECODE_BENCH_PAD_KEYS")) g_pad_keys = std::atoi(pad);
  if (const char* scratch = std::getenv("DECODE_BENCH_SCRATCH"); scratch != nullptr && std::string(scratch) == "fixed")
    use_fixed_scratch();
  // One shape (for profilers): decode_bench B Sk [block_size=0] [iters=20] [seqlen_q=1]
  // [inorder|scattered] [num_splits=0]; DECODE_BENCH_HEAD_DIM=<d> sets its head dim (128).
  if (argc >= 3) {
    if (const char* d = std::getenv("DECODE_BENCH_HEAD_DIM")) g_head_dim = std::atoi(d);
    const int bs = argc > 3 ? std::atoi(argv[3]) : 0, iters = argc > 4 ? std::atoi(argv[4]) : 20;
    const int sq = argc > 5 ? std::atoi(argv[5]) : 1;
    const bool in_order = argc > 6 && std::string(argv[6]) == "inorder";
    const int splits = argc > 7 ? std::atoi(argv[7]) : 0;
    const Result r = bench(std::atoi(argv[1]), std::atoi(argv[2]), sq, bs, iters, in_order, splits);
    std::printf("batch %s seqlen_k %s block_size %d%s: %.1f us, %.0f GB/s, %d splits, graph %.1f us\n", argv[1], argv[2],
                bs, in_order ? " (pages in order)" : "", r.us, r.gbps, r.splits, r.graph_us);
    return 0;
  }
  std::printf("# copy_bandwidth_GBps(read+write): %.0f\n", copy_bandwidth());
  // DECODE_BENCH_SHAPES="BxSk,BxSk,..." replaces the anchor shapes (and drops the multi-token and
  // head-dim-256 rows); DECODE_BENCH_SPLITS=<n> fixes the split count (0: the engine's choice).
  std::vector<std::pair<int, int>> shapes = {{1, 4096}, {1, 8192},  {1, 65536}, {1, 131072}, {8, 8192},
                                             {16, 16384}, {32, 4096}, {64, 4096}, {64, 16384}};
  const char* shape_list = std::getenv("DECODE_BENCH_SHAPES");
  if (shape_list != nullptr) {
    shapes.clear();
    for (const char* c = shape_list; *c != '\0';) {
      char* end = nullptr;
      const long b = std::strtol(c, &end, 10);
      if (end == c || *end != 'x') break;
      c = end + 1;
      const long sk = std::strtol(c, &end, 10);
      if (end == c || b <= 0 || sk <= 0) break;
      shapes.emplace_back(static_cast<int>(b), static_cast<int>(sk));
      c = *end == ',' ? end + 1 : end;
      if (*end != ',' && *end != '\0') break;
    }
    if (shapes.empty()) {
      std::fprintf(stderr, "DECODE_BENCH_SHAPES: expected BxSk[,BxSk...], got '%s'\n", shape_list);
      return 2;
    }
  }
  const int fixed_splits = std::getenv("DECODE_BENCH_SPLITS") ? std::atoi(std::getenv("DECODE_BENCH_SPLITS")) : 0;
  std::printf("layout,batch,seqlen_k,seqlen_q,splits,us,GBps,graph_us,graph_GBps\n");
  for (auto [b, sk] : shapes)
    for (int bs : {0, 16, 256}) {
      const int s[2] = {b, sk};
      const int sq = 1;
      const Result r = bench(s[0], s[1], sq, bs, 30, false, fixed_splits);
      const double kvb = 4.0 * s[0] * s[1] * kHkv * g_head_dim;
      std::printf("%s,%d,%d,%d,%d,%.1f,%.0f,%.1f,%.0f\n", bs ? ("paged" + std::to_string(bs)).c_str() : "contiguous",
                  s[0], s[1], sq, r.splits, r.us, r.gbps, r.graph_us, r.graph_us > 0 ? kvb / r.graph_us / 1e3 : 0.0);
      std::fflush(stdout);
    }
  if (shape_list != nullptr) return 0;
  // Multi-token decode (speculative / chunked): 4 query tokens.
  for (auto& s : {std::pair{8, 8192}, std::pair{1, 65536}}) {
    const Result r = bench(s.first, s.second, 4, 0, 30);
    const double kvb = 4.0 * s.first * s.second * kHkv * g_head_dim;
    std::printf("contiguous,%d,%d,4,%d,%.1f,%.0f,%.1f,%.0f\n", s.first, s.second, r.splits, r.us, r.gbps, r.graph_us,
                r.graph_us > 0 ? kvb / r.graph_us / 1e3 : 0.0);
  }
  // Head dim 256 (its own tile: four warps, 64-key stages), one token, contiguous cache.
  g_head_dim = 256;
  for (auto& s : {std::pair{1, 8192}, std::pair{8, 8192}, std::pair{32, 4096}}) {
    const Result r = bench(s.first, s.second, 1, 0, 30);
    const double kvb = 4.0 * s.first * s.second * kHkv * g_head_dim;
    std::printf("contiguous_d256,%d,%d,1,%d,%.1f,%.0f,%.1f,%.0f\n", s.first, s.second, r.splits, r.us, r.gbps,
                r.graph_us, r.graph_us > 0 ? kvb / r.graph_us / 1e3 : 0.0);
  }
  return 0;
}
