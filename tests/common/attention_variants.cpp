#include "common/attention_variants.hpp"

#include <algorithm>

namespace flashattn::testing {

const char* variant_name(Variant v) {
  switch (v) {
    case Variant::plain: return "plain";
    case Variant::causal: return "causal";
    case Variant::window: return "window";
    case Variant::softcap: return "softcap";
    case Variant::alibi: return "alibi";
    case Variant::dropout: return "dropout";
    case Variant::gqa: return "gqa";
    case Variant::combo: return "mqa_causal_alibi_softcap_dropout";
  }
  return "?";
}

CaseSpec make_spec(DType t, int d, int sq, int sk, Variant v) {
  CaseSpec s;
  s.dtype = t;
  s.head_dim = d;
  s.seqlen_q = sq;
  s.seqlen_k = sk;
  s.batch = sq * sk > 100000 ? 1 : 2;
  switch (v) {
    case Variant::plain: break;
    case Variant::causal: s.causal = true; break;
    case Variant::window:
      s.window_left = std::max(1, sk / 5);
      s.window_right = std::max(0, sk / 9);
      break;
    case Variant::softcap: s.softcap = 2.0f; break;
    case Variant::alibi: s.alibi = true; break;
    case Variant::dropout: s.dropout_p = 0.17f; break;
    case Variant::gqa:
      s.heads_q = 4;
      s.heads_kv = 2;
      break;
    case Variant::combo:
      s.heads_q = 3;
      s.heads_kv = 1;
      s.causal = true;
      s.alibi = true;
      s.softcap = 3.0f;
      s.dropout_p = 0.1f;
      break;
  }
  return s;
}

std::string matrix_param_name(const ::testing::TestParamInfo<MatrixParam>& info) {
  auto [t, d, seq, v] = info.param;
  return std::string(dtype_name(t)) + "_d" + std::to_string(d) + "_sq" + std::to_string(seq.first) + "_sk" +
         std::to_string(seq.second) + "_" + variant_name(v);
}

CaseSpec make_varlen_spec(DType t, int d, Variant v, std::vector<int> q_lens, std::vector<int> k_lens) {
  CaseSpec s = make_spec(t, d, 1, 1, v);
  s.varlen_q = std::move(q_lens);
  s.varlen_k = std::move(k_lens);
  s.batch = static_cast<int>(s.varlen_q.size());
  return s;
}

}  // namespace flashattn::testing
