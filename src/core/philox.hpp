// Philox4x32-10 (Salmon et al., SC'11) and the dropout mask every backend shares:
// key = seed, counter = (col/4, row, batch*heads_q + head, offset); each call yields the
// random words for 4 consecutive key columns, so a CPU run reproduces a GPU run bit for bit.
#pragma once

#include <cstdint>

#include "core/host_device.hpp"

namespace flashattn::detail {

struct Philox4 {
  std::uint32_t x[4];
};

FA_HOST_DEVICE void mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}

FA_HOST_DEVICE Philox4 philox4x32_10(Philox4 c, std::uint32_t k0, std::uint32_t k1) {
  constexpr std::uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr std::uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(kM0, c.x[0], hi0, lo0);
    mulhilo32(kM1, c.x[2], hi1, lo1);
    c = Philox4{{hi1 ^ c.x[1] ^ k0, lo1, hi0 ^ c.x[3] ^ k1, lo0}};
    k0 += kW0;
    k1 += kW1;
  }
  return c;
}

// The keep/drop decision for one attention weight. `threshold` = dropout_threshold(p).
struct DropoutRng {
  std::uint32_t key0, key1;
  std::uint32_t offset;
  std::uint32_t threshold;  // drop when the random word is below it

  // Random words for key columns [4*(col/4), 4*(col/4)+4) of (batch, head, row).
  FA_HOST_DEVICE Philox4 words(int bh, int row, int col) const {
    return philox4x32_10(Philox4{{static_cast<std::uint32_t>(col) >> 2,
                                  static_cast<std::uint32_t>(row),
                                  static_cast<std::uint32_t>(bh), offset}},
                         key0, key1);
  }
  FA_HOST_DEVICE bool keep_word(std::uint32_t w) const { return w >= threshold; }
  FA_HOST_DEVICE bool keep(int bh, int row, int col) const {
    return keep_word(words(bh, row, col).x[col & 3]);
  }
};

// p in [0, 1): drop when the 32-bit word < round(p * 2^32).
FA_HOST_DEVICE DropoutRng make_dropout_rng(std::uint64_t seed, std::uint64_t offset, float p) {
  DropoutRng r;
  r.key0 = static_cast<std::uint32_t>(seed);
  r.key1 = static_cast<std::uint32_t>(seed >> 32) ^ static_cast<std::uint32_t>(offset >> 32);
  r.offset = static_cast<std::uint32_t>(offset);
  const double t = static_cast<double>(p) * 4294967296.0;
  r.threshold = t >= 4294967295.0 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(t + 0.5);
  return r;
}

}  // namespace flashattn::detail
