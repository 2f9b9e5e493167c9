// Thread-block-cluster barriers (PTX ISA 9.7.13.4 "barrier.cluster", sm_90): every thread of
// every CTA of the cluster arrives, then waits for all of them.
#pragma once

namespace flashattn::ptx {

// barrier.cluster.arrive.release.aligned: this thread's earlier shared-memory writes become
// visible to the cluster's threads that wait on this phase.
__device__ __forceinline__ void barrier_cluster_arrive_release() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
#endif
}

// barrier.cluster.wait.acquire.aligned: waits until every thread of the cluster has arrived and
// sees what they released.
__device__ __forceinline__ void barrier_cluster_wait_acquire() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#endif
}

}  // namespace flashattn::ptx
