// The sm80 backward's block order (src/cuda/sm80/bwd_block_order.hpp, host code): every block
// maps to a distinct (kv tile, pair); each pair's kv tiles start in increasing order (the
// deterministic dQ order relies on it); the grouped order starts the first kv tiles of a group
// before any later one; and the group size follows the q side's bytes.
#include <gtest/gtest.h>

#include <set>
#include <utility>
#include <vector>

#include "cuda/sm80/bwd_block_order.hpp"

namespace flashattn::detail::sm80_bwd {
namespace {

void expect_valid_order(int n_kv, int pairs, int group) {
  SCOPED_TRACE("n_kv " + std::to_string(n_kv) + ", pairs " + std::to_string(pairs) + ", group " +
               std::to_string(group));
  const BwdBlockOrder order{n_kv, pairs, group};
  std::set<std::pair<int, int>> seen;
  std::vector<int> last_tile(pairs, -1);
  int group_first = -1, group_tile = 0;
  for (std::uint32_t bid = 0; bid < std::uint32_t(n_kv) * pairs; ++bid) {
    int j = -1, pair = -1;
    order.coords(bid, j, pair);
    ASSERT_GE(j, 0);
    ASSERT_LT(j, n_kv);
    ASSERT_GE(pair, 0);
    ASSERT_LT(pair, pairs);
    EXPECT_TRUE(seen.insert({j, pair}).second) << "block " << bid << " repeats (" << j << ", " << pair << ")";
    EXPECT_EQ(j, last_tile[pair] + 1) << "pair " << pair << " skips or reorders kv tiles at block " << bid;
    last_tile[pair] = j;
    if (group == 0) {
      EXPECT_EQ(pair, int(bid) / n_kv);
      EXPECT_EQ(j, int(bid) % n_kv);
    } else {
      // Within a group the kv tile never decreases.
      const int first = pair / group * group;
      if (first != group_first) group_first = first, group_tile = 0;
      EXPECT_GE(j, group_tile) << "block " << bid;
      group_tile = j;
    }
  }
  EXPECT_EQ(seen.size(), std::size_t(n_kv) * pairs);
}

TEST(BwdBlockOrder, EveryBlockOnceAndKvTilesInOrder) {
  for (int n_kv : {1, 2, 7, 32})
    for (int pairs : {1, 3, 16, 33})
      for (int group : {0, 1, 2, 5, 16, 33}) {
        if (group > pairs) continue;
        expect_valid_order(n_kv, pairs, group);
      }
}

TEST(BwdBlockOrder, GroupedOrderStartsTheFirstKvTilesOfAGroupTogether) {
  const BwdBlockOrder order{4, 6, 4};  // groups of 4 pairs, then 2
  std::vector<std::pair<int, int>> got;
  for (std::uint32_t bid = 0; bid < 24; ++bid) {
    int j, pair;
    order.coords(bid, j, pair);
    got.push_back({j, pair});
  }
  const std::vector<std::pair<int, int>> want = {
      {0, 0}, {0, 1}, {0, 2}, {0, 3}, {1, 0}, {1, 1}, {1, 2}, {1, 3}, {2, 0}, {2, 1}, {2, 2}, {2, 3},
      {3, 0}, {3, 1}, {3, 2}, {3, 3}, {0, 4}, {0, 5}, {1, 4}, {1, 5}, {2, 4}, {2, 5}, {3, 4}, {3, 5}};
  EXPECT_EQ(got, want);
}

TEST(BwdBlockOrder, GroupSizeFollowsTheQSide) {
  constexpr std::size_t kL2 = 50u << 20;  // an H100 / H200: 132 SMs, one backward block each
  EXPECT_EQ(bwd_pair_group(false, 128, 16, 132, 1 << 19, kL2), 0);           // no mask: kv tile fastest
  EXPECT_EQ(bwd_pair_group(true, 1, 16, 132, 1 << 19, kL2), 0);              // one pair: nothing to order
  EXPECT_EQ(bwd_pair_group(true, 256, 8, 132, 1 << 19, kL2), 0);             // 1k rows, d128: 8 kv tiles, too few
  EXPECT_EQ(bwd_pair_group(true, 256, 15, 132, 1 << 19, kL2), 0);            // one under the least
  EXPECT_EQ(bwd_pair_group(true, 128, 16, 132, 1 << 20, kL2), 25);           // 1k rows, d256: 1 MiB a pair
  EXPECT_EQ(bwd_pair_group(true, 64, 32, 132, std::int64_t(2) << 20, kL2), 12);  // 4k rows: 2 MiB a pair
  EXPECT_EQ(bwd_pair_group(true, 32, 65, 132, std::int64_t(4) << 20, kL2), 6);   // 8k rows, 65 kv tiles
  EXPECT_EQ(bwd_pair_group(true, 32, 66, 132, std::int64_t(4) << 20, kL2), 0);   // a pair fills half the GPU
  EXPECT_EQ(bwd_pair_group(true, 16, 128, 132, std::int64_t(8) << 20, kL2), 0);  // 16k rows: a pair fills it
  EXPECT_EQ(bwd_pair_group(true, 4, 16, 132, std::int64_t(1) << 30, kL2), 1);    // more than L2: one pair
  EXPECT_EQ(bwd_pair_group(true, 8, 16, 132, 1024, kL2), 8);                     // all pairs fit: one group
}

}  // namespace
}  // namespace flashattn::detail::sm80_bwd
