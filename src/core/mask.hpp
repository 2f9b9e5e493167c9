// Which keys a query row sees (causal / sliding window, bottom-right aligned), and how a
// (q-tile, k-tile) pair is classified so only boundary tiles pay for element masking.
#pragma once

#include "core/host_device.hpp"

namespace flashattn::detail {

FA_HOST_DEVICE int imin(int a, int b) { return a < b ? a : b; }
FA_HOST_DEVICE int imax(int a, int b) { return a > b ? a : b; }

// Visible keys of one row are the half-open range [lo, hi); empty when lo >= hi.
struct KeyRange {
  int lo;
  int hi;
};

struct MaskBounds {
  int seqlen_q;
  int seqlen_k;
  int window_left;   // -1 = unbounded
  int window_right;  // -1 = unbounded; 0 when causal

  // The diagonal of row i sits at key i + seqlen_k - seqlen_q (bottom-right alignment).
  FA_HOST_DEVICE KeyRange keys_of_row(int i) const {
    const int diag = i + seqlen_k - seqlen_q;
    int lo = window_left >= 0 ? imax(0, diag - window_left) : 0;
    int hi = window_right >= 0 ? imin(seqlen_k, diag + window_right + 1) : seqlen_k;
    return {lo, hi < lo ? lo : hi};
  }

  // Keys any row of [r0, r1) may see: the union of the rows' ranges (monotone in i).
  FA_HOST_DEVICE KeyRange keys_of_rows(int r0, int r1) const {
    return {keys_of_row(r0).lo, keys_of_row(r1 - 1).hi};
  }
};

enum class TileKind { empty, partial, full };

// Rows [r0, r1) against keys [c0, c1). `full` means no element of the tile is masked.
FA_HOST_DEVICE TileKind classify_tile(const MaskBounds& m, int r0, int r1, int c0, int c1) {
  const KeyRange first = m.keys_of_row(r0);
  const KeyRange last = m.keys_of_row(r1 - 1);
  if (c0 >= last.hi || c1 <= first.lo) return TileKind::empty;
  if (last.lo <= c0 && first.hi >= c1 && c1 <= m.seqlen_k) return TileKind::full;
  return TileKind::partial;
}

}  // namespace flashattn::detail
