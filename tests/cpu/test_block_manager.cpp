// Block manager: a random property test against a simple model (thousands of allocate /
// append / append_tokens / fork / free steps) with token-specific values written into the
// cache slots, so copy-on-write and prefix sharing are checked on the data itself; plus
// out-of-blocks leaves the state unchanged, and the argument errors.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "common/test_tensors.hpp"
#include "flashattn/kvcache.hpp"

namespace flashattn::testing {
namespace {

// K/V caches of 2 heads x 2 dims, fp32: slot s holds (value, -value, value + 0.5, 7) in K and
// (2 value, ...) in V, value unique per written token (or its token id for shared prefixes).
struct Cache {
  int num_blocks, block_size;
  std::vector<float> k, v;
  Cache(int nb, int bs) : num_blocks(nb), block_size(bs), k(static_cast<std::size_t>(nb) * bs * 4, NAN), v(k.size(), NAN) {}
  TensorView kv(std::vector<float>& x) { return TensorView(x.data(), DType::f32, {num_blocks, block_size, 2, 2}); }
  void write(std::int64_t slot, float value) {
    float* a = &k[static_cast<std::size_t>(slot) * 4];
    float* b = &v[static_cast<std::size_t>(slot) * 4];
    a[0] = value, a[1] = -value, a[2] = value + 0.5f, a[3] = 7.f;
    b[0] = 2 * value, b[1] = -2 * value, b[2] = 2 * value + 0.5f, b[3] = 9.f;
  }
  bool holds(std::int64_t slot, float value) const {
    const float* a = &k[static_cast<std::size_t>(slot) * 4];
    const float* b = &v[static_cast<std::size_t>(slot) * 4];
    return a[0] == value && a[1] == -value && a[2] == value + 0.5f && a[3] == 7.f && b[0] == 2 * value &&
           b[1] == -2 * value && b[2] == 2 * value + 0.5f && b[3] == 9.f;
  }
};

struct ModelSeq {
  std::vector<float> values;  // per position
};

struct Snapshot {
  std::map<BlockManager::SeqId, std::vector<std::int32_t>> tables;
  std::vector<int> refs;
  BlockManager::Stats stats;
  bool operator==(const Snapshot& o) const {
    return tables == o.tables && refs == o.refs && stats.used == o.stats.used && stats.free == o.stats.free &&
           stats.shared == o.stats.shared;
  }
};

Snapshot snapshot(const BlockManager& bm, const std::map<BlockManager::SeqId, ModelSeq>& model) {
  Snapshot s;
  for (auto& [id, _] : model) {
    auto t = bm.block_table(id);
    s.tables[id] = {t.begin(), t.end()};
  }
  for (int b = 0; b < bm.num_blocks(); ++b) s.refs.push_back(bm.ref_count(b));
  s.stats = bm.stats();
  return s;
}

void check_invariants(const BlockManager& bm, const std::map<BlockManager::SeqId, ModelSeq>& model, const Cache& cache,
                      int step) {
  std::vector<int> expect_refs(static_cast<std::size_t>(bm.num_blocks()), 0);
  for (auto& [id, m] : model) {
    ASSERT_EQ(bm.num_tokens(id), static_cast<std::int64_t>(m.values.size())) << "step " << step;
    auto table = bm.block_table(id);
    ASSERT_EQ(table.size(), (m.values.size() + bm.block_size() - 1) / bm.block_size()) << "step " << step;
    for (std::int32_t b : table) ++expect_refs[static_cast<std::size_t>(b)];
    for (std::size_t p = 0; p < m.values.size(); ++p) {
      const std::int64_t slot = static_cast<std::int64_t>(table[p / bm.block_size()]) * bm.block_size() + p % bm.block_size();
      ASSERT_TRUE(cache.holds(slot, m.values[p])) << "step " << step << ": seq " << id << " position " << p
                                                  << " lost its value " << m.values[p];
    }
  }
  int used = 0, shared = 0;
  for (int b = 0; b < bm.num_blocks(); ++b) {
    ASSERT_EQ(bm.ref_count(b), expect_refs[static_cast<std::size_t>(b)]) << "step " << step << " block " << b;
    used += expect_refs[static_cast<std::size_t>(b)] > 0;
    shared += expect_refs[static_cast<std::size_t>(b)] > 1;
  }
  const auto st = bm.stats();
  ASSERT_EQ(st.used, used) << "step " << step;
  ASSERT_EQ(st.shared, shared) << "step " << step;
  ASSERT_EQ(st.free, bm.num_blocks() - used) << "step " << step << ": leak or double free";
}

TEST(BlockManager, RandomOperationsMatchModel) {
  const std::uint64_t seed = fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int bs : {1, 3, 16}) {
    const int num_blocks = bs == 1 ? 400 : 120;
    Cache cache(num_blocks, bs);
    BlockManager bm(num_blocks, bs);
    bm.attach_cache(cache.kv(cache.k), cache.kv(cache.v));
    std::map<BlockManager::SeqId, ModelSeq> model;
    std::map<BlockManager::SeqId, std::vector<std::int32_t>> token_ids;  // sequences built by append_tokens only
    // A few prompt templates so that prefix sharing finds matches.
    std::vector<std::vector<std::int32_t>> templates(3);
    for (auto& t : templates)
      for (int i = 0; i < 50; ++i) t.push_back(static_cast<std::int32_t>(rng() % 1000));
    float next_value = 1.f;
    int out_of_blocks = 0, shared_hits = 0;
    auto pick_seq = [&]() {
      auto it = model.begin();
      std::advance(it, static_cast<long>(rng() % model.size()));
      return it->first;
    };
    auto write_append = [&](BlockManager::SeqId id, const BlockManager::Append& a, const std::vector<float>& values) {
      ASSERT_EQ(a.slots.size(), values.size());
      for (std::size_t i = 0; i < values.size(); ++i) {
        if (static_cast<int>(i) < a.cached_tokens) {
          ASSERT_TRUE(cache.holds(a.slots[i], values[i])) << "shared prefix block holds the wrong token";
        } else {
          cache.write(a.slots[i], values[i]);
        }
        model[id].values.push_back(values[i]);
      }
    };
    for (int step = 0; step < 4000; ++step) {
      const int op = model.empty() ? 0 : static_cast<int>(rng() % 10);
      if (op == 0 || (op == 1 && model.size() < 3)) {  // new sequence from a template prefix + tail
        const auto id = bm.allocate();
        model[id];
        token_ids[id];
        const auto& t = templates[rng() % templates.size()];
        std::vector<std::int32_t> ids(t.begin(), t.begin() + static_cast<long>(rng() % t.size()));
        for (int i = static_cast<int>(rng() % 4); i > 0; --i) ids.push_back(static_cast<std::int32_t>(1000 + rng() % 50));
        const Snapshot before = snapshot(bm, model);
        try {
          const auto a = bm.append_tokens(id, ids);
          shared_hits += a.cached_tokens > 0;
          // Token-determined values: a prefix-shared block must hold exactly these.
          std::vector<float> values;
          for (std::size_t i = 0; i < ids.size(); ++i) values.push_back(static_cast<float>(-(ids[i] + 1) * 4096 - i));
          write_append(id, a, values);
          token_ids[id].insert(token_ids[id].end(), ids.begin(), ids.end());
        } catch (const Error& e) {
          ++out_of_blocks;
          ASSERT_TRUE(snapshot(bm, model) == before) << "failed append changed the state";
        }
      } else if (op <= 4) {  // append unique values
        const auto id = pick_seq();
        const int n = 1 + static_cast<int>(rng() % (3 * bs + 2));
        const Snapshot before = snapshot(bm, model);
        const int need = bm.blocks_needed(id, n);
        try {
          const auto a = bm.append(id, n);
          ASSERT_LE(need, before.stats.free);
          std::vector<float> values;
          for (int i = 0; i < n; ++i) values.push_back(next_value++);
          write_append(id, a, values);
          token_ids.erase(id);
        } catch (const Error& e) {
          ++out_of_blocks;
          ASSERT_GT(need, before.stats.free);
          ASSERT_TRUE(snapshot(bm, model) == before) << "failed append changed the state";
        }
      } else if (op == 5 && !token_ids.empty()) {  // continue a token sequence
        auto tit = token_ids.begin();
        std::advance(tit, static_cast<long>(rng() % token_ids.size()));
        const auto id = tit->first;
        std::vector<std::int32_t> ids;
        for (int i = static_cast<int>(1 + rng() % (2 * bs)); i > 0; --i) ids.push_back(static_cast<std::int32_t>(rng() % 1000));
        const Snapshot before = snapshot(bm, model);
        try {
          const auto a = bm.append_tokens(id, ids);
          std::vector<float> values;
          const std::size_t base = model[id].values.size();
          for (std::size_t i = 0; i < ids.size(); ++i) values.push_back(static_cast<float>(-(ids[i] + 1) * 4096 - (base + i)));
          write_append(id, a, values);
          token_ids[id].insert(token_ids[id].end(), ids.begin(), ids.end());
        } catch (const Error&) {
          ++out_of_blocks;
          ASSERT_TRUE(snapshot(bm, model) == before);
        }
      } else if (op <= 7) {  // fork
        const auto parent = pick_seq();
        const auto child = bm.fork(parent);
        model[child] = model[parent];
        if (token_ids.count(parent)) token_ids[child] = token_ids[parent];
      } else {  // free
        const auto id = pick_seq();
        bm.free(id);
        model.erase(id);
        token_ids.erase(id);
      }
      check_invariants(bm, model, cache, step);
      if (HasFatalFailure()) return;
    }
    for (auto& [id, _] : model) bm.free(id);
    EXPECT_EQ(bm.stats().free, num_blocks) << "blocks leaked";
    EXPECT_EQ(bm.stats().used, 0);
    EXPECT_GT(out_of_blocks, 0) << "the pool never ran out: the no-change-on-failure path was not exercised";
    EXPECT_GT(shared_hits, 0) << "prefix sharing never hit";
  }
}

TEST(BlockManager, ForkSharesAndCopyOnWriteCopiesOnce) {
  Cache cache(8, 4);
  BlockManager bm(8, 4);
  bm.attach_cache(cache.kv(cache.k), cache.kv(cache.v));
  const auto p = bm.allocate();
  const auto a = bm.append(p, 6);  // blocks 0 (full) and 1 (2 of 4)
  for (int i = 0; i < 6; ++i) cache.write(a.slots[i], static_cast<float>(i + 1));
  const auto c = bm.fork(p);
  EXPECT_EQ(bm.stats().shared, 2);
  EXPECT_EQ(bm.blocks_needed(c, 1), 1);  // copy-on-write of the partial block
  const auto ac = bm.append(c, 1);
  cache.write(ac.slots[0], 100.f);
  EXPECT_NE(bm.block_table(c)[1], bm.block_table(p)[1]);
  EXPECT_EQ(bm.block_table(c)[0], bm.block_table(p)[0]);
  EXPECT_TRUE(cache.holds(static_cast<std::int64_t>(bm.block_table(c)[1]) * 4 + 1, 6.f)) << "copy lost the parent's rows";
  EXPECT_EQ(bm.blocks_needed(p, 1), 0);  // the parent's block is private again
  const auto ap = bm.append(p, 1);
  cache.write(ap.slots[0], 200.f);
  EXPECT_TRUE(cache.holds(static_cast<std::int64_t>(bm.block_table(c)[1]) * 4 + 2, 100.f));
  EXPECT_TRUE(cache.holds(static_cast<std::int64_t>(bm.block_table(p)[1]) * 4 + 2, 200.f));
  bm.free(p);
  bm.free(c);
  EXPECT_EQ(bm.stats().free, 8);
}

TEST(BlockManager, PrefixSharingReusesFullBlocksOnly) {
  BlockManager bm(16, 4);
  const std::vector<std::int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  const auto s1 = bm.allocate();
  EXPECT_EQ(bm.append_tokens(s1, prompt).cached_tokens, 0);
  const auto s2 = bm.allocate();
  const auto a2 = bm.append_tokens(s2, prompt);
  EXPECT_EQ(a2.cached_tokens, 8);  // two full blocks; the partial third is private
  EXPECT_EQ(bm.block_table(s2)[0], bm.block_table(s1)[0]);
  EXPECT_EQ(bm.block_table(s2)[1], bm.block_table(s1)[1]);
  EXPECT_NE(bm.block_table(s2)[2], bm.block_table(s1)[2]);
  const auto s3 = bm.allocate();
  const std::vector<std::int32_t> other = {1, 2, 3, 4, 5, 6, 7, 99, 9};  // differs in block 1
  EXPECT_EQ(bm.append_tokens(s3, other).cached_tokens, 4);
  bm.free(s1);
  bm.free(s2);
  bm.free(s3);
  EXPECT_EQ(bm.stats().free, 16);
  // Freed blocks are forgotten: nothing to share any more.
  const auto s4 = bm.allocate();
  EXPECT_EQ(bm.append_tokens(s4, prompt).cached_tokens, 0);
}

TEST(BlockManager, OutOfBlocksIsAClearErrorAndChangesNothing) {
  BlockManager bm(3, 4);
  const auto s = bm.allocate();
  bm.append(s, 10);
  const auto f = bm.fork(s);
  try {
    bm.append(f, 7);  // copy-on-write (1) + 2 more blocks, only 0 free
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), Error::Kind::runtime);
    EXPECT_NE(std::string(e.what()).find("out of KV-cache blocks"), std::string::npos) << e.what();
  }
  EXPECT_EQ(bm.num_tokens(f), 10);
  EXPECT_EQ(bm.stats().used, 3);
  EXPECT_EQ(bm.stats().shared, 3);
  EXPECT_EQ(bm.ref_count(bm.block_table(f)[2]), 2);
}

TEST(BlockManager, ArgumentErrors) {
  EXPECT_THROW(BlockManager(0, 4), Error);
  EXPECT_THROW(BlockManager(4, 0), Error);
  BlockManager bm(4, 4);
  try {
    bm.append(42, 1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "seq");
  }
  const auto s = bm.allocate();
  EXPECT_THROW(bm.append(s, -1), Error);
  bm.free(s);
  EXPECT_THROW(bm.free(s), Error);  // double free is refused
  std::vector<float> wrong(4 * 4 * 2 * 2);
  EXPECT_THROW(bm.attach_cache(TensorView(wrong.data(), DType::f32, {3, 4, 2, 2}),
                               TensorView(wrong.data(), DType::f32, {3, 4, 2, 2})),
               Error);
}

}  // namespace
}  // namespace flashattn::testing
