// Combines partial (O, LSE) states with the online-softmax merge, one row at a time.
#include <vector>

#include "core/online_softmax.hpp"
#include "cpu/cpu_engine.hpp"
#include "cpu/thread_pool.hpp"
#include "cpu/tile_loader.hpp"

namespace flashattn::detail {

void cpu_merge_states(const MergeParams& m) {
  const std::int64_t rows = static_cast<std::int64_t>(m.batch) * m.seqlen;
  ThreadPool::instance().parallel_for(rows, [&](std::int64_t r, int) {
    const int b = static_cast<int>(r / m.seqlen), i = static_cast<int>(r % m.seqlen);
    std::vector<float> acc(m.head_dim), part(m.head_dim);
    for (int h = 0; h < m.heads; ++h) {
      SoftmaxStats st;
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int k = 0; k < m.parts; ++k) {
        const float lse = m.lse_parts[k * m.lp_part_stride + b * m.lp_batch_stride + h * m.lp_head_stride +
                                      i * m.lp_row_stride];
        float mine, theirs;
        st.merge(SoftmaxStats::from_lse(lse), mine, theirs);
        if (theirs == 0.f) {
          for (auto& x : acc) x *= mine;
          continue;
        }
        convert_row(element_ptr(m.o_parts, m.o_parts_dtype,
                                k * m.op_part_stride + b * m.op_batch_stride + i * m.op_row_stride + h * m.op_head_stride),
                    m.o_parts_dtype, part.data(), m.head_dim);
        for (int d = 0; d < m.head_dim; ++d) acc[d] = acc[d] * mine + part[d] * theirs;
      }
      const float inv = st.inv_sum();
      for (auto& x : acc) x *= inv;
      store_row(acc.data(), m.out_dtype,
                element_ptr(m.out, m.out_dtype, b * m.out_batch_stride + i * m.out_row_stride + h * m.out_head_stride),
                m.head_dim);
      if (m.lse) m.lse[b * m.lse_batch_stride + h * m.lse_head_stride + i * m.lse_row_stride] = st.lse();
    }
  });
}

}  // namespace flashattn::detail
