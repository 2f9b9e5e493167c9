// Enumerates (batch, head, tile) work items over possibly ragged (varlen) sequences.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/attention_params.hpp"

namespace flashattn::detail {

struct WorkItem {
  int b, h, tile;
};

class WorkList {
 public:
  // Tiles of `block` rows over the q rows (by_keys = false) or the k rows of each sequence.
  WorkList(const AttentionParams& p, int heads, int block, bool by_keys) : heads_(heads) {
    prefix_.push_back(0);
    for (int b = 0; b < p.batch; ++b) {
      const SeqGeometry g = seq_geometry(p, b);
      const int rows = by_keys ? g.seqlen_k : g.seqlen_q;
      prefix_.push_back(prefix_.back() + (rows + block - 1) / block);
    }
  }
  std::int64_t size() const { return prefix_.back() * heads_; }
  WorkItem operator[](std::int64_t item) const {
    const int h = static_cast<int>(item % heads_);
    const std::int64_t t = item / heads_;
    const int b = static_cast<int>(std::upper_bound(prefix_.begin(), prefix_.end(), t) - prefix_.begin()) - 1;
    return {b, h, static_cast<int>(t - prefix_[b])};
  }

 private:
  int heads_;
  std::vector<std::int64_t> prefix_;
};

}  // namespace flashattn::detail
