// The CPU backward's plans (cpu/backward_plan.hpp): each forced in turn on the shapes where
// they differ most (GQA groups sharing dK / dV, ragged varlen, masks, dropout), the automatic
// choice, its scratch, and the error for an unknown forced plan.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "common/attention_case.hpp"
#include "cpu/backward_plan.hpp"
#include "cpu/scratch_stats.hpp"
#include "cpu/thread_pool.hpp"

namespace flashattn::testing {
namespace {

// Sets FLASHATTN_CPU_BACKWARD for one scope.
class ForcedPlan {
 public:
  explicit ForcedPlan(const char* plan) { setenv("FLASHATTN_CPU_BACKWARD", plan, 1); }
  ~ForcedPlan() { unsetenv("FLASHATTN_CPU_BACKWARD"); }
};

std::vector<CaseSpec> plan_specs() {
  std::vector<CaseSpec> specs;
  CaseSpec gqa;  // three q heads per kv head, odd lengths, causal with more keys than rows
  gqa.dtype = DType::bf16;
  gqa.head_dim = 72;
  gqa.batch = 2;
  gqa.seqlen_q = 77;
  gqa.seqlen_k = 141;
  gqa.heads_q = 6;
  gqa.heads_kv = 2;
  gqa.causal = true;
  specs.push_back(gqa);
  CaseSpec all = gqa;  // every option at once, MQA, fp16
  all.dtype = DType::f16;
  all.head_dim = 40;
  all.heads_q = 3;
  all.heads_kv = 1;
  all.causal = false;
  all.window_left = 50;
  all.window_right = 9;
  all.softcap = 12.f;
  all.alibi = true;
  all.dropout_p = 0.2f;
  specs.push_back(all);
  CaseSpec ragged;  // varlen: one_pass sizes its dQ rows by the longest sequence
  ragged.dtype = DType::f32;
  ragged.head_dim = 64;
  ragged.heads_q = 4;
  ragged.heads_kv = 2;
  ragged.varlen_q = {1, 130, 65, 0};
  ragged.varlen_k = {70, 130, 200, 3};
  ragged.batch = 4;
  ragged.causal = true;
  specs.push_back(ragged);
  return specs;
}

// Forced plans: whole (batch, kv head) items, key chunks (3, and more chunks than some
// sequences have key tiles), two passes.
constexpr const char* kPlans[] = {"one_pass:1", "one_pass:3", "one_pass:40", "two_pass"};

TEST(CpuBackwardPlan, EachPlanMatchesTheOracle) {
  for (const CaseSpec& s : plan_specs())
    for (const char* plan : kPlans) {
      SCOPED_TRACE(s.name() + " plan " + plan);
      AttentionCase c(s);
      c.run_forward();
      ForcedPlan forced(plan);
      c.run_backward();
      c.expect_backward_matches_oracle();
      EXPECT_EQ(detail::last_cpu_scratch().dq_row_bytes != 0, std::string(plan) != "two_pass");
    }
}

TEST(CpuBackwardPlan, EachPlanIsDeterministic) {
  CaseSpec s = plan_specs()[0];
  for (const char* plan : kPlans) {
    SCOPED_TRACE(plan);
    AttentionCase c(s);
    c.run_forward();
    ForcedPlan forced(plan);
    c.run_backward();
    const auto dq = c.dq.to_double(), dk = c.dk.to_double(), dv = c.dv.to_double();
    c.dq.poison();
    c.dk.poison();
    c.dv.poison();
    c.run_backward();
    EXPECT_EQ(dq, c.dq.to_double());
    EXPECT_EQ(dk, c.dk.to_double());
    EXPECT_EQ(dv, c.dv.to_double());
  }
}

TEST(CpuBackwardPlan, AutomaticChoiceBalancesItemsOverTheWorkers) {
  CaseSpec s;
  s.head_dim = 64;
  s.seqlen_q = s.seqlen_k = 100;  // two key tiles
  AttentionCase c(s);
  detail::AttentionParams p = c.oracle_params();
  const auto plan_for = [&](int batch, int heads_kv, int workers) {
    p.batch = batch;
    p.heads_kv = heads_kv;
    p.heads_q = 2 * heads_kv;
    const detail::BackwardPlan plan = detail::choose_backward_plan(p, workers);
    return plan.pass == detail::BackwardPass::two ? 0 : plan.kv_chunks;  // 0: two passes
  };
  EXPECT_EQ(plan_for(1, 2, 2), 1);   // whole (batch, kv head) items balance
  EXPECT_EQ(plan_for(5, 2, 2), 1);
  EXPECT_EQ(plan_for(16, 1, 16), 1);
  EXPECT_EQ(plan_for(1, 1, 2), 2);   // one item, two workers: key chunks (both of its tiles)
  EXPECT_EQ(plan_for(3, 1, 2), 2);   // 3 items over 2 workers (1.33): chunks
  p.seqlen_k = 1000;                 // 16 key tiles
  EXPECT_EQ(plan_for(1, 1, 2), 8);   // ~4 items per worker
  EXPECT_EQ(plan_for(5, 1, 4), 4);   // 5 items over 4 workers: 4 chunks each
  p.seqlen_k = 64;                   // one key tile: nothing to chunk
  EXPECT_EQ(plan_for(1, 1, 2), 0);
  p.seqlen_k = 1000;
  p.seqlen_q = 1 << 17;              // group 2 x 128k rows x 64 x 4 B = 64 MiB of dQ rows per item:
  EXPECT_EQ(plan_for(16, 1, 8), 1);  // 512 MiB over 8 workers fits,
  EXPECT_EQ(plan_for(32, 1, 32), 0); // 2 GiB over 32 does not, nor do 4 chunks of 32 items
  p.seqlen_q = 1 << 20;              // 512 MiB of dQ rows per item
  EXPECT_EQ(plan_for(16, 1, 16), 0);
}

TEST(CpuBackwardPlan, OnePassScratchIsTilesPlusDqRows) {
  std::size_t tile_bytes[2] = {};
  int i = 0;
  const std::size_t workers = detail::ThreadPool::instance().size();
  for (int n : {256, 1024}) {
    CaseSpec s;
    s.dtype = DType::f16;
    s.head_dim = 128;
    s.heads_q = 4;
    s.heads_kv = 2;
    s.seqlen_q = s.seqlen_k = n;
    AttentionCase c(s);
    c.run_forward();
    const std::size_t item = sizeof(float) * 2 * n * 128;  // group x N x D: O(N d), not O(N^2)
    {
      ForcedPlan forced("one_pass:1");
      c.run_backward();
      const auto st = detail::last_cpu_scratch();
      EXPECT_EQ(st.dq_row_bytes, workers * item);  // one set of rows per worker
      EXPECT_EQ(st.row_stat_bytes, sizeof(float) * n * 4);
      tile_bytes[i++] = st.per_worker_bytes;
    }
    ForcedPlan forced("one_pass:3");
    c.run_backward();
    EXPECT_EQ(detail::last_cpu_scratch().dq_row_bytes, 2 * 3 * item);  // per (kv head, key chunk)
  }
  EXPECT_EQ(tile_bytes[0], tile_bytes[1]);
}

TEST(CpuBackwardPlan, UnknownForcedPlanIsAnErrorAndWritesNothing) {
  AttentionCase c(plan_specs()[0]);
  c.run_forward();
  ForcedPlan forced("one_pass:0");
  try {
    c.run_backward();
    FAIL() << "expected flashattn::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "FLASHATTN_CPU_BACKWARD");
    EXPECT_NE(std::string(e.what()).find("one_pass:0"), std::string::npos);
  }
  for (const HostTensor* t : {&c.dq, &c.dk, &c.dv})
    for (double x : t->to_double()) ASSERT_TRUE(std::isnan(x));
}

}  // namespace
}  // namespace flashattn::testing
