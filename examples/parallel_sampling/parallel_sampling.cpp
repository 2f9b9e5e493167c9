// Parallel sampling with a paged KV cache: n samples of one prompt share the prompt's blocks
// (BlockManager::fork), and each sample's first new token copies only the shared, partly
// filled last block (copy-on-write). Runs the decode steps with forward_with_kvcache on the
// CPU engine (paged cache, append of the new token's K/V in the same call) and prints the KV
// memory with sharing next to what n private copies of the prompt would take.
//
//   parallel_sampling [n_samples=8] [prompt_tokens=1000] [new_tokens=64] [block_size=16]
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "flashattn/kvcache.hpp"

using namespace flashattn;

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 8;
  const int prompt = argc > 2 ? std::atoi(argv[2]) : 1000;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 64;
  const int bs = argc > 4 ? std::atoi(argv[4]) : 16;
  const int Hq = 32, Hkv = 8, D = 128;
  const int max_tokens = prompt + steps;
  const int max_blocks = (max_tokens + bs - 1) / bs;
  const int num_blocks = n * max_blocks + 8;  // room for the unshared case too
  const std::size_t block_bytes = std::size_t(2) * bs * Hkv * D * sizeof(float);  // K and V, fp32 here

  std::vector<float> k_cache(std::size_t(num_blocks) * bs * Hkv * D), v_cache(k_cache.size());
  const TensorView kc(k_cache.data(), DType::f32, {num_blocks, bs, Hkv, D});
  const TensorView vc(v_cache.data(), DType::f32, {num_blocks, bs, Hkv, D});
  BlockManager bm(num_blocks, bs);
  bm.attach_cache(kc, vc);
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto random_vec = [&](std::size_t count) {
    std::vector<float> x(count);
    for (auto& e : x) e = u(rng);
    return x;
  };

  // "Prefill": the prompt's K/V rows go straight into the slots the manager hands out.
  const auto root = bm.allocate();
  std::vector<std::int32_t> prompt_ids(static_cast<std::size_t>(prompt));
  for (auto& t : prompt_ids) t = static_cast<std::int32_t>(rng() % 32000);
  const auto slots = bm.append_tokens(root, prompt_ids).slots;
  const std::vector<float> prompt_k = random_vec(std::size_t(prompt) * Hkv * D), prompt_v = random_vec(prompt_k.size());
  for (int i = 0; i < prompt; ++i)
    for (int e = 0; e < Hkv * D; ++e) {
      k_cache[slots[i] * Hkv * D + e] = prompt_k[std::size_t(i) * Hkv * D + e];
      v_cache[slots[i] * Hkv * D + e] = prompt_v[std::size_t(i) * Hkv * D + e];
    }

  // n samples share every prompt block.
  std::vector<BlockManager::SeqId> seqs;
  for (int s = 0; s < n; ++s) seqs.push_back(bm.fork(root));
  bm.free(root);
  const auto after_fork = bm.stats();
  std::printf("after fork: %d blocks used, %d shared (prompt %d tokens = %d blocks of %d)\n", after_fork.used,
              after_fork.shared, prompt, (prompt + bs - 1) / bs, bs);

  std::vector<float> q(std::size_t(n) * Hq * D), out(q.size()), kn(std::size_t(n) * Hkv * D), vn(kn.size());
  std::vector<int> seqlens(static_cast<std::size_t>(n));
  for (int step = 0; step < steps; ++step) {
    for (int s = 0; s < n; ++s) {
      seqlens[s] = static_cast<int>(bm.num_tokens(seqs[s]));
      bm.append(seqs[s], 1);  // copy-on-write on the first step (shared, partly full last block)
    }
    const auto table = bm.batch_block_table(seqs, max_blocks);
    for (auto* x : {&q, &kn, &vn})
      for (auto& e : *x) e = u(rng);
    KVCacheInputs in;
    in.k_new = TensorView(kn.data(), DType::f32, {n, 1, Hkv, D});
    in.v_new = TensorView(vn.data(), DType::f32, {n, 1, Hkv, D});
    in.cache_seqlens = TensorView(seqlens.data(), DType::i32, {n});
    in.block_table = TensorView(const_cast<std::int32_t*>(table.data()), DType::i32, {n, max_blocks});
    KVCacheOptions opt;
    opt.causal = true;
    forward_with_kvcache(TensorView(q.data(), DType::f32, {n, 1, Hq, D}), kc, vc, in,
                         TensorView(out.data(), DType::f32, {n, 1, Hq, D}), TensorView{}, opt);
  }

  // Every sample still sees the original prompt through its own block table.
  int damaged = 0;
  for (int s = 0; s < n; ++s) {
    const auto t = bm.block_table(seqs[s]);
    for (int i = 0; i < prompt; ++i) {
      const std::size_t slot = std::size_t(t[i / bs]) * bs + i % bs;
      for (int e = 0; e < Hkv * D; ++e)
        damaged += k_cache[slot * Hkv * D + e] != prompt_k[std::size_t(i) * Hkv * D + e] ||
                   v_cache[slot * Hkv * D + e] != prompt_v[std::size_t(i) * Hkv * D + e];
    }
  }
  const auto st = bm.stats();
  const std::int64_t private_blocks = std::int64_t(n) * ((prompt + steps + bs - 1) / bs);
  const double mib = 1.0 / (1 << 20);
  std::printf("samples %d, prompt %d, generated %d each, block_size %d, %d KV heads x %d dims\n", n, prompt, steps, bs,
              Hkv, D);
  std::printf("KV memory with sharing:    %6d blocks  %9.1f MiB (fp32; %.1f MiB in bf16)\n", st.used,
              st.used * block_bytes * mib, st.used * block_bytes * mib / 2);
  std::printf("KV memory without sharing: %6lld blocks  %9.1f MiB (fp32; %.1f MiB in bf16)\n",
              static_cast<long long>(private_blocks), private_blocks * block_bytes * mib,
              private_blocks * block_bytes * mib / 2);
  std::printf("saving: %.2fx; blocks still shared: %d; prompt rows damaged: %d\n",
              static_cast<double>(private_blocks) / st.used, st.shared, damaged);
  for (auto s : seqs) bm.free(s);
  return damaged == 0 && bm.stats().free == num_blocks ? 0 : 1;
}
