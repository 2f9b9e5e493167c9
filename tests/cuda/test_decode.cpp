// CUDA decode engine against the fp64 oracle for every option; paged and contiguous caches
// bit-identical; split and unsplit within rounding; copy-on-write of device cache blocks.
#include <gtest/gtest.h>

#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cpu/decode_case.hpp"
#include "flashattn/attention.hpp"
#include "cuda/device_buffer.hpp"
#include "cuda/scoped_env.hpp"
#include "cuda/smem_limit.hpp"

namespace flashattn::testing {
namespace {

using Layout = DecodeConfig::Layout;

// Device mirrors of a case's host tensors, made on first use (uploaded, poison included).
class Mirror {
 public:
  TensorView operator()(const HostTensor& h) {
    auto it = bufs_.find(&h);
    if (it == bufs_.end()) it = bufs_.emplace(&h, std::make_unique<DeviceBuffer>(h)).first;
    return it->second->view();
  }
  void download(HostTensor& h) const { bufs_.at(&h)->download(h); }
  void upload(const HostTensor& h) const { bufs_.at(&h)->upload(); }

 private:
  std::map<const HostTensor*, std::unique_ptr<DeviceBuffer>> bufs_;
};

void run_gpu(DecodeCase& dc) {
  Mirror m;
  dc.run(std::ref(m));
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  m.download(dc.out);
  if (dc.c.with_lse) m.download(dc.lse);
  m.download(dc.k_cache);
  m.download(dc.v_cache);
}

// run_gpu with the environment variable `name` set to `value` for the call (a mode switch).
void run_gpu_with_env(DecodeCase& dc, const char* name, const char* value) {
  ScopedEnv env(name, value);
  run_gpu(dc);
}

// The call fails with an `unsupported` error whose message names `what`, and writes nothing:
// neither the output nor the cache it would append to.
void expect_unsupported_writing_nothing(DecodeCase& dc, const std::string& what) {
  Mirror m;
  try {
    dc.run(std::ref(m));
    FAIL() << "expected flashattn::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::unsupported);
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const HostTensor out_before = dc.out;
  m.download(dc.out);
  m.download(dc.k_cache);
  EXPECT_TRUE(same_bits(dc.out, out_before));
  EXPECT_TRUE(same_bits(dc.k_cache, dc.k_cache_before));
}

void run_and_check(const DecodeConfig& cfg, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  DecodeCase dc(cfg, rng);
  run_gpu(dc);
  dc.check("cuda seed=" + std::to_string(seed));
}

TEST(CudaDecode, AnchorShapeGqa32of8) {
  FLASHATTN_REQUIRE_GPU();
  for (int sq : {1, 4, 16}) {
    DecodeConfig c;
    c.dtype = DType::bf16;
    c.batch = 2, c.seqlen_q = sq, c.heads_q = 32, c.heads_kv = 8, c.head_dim = 128;
    c.cache_seqlens = {3000, 1777};
    c.causal = true;
    c.num_splits = 0;  // heuristic
    c.layout = Layout::paged;
    c.block_size = 16;
    run_and_check(c, fresh_seed());
  }
}

TEST(CudaDecode, EveryOptionRandomised) {
  FLASHATTN_REQUIRE_GPU();
  const std::uint64_t seed0 = fresh_seed();
  std::mt19937_64 pick(seed0);
  const int dims[] = {8, 40, 64, 96, 128, 200, 256};
  for (int it = 0; it < 80; ++it) {
    DecodeConfig c;
    c.dtype = it % 2 ? DType::f16 : DType::bf16;
    c.batch = 1 + static_cast<int>(pick() % 3);
    c.heads_kv = 1 + static_cast<int>(pick() % 3);
    c.heads_q = c.heads_kv * (1 + static_cast<int>(pick() % 8));
    c.head_dim = dims[pick() % 7];
    c.seqlen_q = 1 + static_cast<int>(pick() % 16);
    c.seqlen_new = static_cast<int>(pick() % 2) ? c.seqlen_q : static_cast<int>(pick() % 5);
    c.layout = static_cast<Layout>(pick() % 3);
    c.block_size = 1 + static_cast<int>(pick() % 70);
    c.max_cache = static_cast<int>(pick() % 2) ? 400 : 5;
    if (c.seqlen_new > 0 && pick() % 2) {
      c.rotary_dim = 2 * (1 + static_cast<int>(pick() % (c.head_dim / 2)));
      c.interleaved = pick() % 2;
      c.rotary_table_in_dtype = pick() % 3 == 0;
    }
    switch (pick() % 4) {
      case 0: c.causal = true; break;
      case 1: c.window_left = static_cast<int>(pick() % 90); c.window_right = static_cast<int>(pick() % 3) - 1; break;
      case 2: c.causal = true; c.window_left = static_cast<int>(pick() % 70); break;
      default: break;
    }
    if (pick() % 3 == 0) c.softcap = 5.f;
    c.alibi = pick() % 3 == 0;
    c.with_lse = pick() % 4 != 0;
    c.num_splits = static_cast<int>(pick() % 5);
    run_and_check(c, seed0 + 1000 + it);
  }
}

TEST(CudaDecode, EmptyRowsAndEmptyCache) {
  FLASHATTN_REQUIRE_GPU();
  DecodeConfig c;
  c.cache_seqlens = {0, 2, 0};
  c.batch = 3, c.seqlen_q = 5, c.causal = true, c.num_splits = 3;
  run_and_check(c, fresh_seed());
  c.seqlen_new = 1, c.rotary_dim = 16;
  run_and_check(c, fresh_seed());
}

TEST(CudaDecode, PagedIsBitIdenticalToContiguous) {
  FLASHATTN_REQUIRE_GPU();
  for (int bs : {1, 16, 256, 33}) {
    DecodeConfig c;
    c.dtype = DType::bf16;
    c.batch = 3, c.seqlen_q = 4, c.heads_q = 16, c.heads_kv = 4, c.head_dim = 128;
    c.seqlen_new = 4, c.rotary_dim = 64, c.causal = true, c.softcap = 10.f, c.alibi = true;
    c.layout = Layout::paged, c.block_size = bs, c.max_cache = 1500, c.num_splits = 3;
    std::mt19937_64 rng(fresh_seed());
    DecodeCase paged(c, rng);
    DecodeCase contig = paged.contiguous_twin(rng);
    contig.k_cache_before = contig.k_cache, contig.v_cache_before = contig.v_cache;
    run_gpu(paged);
    run_gpu(contig);
    paged.check("paged");
    EXPECT_TRUE(same_bits(paged.out, contig.out)) << "block_size " << bs;
    EXPECT_TRUE(same_bits(paged.lse, contig.lse)) << "block_size " << bs;
  }
}

// Cache rows past a sequence's end (and past a split's end) never reach the output: a kernel
// that copies whole tiles (a TMA form, see decode_heuristics.hpp) must zero the V rows past the
// split itself (P = 0 there, but 0 * Inf is NaN). Every row past cache_seqlens holds +Inf.
TEST(CudaDecode, CacheTailPastTheSequenceIsNeverUsed) {
  FLASHATTN_REQUIRE_GPU();
  const float inf = std::numeric_limits<float>::infinity();
  for (int D : {128, 96})
    for (Layout layout : {Layout::contiguous, Layout::batch_idx, Layout::paged})
      for (int splits : {0, 1, 3, 7}) {
        DecodeConfig c;
        c.dtype = splits % 2 ? DType::f16 : DType::bf16;
        c.batch = 3, c.seqlen_q = 1, c.heads_q = 32, c.heads_kv = 8, c.head_dim = D;
        c.cache_seqlens = {1000, 77, 3001};
        c.max_cache = 3100;
        c.layout = layout, c.block_size = 64;
        c.causal = splits == 3;
        c.num_splits = splits;
        std::mt19937_64 rng(fresh_seed());
        DecodeCase dc(c, rng);
        for (int b = 0; b < c.batch; ++b)
          for (int pos = dc.seqlens[b]; pos < dc.capacity; ++pos) {
            auto [blk, row] = dc.where(b, pos);
            for (int h = 0; h < c.heads_kv; ++h)
              for (int d = 0; d < D; ++d) {
                const std::int64_t e = dc.cache_index(blk, row, h, d);
                dc.k_cache.set(e, inf), dc.v_cache.set(e, inf);
                dc.k_cache_before.set(e, inf), dc.v_cache_before.set(e, inf);
              }
          }
        run_gpu(dc);
        dc.check("inf tail, D " + std::to_string(D) + " splits " + std::to_string(splits));
      }
}

TEST(CudaDecode, SplitMatchesUnsplit) {
  FLASHATTN_REQUIRE_GPU();
  for (int splits : {2, 7, 64}) {
    DecodeConfig c;
    c.dtype = DType::f16;
    c.batch = 2, c.seqlen_q = 2, c.heads_q = 8, c.heads_kv = 2, c.head_dim = 128, c.max_cache = 6000;
    c.causal = true, c.num_splits = 1;
    std::mt19937_64 rng(fresh_seed());
    DecodeCase one(c, rng);
    DecodeCase many = one;
    many.c.num_splits = splits;
    run_gpu(one);
    run_gpu(many);
    many.check("split");
    EXPECT_LE(max_ulps_apart(one.out, many.out, c.dtype), 2.0) << splits << " splits";
    EXPECT_LE(max_ulps_apart(one.lse, many.lse, DType::f32), 64.0) << splits << " splits";
  }
}

// The split merge's scratch persists between calls (split_scratch.hpp: arrival counters that
// each call's last CTA zeroes, and the parts): calls with different split counts and grids one
// after another, on two streams, and replays of captured graphs must each merge every row
// exactly once. A counter left non-zero would merge early (wrong rows) or never (poison left in
// the output); parts shared by calls that overlap would mix their rows.
// Merged through memory (the cluster merge uses no scratch), and launched programmatically
// (every call may then start while the one before it ends).
TEST(CudaDecode, SplitScratchServesEveryCallStreamAndGraph) {
  FLASHATTN_REQUIRE_GPU();
  ScopedEnv memory_merge("FLASHATTN_DECODE_CLUSTER_MERGE", "0");
  ScopedEnv programmatic("FLASHATTN_DECODE_PDL", "1");
  std::vector<DecodeConfig> cfgs;
  for (int splits : {5, 16, 3, 0}) {
    DecodeConfig c;
    c.dtype = DType::bf16;
    c.batch = splits == 3 ? 3 : 1, c.seqlen_q = 1, c.heads_q = 8, c.heads_kv = 2, c.head_dim = 64;
    c.max_cache = 2500, c.causal = true, c.num_splits = splits;
    cfgs.push_back(c);
  }
  std::mt19937_64 rng(fresh_seed());
  std::vector<DecodeCase> cases;
  cases.reserve(cfgs.size());
  for (const auto& c : cfgs) cases.emplace_back(c, rng);
  cudaStream_t streams[2];
  for (auto& st : streams) ASSERT_EQ(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), cudaSuccess);
  for (int round = 0; round < 3; ++round)
    for (std::size_t i = 0; i < cases.size(); ++i) {
      DecodeCase& dc = cases[i];
      dc.out.poison();
      dc.lse.poison();
      Mirror m;
      dc.run(std::ref(m), streams[(round + i) % 2]);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      m.download(dc.out);
      m.download(dc.lse);
      dc.check("round " + std::to_string(round) + " case " + std::to_string(i));
    }
  // Two graphs, each capturing two split calls on one stream (so they share its scratch), replayed
  // three times in turn on the two streams, the outputs poisoned on the device before each. The
  // calls allocate nothing while captured (the stream's eager calls made the pool): the graphs
  // hold kernel nodes only, no memory nodes between them.
  Mirror m[2];
  cudaGraphExec_t execs[2] = {nullptr, nullptr};
  const std::size_t captured[2][2] = {{1, 0}, {2, 3}};
  for (int g = 0; g < 2; ++g) {
    for (std::size_t i : captured[g]) {
      DecodeCase& dc = cases[i];
      (void)m[g](dc.out), (void)m[g](dc.lse), (void)m[g](dc.q);  // made (and uploaded) before the capture
      dc.run(std::ref(m[g]), streams[0]);                          // with every other buffer
    }
    ASSERT_EQ(cudaStreamSynchronize(streams[0]), cudaSuccess);
    cudaGraph_t graph = nullptr;
    ASSERT_EQ(cudaStreamBeginCapture(streams[0], cudaStreamCaptureModeThreadLocal), cudaSuccess);
    for (std::size_t i : captured[g]) cases[i].run(std::ref(m[g]), streams[0]);
    ASSERT_EQ(cudaStreamEndCapture(streams[0], &graph), cudaSuccess);
    std::size_t n_nodes = 0;
    ASSERT_EQ(cudaGraphGetNodes(graph, nullptr, &n_nodes), cudaSuccess);
    std::vector<cudaGraphNode_t> nodes(n_nodes);
    ASSERT_EQ(cudaGraphGetNodes(graph, nodes.data(), &n_nodes), cudaSuccess);
    for (cudaGraphNode_t node : nodes) {
      cudaGraphNodeType type;
      ASSERT_EQ(cudaGraphNodeGetType(node, &type), cudaSuccess);
      EXPECT_EQ(type, cudaGraphNodeTypeKernel) << "graph " << g;
    }
    ASSERT_EQ(cudaGraphInstantiate(&execs[g], graph, 0), cudaSuccess);
    cudaGraphDestroy(graph);
  }
  for (int replay = 0; replay < 3; ++replay)
    for (int g = 0; g < 2; ++g) {
      for (std::size_t i : captured[g]) {
        const TensorView out = m[g](cases[i].out), lse = m[g](cases[i].lse);
        ASSERT_EQ(cudaMemset(out.data, 0xff, cases[i].out.bytes()), cudaSuccess);  // NaN in bf16
        ASSERT_EQ(cudaMemset(lse.data, 0xff, cases[i].lse.bytes()), cudaSuccess);
      }
      ASSERT_EQ(cudaGraphLaunch(execs[g], streams[(replay + g) % 2]), cudaSuccess);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      for (std::size_t i : captured[g]) {
        m[g].download(cases[i].out);
        m[g].download(cases[i].lse);
        cases[i].check("graph " + std::to_string(g) + " replay " + std::to_string(replay) + " case " + std::to_string(i));
      }
    }
  for (auto& e : execs) cudaGraphExecDestroy(e);
  for (auto& st : streams) cudaStreamDestroy(st);
}

// cudaStreamPerThread is one handle for a different stream in each thread: split calls on it from
// two threads at once run concurrently and must not share their scratch (split_scratch.hpp). Each
// thread makes one call to set up its scratch, then queues a run of long split calls (25k keys per
// CTA, each into an output of its own) behind a gate: a host function on a third stream that
// returns once both threads have queued everything, so the two runs start together on the device
// (without it, the runs overlapped in some runs only: a build sharing the threads' scratch
// passed one time in three).
TEST(CudaDecode, SplitScratchKeepsPerThreadStreamsApart) {
  FLASHATTN_REQUIRE_GPU();
  ScopedEnv memory_merge("FLASHATTN_DECODE_CLUSTER_MERGE", "0");
  constexpr int kCalls = 12;
  const std::uint64_t seed = fresh_seed();
  struct Gate {
    std::mutex mu;
    std::condition_variable cv;
    int queued = 0;
    bool opened_by_both = false;
  } gate;
  cudaStream_t gate_stream = nullptr;
  cudaEvent_t opened = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&gate_stream, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaEventCreateWithFlags(&opened, cudaEventDisableTiming), cudaSuccess);
  // Bounded wait: should a call block on its own stream, the test fails instead of hanging.
  auto hold = [](void* p) {
    auto* g = static_cast<Gate*>(p);
    std::unique_lock<std::mutex> lock(g->mu);
    g->opened_by_both = g->cv.wait_for(lock, std::chrono::seconds(60), [g] { return g->queued == 2; });
  };
  // The gate closes once both threads are set up (the set-up's synchronous copies on the legacy
  // stream wait for every per-thread stream, so none may wait at the gate before), and its
  // clock starts then.
  bool gate_closed = false;
  auto close_gate = [&]() noexcept {
    gate_closed = cudaLaunchHostFunc(gate_stream, hold, &gate) == cudaSuccess &&
                  cudaEventRecord(opened, gate_stream) == cudaSuccess;
  };
  std::barrier set_up(2, close_gate);
  auto worker = [&](int t) {
    DecodeConfig c;
    c.dtype = DType::bf16;
    c.batch = 1, c.seqlen_q = 1, c.heads_q = 8, c.heads_kv = 2, c.head_dim = 128;
    c.max_cache = 200000, c.causal = true, c.num_splits = 8;
    std::mt19937_64 rng(seed + t);
    DecodeCase dc(c, rng);
    Mirror m;
    dc.out.poison();
    dc.lse.poison();
    std::vector<std::unique_ptr<DeviceBuffer>> outs, lses;
    for (int i = 0; i <= kCalls; ++i) {  // the last pair for the set-up call
      outs.push_back(std::make_unique<DeviceBuffer>(dc.out));
      lses.push_back(std::make_unique<DeviceBuffer>(dc.lse));
    }
    auto buffers = [&](int i) {
      return [&, i](const HostTensor& h) { return &h == &dc.out ? outs[i]->view() : &h == &dc.lse ? lses[i]->view() : m(h); };
    };
    dc.run(buffers(kCalls), cudaStreamPerThread);  // sets up this thread's scratch outside the gated run
    bool ready = cudaStreamSynchronize(cudaStreamPerThread) == cudaSuccess;
    set_up.arrive_and_wait();
    ready = ready && gate_closed && cudaStreamWaitEvent(cudaStreamPerThread, opened, 0) == cudaSuccess;
    if (ready)
      for (int i = 0; i < kCalls; ++i) dc.run(buffers(i), cudaStreamPerThread);
    {
      std::lock_guard<std::mutex> lock(gate.mu);
      ++gate.queued;
    }
    gate.cv.notify_all();
    if (!ready || cudaStreamSynchronize(cudaStreamPerThread) != cudaSuccess) {
      ADD_FAILURE() << "thread " << t << ": stream error";
      return;
    }
    for (int i = 0; i < kCalls; ++i) {
      outs[i]->download(dc.out);
      lses[i]->download(dc.lse);
      dc.check("thread " + std::to_string(t) + " call " + std::to_string(i));
    }
  };
  std::thread a(worker, 0), b(worker, 1);
  a.join();
  b.join();
  EXPECT_TRUE(gate.opened_by_both) << "the gate timed out: the two runs did not start together";
  cudaEventDestroy(opened);
  cudaStreamDestroy(gate_stream);
}

// A caller's allocator (set_device_allocator, as a framework routes scratch to its caching
// allocator) serves the split parts: the library keeps them in a pool of its own only when no
// allocator is set. The parts land in the caller's memory and the call merges correctly.
TEST(CudaDecode, SplitPartsComeFromTheCallersAllocator) {
  FLASHATTN_REQUIRE_GPU();
  ScopedEnv memory_merge("FLASHATTN_DECODE_CLUSTER_MERGE", "0");
  struct Log {
    std::size_t calls = 0, bytes = 0;
  } log;
  DeviceAllocator a;
  a.ctx = &log;
  a.allocate = [](std::size_t bytes, int, StreamHandle stream, void* ctx) -> void* {
    auto* l = static_cast<Log*>(ctx);
    ++l->calls, l->bytes += bytes;
    void* p = nullptr;
    return cudaMallocAsync(&p, bytes, static_cast<cudaStream_t>(stream)) == cudaSuccess ? p : nullptr;
  };
  a.deallocate = [](void* p, int, StreamHandle stream, void*) { cudaFreeAsync(p, static_cast<cudaStream_t>(stream)); };
  DecodeConfig c;
  c.dtype = DType::f16;
  c.batch = 2, c.seqlen_q = 1, c.heads_q = 8, c.heads_kv = 2, c.head_dim = 128;
  c.max_cache = 3000, c.causal = true, c.num_splits = 6;
  std::mt19937_64 rng(fresh_seed());
  DecodeCase dc(c, rng);
  set_device_allocator(a);
  run_gpu(dc);
  set_device_allocator(DeviceAllocator{});
  dc.check("6 splits, caller's allocator");
  const std::size_t rows = std::size_t(c.batch) * c.heads_q * c.seqlen_q;
  EXPECT_EQ(log.calls, 1u);
  EXPECT_EQ(log.bytes, rows * 6 * (c.head_dim + 1) * sizeof(float));  // the parts, nothing else
}

TEST(CudaDecode, CopyOnWriteCopiesDeviceBlocks) {
  FLASHATTN_REQUIRE_GPU();
  const int nb = 6, bs = 4, H = 2, D = 8;
  HostTensor k(DType::bf16, {nb, bs, H, D}), v(DType::bf16, {nb, bs, H, D});
  std::mt19937_64 rng(fresh_seed());
  k.fill_random(rng);
  v.fill_random(rng);
  DeviceBuffer dk(k), dv(v);
  BlockManager bm(nb, bs);
  bm.attach_cache(dk.view(), dv.view());
  const auto p = bm.allocate();
  bm.append(p, 6);
  const auto c = bm.fork(p);
  bm.append(c, 1);  // copies block 1 of the parent on the device
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  HostTensor k2 = k, v2 = v;
  dk.download(k2);
  dv.download(v2);
  const int src = bm.block_table(p)[1], dst = bm.block_table(c)[1];
  ASSERT_NE(src, dst);
  for (int e = 0; e < bs * H * D; ++e) {
    EXPECT_EQ(k2.get(dst * bs * H * D + e), k.get(src * bs * H * D + e));
    EXPECT_EQ(v2.get(dst * bs * H * D + e), v.get(src * bs * H * D + e));
  }
}

TEST(CudaDecode, BadDeviceValuesStayInsideTheCache) {
  FLASHATTN_REQUIRE_GPU();
  // Device index values are trusted, not read back; a bad one must not fault or write
  // outside the cache (the kernels clamp). Output is unspecified, the call must complete.
  DecodeConfig c;
  c.layout = Layout::paged, c.block_size = 8, c.seqlen_new = 1, c.max_cache = 30;
  std::mt19937_64 rng(fresh_seed());
  DecodeCase dc(c, rng);
  dc.block_table.set(0, 1e6f);
  dc.cache_seqlens.set(1, 1e6f);
  Mirror m;
  dc.run(std::ref(m));
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

// Each shared-memory tier's tile (the 99 KiB one of sm_86 / sm_89, the 163 KiB one of A100,
// Hopper's) against the oracle, on the GPU at hand with its limit lowered. Rows past one CTA's
// (16 tokens x GQA 4 = 64 rows, two row groups for the 32-row tile), paged and contiguous,
// split and not, options on.
TEST(CudaDecode, EveryTileTierAgainstTheOracle) {
  FLASHATTN_REQUIRE_GPU();
  const std::uint64_t seed0 = fresh_seed();
  std::mt19937_64 pick(seed0);
  int it = 0;
  for (std::size_t limit : {std::size_t(101376), std::size_t(166912), std::size_t(0)}) {
    SmemLimit scoped(limit);
    for (int d : {40, 64, 128, 200, 256})
      for (int sq : {1, 16}) {
        DecodeConfig c;
        c.dtype = it % 2 ? DType::f16 : DType::bf16;
        c.batch = 2, c.heads_q = 8, c.heads_kv = 2, c.head_dim = d, c.seqlen_q = sq;
        c.max_cache = 700, c.seqlen_new = sq;
        c.layout = it % 3 == 0 ? Layout::contiguous : Layout::paged;
        c.block_size = it % 2 ? 16 : 37;
        c.causal = true;
        c.softcap = it % 4 == 1 ? 8.f : 0.f;
        c.alibi = it % 4 == 2;
        if (it % 4 == 3) c.rotary_dim = d / 2 / 2 * 2;
        c.num_splits = it % 2 ? 3 : 0;
        // Head dim 256 runs its three-stage tile on splits of >= 4096 keys only (decode_launch.cu).
        if (d == 256 && sq == 1) c.max_cache = 6000, c.num_splits = 1;
        SCOPED_TRACE("limit " + std::to_string(limit) + " head_dim " + std::to_string(d) + " seqlen_q " + std::to_string(sq));
        run_and_check(c, seed0 + 100 + it++);
      }
  }
}

// A device with too little shared memory for any tile: a clear error naming what it needs and
// offers, and nothing written (neither the output nor the cache the call would append to).
TEST(CudaDecode, NoTileFitsIsAClearErrorAndWritesNothing) {
  FLASHATTN_REQUIRE_GPU();
  SmemLimit scoped(48 * 1024);
  DecodeConfig c;
  c.head_dim = 128, c.seqlen_new = 1, c.max_cache = 50;
  std::mt19937_64 rng(fresh_seed());
  DecodeCase dc(c, rng);
  expect_unsupported_writing_nothing(dc, "shared memory");
}

// Case `c` run with the mode switch `name` at 1 and at 0 (the same inputs), each checked against
// the oracle, for the caller to compare the two.
struct OnAndOff {
  DecodeCase on, off;
};
OnAndOff run_on_and_off(const DecodeConfig& c, std::uint64_t seed, const char* name) {
  std::mt19937_64 rng(seed);
  DecodeCase on(c, rng);
  DecodeCase off = on;
  run_gpu_with_env(on, name, "1");
  run_gpu_with_env(off, name, "0");
  on.check(std::string(name) + "=1");
  off.check(std::string(name) + "=0");
  return {std::move(on), std::move(off)};
}

// Case `c` launched programmatically and in stream order: the same bits.
void expect_programmatic_matches_stream_order(const DecodeConfig& c, std::uint64_t seed) {
  const auto [programmatic, ordered] = run_on_and_off(c, seed, "FLASHATTN_DECODE_PDL");
  EXPECT_TRUE(same_bits(programmatic.out, ordered.out));
  EXPECT_TRUE(same_bits(programmatic.lse, ordered.lse));
}

}  // namespace
// The splits' merge through a cluster's shared memory (sm_90) and through global memory, each
// required in turn (FLASHATTN_DECODE_CLUSTER_MERGE=1 / 0), against the oracle and each other:
// 2 to 16 splits (the cluster limit), empty splits (16 splits of a short cache), one and four
// 16-row tiles per CTA, head dims padded inside the tile, options on, and the small tiers.
TEST(CudaDecode, ClusterMergeMatchesTheMemoryMerge) {
  FLASHATTN_REQUIRE_GPU();
  int major = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), cudaSuccess);
  if (major != 9) GTEST_SKIP() << "thread-block clusters with 16 CTAs need a Hopper GPU";
  const std::uint64_t seed0 = fresh_seed();
  int it = 0;
  for (std::size_t limit : {std::size_t(0), std::size_t(101376)})
    for (int d : {64, 128, 200, 256})
      for (int splits : {2, 5, 16})
        for (int sq : {1, 16}) {
          if (limit > 0 && d != 128) continue;
          SmemLimit scoped_limit(limit);
          DecodeConfig c;
          c.dtype = it % 2 ? DType::f16 : DType::bf16;
          c.batch = 2, c.heads_q = 8, c.heads_kv = 2, c.head_dim = d, c.seqlen_q = sq;
          c.max_cache = it % 3 == 2 ? 150 : 2600;  // 150 keys in 16 splits: most are empty
          c.seqlen_new = it % 5 == 1 ? sq : 0;
          c.layout = it % 2 ? Layout::paged : Layout::contiguous;
          c.block_size = it % 4 == 1 ? 16 : 256;
          c.causal = true;
          c.softcap = it % 4 == 1 ? 8.f : 0.f;
          c.alibi = it % 4 == 2;
          if (it % 4 == 3) c.window_left = 300, c.window_right = 0;
          c.num_splits = splits;
          SCOPED_TRACE("limit " + std::to_string(limit) + " head_dim " + std::to_string(d) + " splits " +
                       std::to_string(splits) + " seqlen_q " + std::to_string(sq));
          const auto [in_cluster, in_memory] = run_on_and_off(c, seed0 + it++, "FLASHATTN_DECODE_CLUSTER_MERGE");
          EXPECT_LE(max_ulps_apart(in_cluster.out, in_memory.out, c.dtype), 2.0);
          EXPECT_LE(max_ulps_apart(in_cluster.lse, in_memory.lse, DType::f32), 64.0);
        }
}

// More splits than a cluster holds: with the cluster merge required, a clear error before
// anything runs; left to the engine, the memory merge.
TEST(CudaDecode, ClusterMergeRequiredPastItsLimitIsAClearError) {
  FLASHATTN_REQUIRE_GPU();
  DecodeConfig c;
  c.head_dim = 128, c.seqlen_new = 1, c.max_cache = 3000, c.num_splits = 17;
  std::mt19937_64 rng(fresh_seed());
  DecodeCase dc(c, rng);
  {
    ScopedEnv mode("FLASHATTN_DECODE_CLUSTER_MERGE", "1");
    expect_unsupported_writing_nothing(dc, "num_splits");
  }
  ScopedEnv mode("FLASHATTN_DECODE_CLUSTER_MERGE", std::nullopt);
  run_gpu(dc);
  dc.check("17 splits");
}

// On sm_90 unsplit decode calls launch programmatically (decode_l2_prefetch.cuh): their kernels
// prefetch while the grid before them runs and wait for it before reading. Stream order
// (FLASHATTN_DECODE_PDL=0) must give the same bits: the prefetch changes no value. These grids
// are small, so FLASHATTN_DECODE_PDL=1 asks for the programmatic launch that the engine keeps for
// large ones by default. (Case 1 is split, merged through memory.)
TEST(CudaDecode, ProgrammaticLaunchIsBitIdenticalToStreamOrder) {
  FLASHATTN_REQUIRE_GPU();
  const std::uint64_t seed0 = fresh_seed();
  for (int it = 0; it < 4; ++it) {
    DecodeConfig c;
    c.dtype = it % 2 ? DType::f16 : DType::bf16;
    c.batch = 3, c.heads_q = 8, c.heads_kv = 2, c.head_dim = it == 3 ? 256 : 128, c.seqlen_q = it == 2 ? 4 : 1;
    c.max_cache = it == 1 ? 700 : 5000;
    c.seqlen_new = it >= 2 ? c.seqlen_q : 0;
    c.rotary_dim = it == 2 ? 64 : 0;
    c.layout = it % 2 ? Layout::paged : Layout::contiguous;
    c.block_size = it == 1 ? 16 : 256;
    c.causal = true;
    c.num_splits = it == 1 ? 5 : 1;
    SCOPED_TRACE("case " + std::to_string(it));
    expect_programmatic_matches_stream_order(c, seed0 + it);
  }
}

// An unsplit grid of more than one wave of the one-CTA-per-SM tile runs on the two-per-SM tile
// where that packs it as tightly (prefer_smaller_tile; head dim 128 on Hopper): such grids (a few
// CTAs past one per SM, and four per SM less two) against the oracle, launched programmatically
// and in stream order with the same bits.
TEST(CudaDecode, SeveralWaveGridsMatchTheOracle) {
  FLASHATTN_REQUIRE_GPU();
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  const std::uint64_t seed0 = fresh_seed();
  for (int it = 0; it < 2; ++it) {
    DecodeConfig c;
    c.dtype = it ? DType::f16 : DType::bf16;
    c.heads_q = 8, c.heads_kv = 2, c.head_dim = it ? 120 : 128, c.seqlen_q = 1;
    c.batch = it ? 2 * sms - 1 : sms / 2 + 3;  // 4 * sms - 2 or sms + 6 (sms + 5) CTAs
    c.max_cache = 700;
    c.layout = it ? Layout::paged : Layout::contiguous;
    c.block_size = 16;
    c.causal = true;
    c.num_splits = 0;  // the engine's choice: no split for grids this large
    SCOPED_TRACE("case " + std::to_string(it));
    expect_programmatic_matches_stream_order(c, seed0 + it);
  }
}

// A programmatic decode call starts while the call before it still runs (a programmatic decode
// grid lets its dependents start at once). Call A's output, poisoned before A, is call B's query and its
// appended key: B's append and attention kernels must each wait for A before reading it. A is
// long (16 CTAs streaming 24k keys each) so that B's CTAs are resident, on the SMs A leaves
// idle, for most of A's run; a missing wait reads the poison (NaN) or a half-written row.
// (FLASHATTN_DECODE_PDL=1: by default grids this small launch in stream order.) B runs unsplit
// and split.
TEST(CudaDecode, ProgrammaticLaunchWaitsForTheGridBefore) {
  FLASHATTN_REQUIRE_GPU();
  ScopedEnv programmatic("FLASHATTN_DECODE_PDL", "1");
  ScopedEnv memory_merge("FLASHATTN_DECODE_CLUSTER_MERGE", "0");
  for (int b_splits : {1, 4}) {  // B unsplit, and B split (its parts merged through memory)
    SCOPED_TRACE("B with " + std::to_string(b_splits) + " splits");
    const std::uint64_t seed = fresh_seed();
    DecodeConfig ca;
    ca.dtype = DType::bf16;
    ca.batch = 2, ca.heads_q = 8, ca.heads_kv = 8, ca.head_dim = 128, ca.seqlen_q = 1;
    ca.cache_seqlens = {24000, 23000};
    ca.causal = true, ca.num_splits = 1;
    DecodeConfig cb = ca;
    cb.cache_seqlens = {3000, 1};
    cb.seqlen_new = 1;
    cb.num_splits = b_splits;
    std::mt19937_64 rng(seed);
    DecodeCase a(ca, rng);
    DecodeCase b(cb, rng);
    Mirror ma, mb;
    run_gpu(a);  // A's output, once, for B's expected values
    a.check("A");
    b.q = a.out, b.k_new = a.out;
    b.build_expected();
    const HostTensor a_out = a.out;
    // B's query and new key are A's output buffer on the device; everything else B's own, made
    // (and uploaded) before the timed chain.
    auto b_view = [&](const HostTensor& h) { return &h == &b.q || &h == &b.k_new ? ma(a.out) : mb(h); };
    (void)ma(a.out);
    for (const HostTensor* h : {&a.q, &a.k_cache, &a.v_cache, &a.cache_seqlens, &a.lse}) (void)ma(*h);
    for (const HostTensor* h : {&b.out, &b.lse, &b.k_cache, &b.v_cache, &b.v_new, &b.cache_seqlens}) (void)mb(*h);
    cudaStream_t st;
    ASSERT_EQ(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), cudaSuccess);
    for (int round = 0; round < 3; ++round) {
      b.k_cache = b.k_cache_before, b.v_cache = b.v_cache_before;
      mb.upload(b.k_cache), mb.upload(b.v_cache);
      ASSERT_EQ(cudaMemsetAsync(ma(a.out).data, 0xff, a.out.bytes(), st), cudaSuccess);  // NaN in bf16
      ASSERT_EQ(cudaMemsetAsync(mb(b.out).data, 0xff, b.out.bytes(), st), cudaSuccess);
      a.run(std::ref(ma), st);
      b.run(b_view, st);
      ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
      ma.download(a.out);
      EXPECT_TRUE(same_bits(a.out, a_out));
      mb.download(b.out), mb.download(b.lse), mb.download(b.k_cache), mb.download(b.v_cache);
      b.check("B after A, round " + std::to_string(round));
    }
    cudaStreamDestroy(st);
  }
}

}  // namespace flashattn::testing
