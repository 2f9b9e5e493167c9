// CPU decode engine against the fp64 oracle, for every option; paged and contiguous
// caches give bit-identical results; split and unsplit runs agree within rounding;
// invalid calls name the argument and write nothing.
#include <gtest/gtest.h>

#include "cpu/decode_case.hpp"

namespace flashattn::testing {
namespace {

using Layout = DecodeConfig::Layout;

TensorView host_view(const HostTensor& t) { return t.view(); }

void run_and_check(const DecodeConfig& cfg, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  DecodeCase dc(cfg, rng);
  dc.run(host_view);
  dc.check("cpu seed=" + std::to_string(seed));
}

TEST(CpuDecode, EveryDtypeAndLayout) {
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    for (Layout l : {Layout::contiguous, Layout::batch_idx, Layout::paged})
      for (int sq : {1, 3, 16}) {
        DecodeConfig c;
        c.dtype = t;
        c.layout = l;
        c.seqlen_q = sq;
        c.batch = 3;
        c.heads_q = 6;
        c.heads_kv = 2;
        c.head_dim = 40;  // not a power of two
        c.block_size = 7;
        run_and_check(c, fresh_seed());
      }
}

TEST(CpuDecode, AppendRotaryAndMasks) {
  const std::uint64_t seed0 = fresh_seed();
  std::mt19937_64 pick(seed0);
  for (int it = 0; it < 60; ++it) {
    DecodeConfig c;
    c.dtype = it % 3 == 0 ? DType::f16 : (it % 3 == 1 ? DType::bf16 : DType::f32);
    c.batch = 1 + static_cast<int>(pick() % 3);
    c.heads_kv = 1 + static_cast<int>(pick() % 3);
    c.heads_q = c.heads_kv * (1 + static_cast<int>(pick() % 4));
    c.head_dim = 8 * (1 + static_cast<int>(pick() % 12));
    c.seqlen_q = 1 + static_cast<int>(pick() % 16);
    c.seqlen_new = static_cast<int>(pick() % 2) ? c.seqlen_q : static_cast<int>(pick() % 5);
    c.layout = static_cast<Layout>(pick() % 3);
    c.block_size = 1 + static_cast<int>(pick() % 20);
    c.max_cache = static_cast<int>(pick() % 2) ? 150 : 5;
    if (c.seqlen_new > 0 && pick() % 2) {
      c.rotary_dim = 2 * (1 + static_cast<int>(pick() % (c.head_dim / 2)));
      c.interleaved = pick() % 2;
      c.rotary_table_in_dtype = c.dtype != DType::f32 && pick() % 3 == 0;
    }
    switch (pick() % 4) {
      case 0: c.causal = true; break;
      case 1: c.window_left = static_cast<int>(pick() % 40); c.window_right = static_cast<int>(pick() % 3) - 1; break;
      case 2: c.causal = true; c.window_left = static_cast<int>(pick() % 30); break;
      default: break;
    }
    if (pick() % 3 == 0) c.softcap = 5.f;
    c.alibi = pick() % 3 == 0;
    c.with_lse = pick() % 4 != 0;
    c.num_splits = 1 + static_cast<int>(pick() % 4);
    run_and_check(c, seed0 + 1000 + it);
  }
}

TEST(CpuDecode, EmptyRowsAndEmptyCache) {
  DecodeConfig c;
  c.dtype = DType::bf16;
  c.cache_seqlens = {0, 2, 0};
  c.batch = 3;
  c.seqlen_q = 5;
  c.causal = true;  // rows that see no key: O = 0, LSE = -inf
  run_and_check(c, fresh_seed());
  c.seqlen_new = 1;
  c.rotary_dim = 16;
  run_and_check(c, fresh_seed());
}

TEST(CpuDecode, PagedIsBitIdenticalToContiguous) {
  for (int bs : {1, 5, 16, 64}) {
    DecodeConfig c;
    c.dtype = DType::bf16;
    c.batch = 3, c.seqlen_q = 4, c.heads_q = 8, c.heads_kv = 2, c.head_dim = 64;
    c.seqlen_new = 4, c.rotary_dim = 32, c.causal = true, c.softcap = 10.f, c.alibi = true;
    c.layout = Layout::paged, c.block_size = bs, c.max_cache = 300, c.num_splits = 3;
    std::mt19937_64 rng(fresh_seed());
    DecodeCase paged(c, rng);
    DecodeCase contig = paged.contiguous_twin(rng);
    paged.run(host_view);
    contig.run(host_view);
    paged.check("paged");
    EXPECT_TRUE(same_bits(paged.out, contig.out)) << "block_size " << bs;
    EXPECT_TRUE(same_bits(paged.lse, contig.lse)) << "block_size " << bs;
  }
}

TEST(CpuDecode, SplitMatchesUnsplit) {
  for (int splits : {2, 5, 17}) {
    DecodeConfig c;
    c.dtype = DType::f16;
    c.batch = 2, c.seqlen_q = 2, c.heads_q = 4, c.heads_kv = 1, c.head_dim = 64, c.max_cache = 700;
    c.causal = true, c.num_splits = 1;
    std::mt19937_64 rng(fresh_seed());
    DecodeCase one(c, rng);
    DecodeCase many = one;
    many.c.num_splits = splits;
    one.run(host_view);
    many.run(host_view);
    many.check("split");
    EXPECT_LE(max_ulps_apart(one.out, many.out, c.dtype), 2.0) << splits << " splits";
    EXPECT_LE(max_ulps_apart(one.lse, many.lse, DType::f32), 64.0) << splits << " splits";
  }
}

// ---------------------------------------------------------------- validation

struct BadCall {
  const char* argument;
  std::function<void(DecodeCase&, KVCacheInputs&, KVCacheOptions&, TensorView& q, TensorView& kc, TensorView& out)> mutate;
};

TEST(CpuDecode, RejectsBadArgumentsAndWritesNothing) {
  DecodeConfig c;
  c.dtype = DType::bf16;
  c.batch = 2, c.seqlen_q = 2, c.seqlen_new = 2, c.rotary_dim = 16, c.layout = Layout::paged, c.block_size = 4;
  c.max_cache = 20;
  std::mt19937_64 rng(fresh_seed());
  const std::vector<BadCall> bad = {
      {"q", [](auto&, auto&, auto&, TensorView& q, auto&, auto&) { q.dtype = DType::i32; }},
      {"k_cache", [](auto&, auto&, auto&, auto&, TensorView& kc, auto&) { kc.sizes[3] = 32; }},
      {"cache_seqlens", [](auto& d, auto& in, auto&, auto&, auto&, auto&) { in.cache_seqlens = TensorView{}; }},
      {"cache_seqlens", [](auto& d, auto&, auto&, auto&, auto&, auto&) { d.cache_seqlens.set(1, 1e6f); }},
      {"cache_seqlens", [](auto& d, auto&, auto&, auto&, auto&, auto&) { d.cache_seqlens.set(0, -1.f); }},
      {"block_table", [](auto& d, auto&, auto&, auto&, auto&, auto&) { d.block_table.set(0, 1e5f); }},
      {"cache_batch_idx", [](auto& d, auto& in, auto&, auto&, auto&, auto&) { in.cache_batch_idx = d.cache_seqlens.view(); }},
      {"k_new", [](auto&, auto& in, auto&, auto&, auto&, auto&) { in.k_new.sizes[2] = 7; }},
      {"v_new", [](auto&, auto& in, auto&, auto&, auto&, auto&) { in.v_new = TensorView{}; }},
      {"rotary_cos", [](auto&, auto& in, auto&, auto&, auto&, auto&) { in.rotary_cos.dtype = DType::i32; }},
      {"rotary_sin", [](auto&, auto& in, auto&, auto&, auto&, auto&) { in.rotary_sin = TensorView{}; }},
      {"out", [](auto&, auto&, auto&, auto&, auto&, TensorView& out) { out.sizes[1] = 1; }},
      {"out", [](auto&, auto&, auto&, TensorView& q, auto&, TensorView& out) { out.data = q.data; }},
      {"dropout_p", [](auto&, auto&, auto& o, auto&, auto&, auto&) { o.dropout_p = 0.1f; }},
      {"num_splits", [](auto&, auto&, auto& o, auto&, auto&, auto&) { o.num_splits = 1000; }},
      {"window_left", [](auto&, auto&, auto& o, auto&, auto&, auto&) { o.window_left = -5; }},
  };
  for (const BadCall& bc : bad) {
    DecodeCase d(c, rng);
    KVCacheInputs in;
    in.cache_seqlens = d.cache_seqlens.view();
    in.k_new = d.k_new.view(), in.v_new = d.v_new.view();
    in.rotary_cos = d.rot_cos.view(), in.rotary_sin = d.rot_sin.view();
    in.block_table = d.block_table.view();
    KVCacheOptions o = d.options();
    TensorView q = d.q.view(), kc = d.k_cache.view(), out = d.out.view();
    bc.mutate(d, in, o, q, kc, out);
    const HostTensor out_before = d.out;
    try {
      forward_with_kvcache(q, kc, d.v_cache.view(), in, out, d.lse.view(), o);
      ADD_FAILURE() << "no error for a bad " << bc.argument;
    } catch (const Error& e) {
      EXPECT_EQ(e.argument(), bc.argument) << e.what();
    }
    EXPECT_TRUE(same_bits(d.out, out_before)) << bc.argument;
    EXPECT_TRUE(same_bits(d.k_cache, d.k_cache_before)) << bc.argument;
    EXPECT_TRUE(same_bits(d.v_cache, d.v_cache_before)) << bc.argument;
  }
}

}  // namespace
}  // namespace flashattn::testing
