// Without CUDA in the build the GPU sweep reports that plainly; bench/gpu_sweep.cu
// replaces this file in CUDA builds.
#include "bench_types.hpp"
#include "flashattn/error.hpp"

namespace flashattn::bench {

bool gpu_present() { return false; }
std::string gpu_name() { return "none"; }
std::vector<BenchRow> run_gpu_sweep(const BenchConfig&, const Progress&) {
  throw Error(Error::Kind::unsupported, "device", "this build of flashattn-bench has no CUDA support");
}

}  // namespace flashattn::bench
