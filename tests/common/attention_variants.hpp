// The option variants every engine's test matrix runs (plain, causal, window, softcap, ALiBi,
// dropout, GQA, and MQA with all options together), shared by the CPU and GPU suites so the
// engines are judged on the same cases.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/attention_case.hpp"

namespace flashattn::testing {

enum class Variant { plain, causal, window, softcap, alibi, dropout, gqa, combo };

inline constexpr Variant kAllVariants[] = {Variant::plain,   Variant::causal,  Variant::window, Variant::softcap,
                                           Variant::alibi,   Variant::dropout, Variant::gqa,    Variant::combo};

const char* variant_name(Variant v);

// A case of dtype t, head dim d, seqlens (sq, sk) with variant v's options.
CaseSpec make_spec(DType t, int d, int sq, int sk, Variant v);

// A varlen batch of variant v's options: sequence i has q_lens[i] queries and k_lens[i] keys
// (same count of each; zeros make empty sequences).
CaseSpec make_varlen_spec(DType t, int d, Variant v, std::vector<int> q_lens, std::vector<int> k_lens);

// (dtype, head dim, (seqlen_q, seqlen_k), variant) and its test name.
using MatrixParam = std::tuple<DType, int, std::pair<int, int>, Variant>;
std::string matrix_param_name(const ::testing::TestParamInfo<MatrixParam>& info);

}  // namespace flashattn::testing
