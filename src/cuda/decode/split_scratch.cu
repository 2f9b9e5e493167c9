// See split_scratch.hpp.
#include "cuda/decode/split_scratch.hpp"

#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

namespace flashattn::detail::decode {
namespace {

// Every region is sized for the call that asked (rounded up), so growth is geometric and the
// total stays a small multiple of the largest call. Counters are 4 bytes per attention CTA;
// parts are (head_dim + 1) floats per query row and split, and a split call has few rows (it
// splits because its grid is small), so the largest pooled part is bounded; larger ones (a
// caller's num_splits on a large batch) come from the device allocator.
constexpr std::size_t kChunkCounters = std::size_t(1) << 16;       // 256 KB
constexpr std::size_t kChunkPartFloats = std::size_t(1) << 21;     // 8 MB
constexpr std::size_t kMaxPooledPartFloats = std::size_t(1) << 22;  // 16 MB

// A bump allocator over device chunks of T; zeroed chunks for the counters.
template <typename T>
struct Chunks {
  std::size_t chunk_elems = 0;
  bool zeroed = false;
  T* chunk = nullptr;
  std::size_t size = 0, used = 0;

  // n elements carved from the current chunk, or from a new one (only if may_allocate: not
  // during a capture, where cudaMalloc is not allowed).
  T* carve(std::size_t n, cudaStream_t stream, bool may_allocate) {
    n = (n + 31) & ~std::size_t(31);  // whole 128-byte lines per region
    if (chunk == nullptr || size - used < n) {
      if (!may_allocate) return nullptr;
      const std::size_t elems = n > chunk_elems ? n : chunk_elems;
      void* p = nullptr;
      if (cudaMalloc(&p, elems * sizeof(T)) != cudaSuccess) {
        cudaGetLastError();
        return nullptr;
      }
      // Zeroed before any stream can use it: ordered on this stream, then waited for so that
      // regions handed to other streams later are zero too.
      if (zeroed && (cudaMemsetAsync(p, 0, elems * sizeof(T), stream) != cudaSuccess ||
                     cudaStreamSynchronize(stream) != cudaSuccess)) {
        cudaGetLastError();
        cudaFree(p);
        return nullptr;
      }
      chunk = static_cast<T*>(p);
      size = elems;
      used = 0;
    }
    T* r = chunk + used;
    used += n;
    return r;
  }
};

struct Region {
  unsigned* counters = nullptr;
  std::size_t n_counters = 0;
  float* parts = nullptr;
  std::size_t part_floats = 0;
};

struct DevicePool {
  Chunks<unsigned> counters{kChunkCounters, true};
  Chunks<float> parts{kChunkPartFloats, false};
  // Keyed by stream, thread (cudaStreamPerThread only: one handle, a stream per thread) and
  // capture sequence (0: not capturing).
  std::map<std::tuple<cudaStream_t, std::thread::id, unsigned long long>, Region> regions;
};

}  // namespace

SplitScratch split_scratch_for(int device, cudaStream_t stream, std::size_t n_counters, std::size_t part_floats) {
  static std::mutex mu;
  static std::vector<DevicePool> pools;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  unsigned long long capture_id = 0;
  if (cudaStreamGetCaptureInfo(stream, &capture, &capture_id) != cudaSuccess) {
    cudaGetLastError();
    return {};
  }
  const bool capturing = capture != cudaStreamCaptureStatusNone;
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(pools.size()) <= device) pools.resize(static_cast<std::size_t>(device) + 1);
  DevicePool& pool = pools[static_cast<std::size_t>(device)];
  const std::thread::id thread = stream == cudaStreamPerThread ? std::this_thread::get_id() : std::thread::id{};
  Region& region = pool.regions[{stream, thread, capturing ? capture_id : 0}];
  if (region.n_counters < n_counters) {
    if (unsigned* c = pool.counters.carve(n_counters, stream, !capturing)) region.counters = c, region.n_counters = n_counters;
  }
  if (part_floats > 0 && part_floats <= kMaxPooledPartFloats && region.part_floats < part_floats) {
    if (float* f = pool.parts.carve(part_floats, stream, !capturing)) region.parts = f, region.part_floats = part_floats;
  }
  SplitScratch s;
  if (region.n_counters >= n_counters) s.counters = region.counters;
  if (part_floats > 0 && region.part_floats >= part_floats) s.parts = region.parts;
  return s;
}

}  // namespace flashattn::detail::decode
