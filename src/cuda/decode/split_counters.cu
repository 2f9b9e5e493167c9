// See split_counters.hpp.
#include "cuda/decode/split_counters.hpp"

#include <map>
#include <mutex>
#include <utility>
#include <vector>

namespace flashattn::detail::decode {
namespace {

// Chunks are never freed: a captured graph may refer to them for the life of the process.
// Every region is sized for the call that asked (rounded up), so growth is geometric and the
// total stays a small multiple of the largest call (counters are 4 bytes per attention CTA).
constexpr std::size_t kChunkCounters = std::size_t(1) << 16;  // 256 KB

struct DevicePool {
  unsigned* chunk = nullptr;
  std::size_t chunk_size = 0, chunk_used = 0;
  struct Region {
    unsigned* base = nullptr;
    std::size_t size = 0;
  };
  std::map<cudaStream_t, Region> per_stream;

  // n counters carved from the current chunk, or from a new one (stream not capturing).
  unsigned* carve(std::size_t n, cudaStream_t stream, bool may_allocate) {
    n = (n + 31) & ~std::size_t(31);  // whole 128-byte lines per region
    if (chunk == nullptr || chunk_size - chunk_used < n) {
      if (!may_allocate) return nullptr;
      const std::size_t size = n > kChunkCounters ? n : kChunkCounters;
      void* p = nullptr;
      if (cudaMalloc(&p, size * sizeof(unsigned)) != cudaSuccess) {
        cudaGetLastError();
        return nullptr;
      }
      // Zeroed before any stream can use it: ordered on this stream, then waited for so that
      // regions handed to other streams later are zero too.
      if (cudaMemsetAsync(p, 0, size * sizeof(unsigned), stream) != cudaSuccess ||
          cudaStreamSynchronize(stream) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(p);
        return nullptr;
      }
      chunk = static_cast<unsigned*>(p);
      chunk_size = size;
      chunk_used = 0;
    }
    unsigned* r = chunk + chunk_used;
    chunk_used += n;
    return r;
  }
};

}  // namespace

unsigned* split_counters_for(int device, cudaStream_t stream, std::size_t n) {
  static std::mutex mu;
  static std::vector<DevicePool> pools;
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream, &capture) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(pools.size()) <= device) pools.resize(static_cast<std::size_t>(device) + 1);
  DevicePool& pool = pools[static_cast<std::size_t>(device)];
  if (capture != cudaStreamCaptureStatusNone) return pool.carve(n, stream, false);
  DevicePool::Region& region = pool.per_stream[stream];
  if (region.size < n) {
    // The old region may still be in use by this stream's queued kernels; it is left alone.
    unsigned* base = pool.carve(n, stream, true);
    if (base == nullptr) return nullptr;
    region = {base, (n + 31) & ~std::size_t(31)};
  }
  return region.base;
}

}  // namespace flashattn::detail::decode
