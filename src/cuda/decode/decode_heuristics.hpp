// How many splits of the key range a decode call uses when the caller leaves it to us.
// Decode is bound by memory bandwidth, which needs every SM busy: with batch * heads_kv CTAs
// short of the device's resident-CTA slots, the key range is split and the parts merged.
// The count maximises wave efficiency (CTAs / slots, rounded up to whole waves) and takes the
// smallest count within 2% of the best. FlashAttention 2 settles for 85% of the best because
// every split adds a partial O to write and merge, but for this memory-bound kernel an idle
// slot costs more: on an H200 (132 SMs x 2 CTAs), batch 1 with 8 KV heads ran 232 CTAs (29
// splits, 88%) at 2.45 TB/s; a full 264 fills every SM's two CTAs of loads in flight. The
// partial states are small next to the cache (B * Hq * D fp32 per split). Each split keeps
// >= 4 tiles of 64 keys: each CTA pays a prologue (Q load, first tiles' latency) and a part
// to write, which 2-tile splits do not amortise (H200, batch 1 x 4k keys, one graph-replayed
// call: 32 splits of 2 tiles 18.4 us, 16 splits of 4 tiles 16.9 us, 8 of 8 tiles 20.9 us).
#pragma once

#include <algorithm>
#include <cmath>

namespace flashattn::detail::decode {

// key_tiles below count blocks of this many keys, whatever the kernel's tile (a split itself
// covers whole kernel tiles: decode_split_range).
constexpr int kSplitGrainKeys = 64;

inline int choose_num_splits(int ctas, int slots, int key_tiles, int max_splits = 128) {
  if (ctas <= 0 || slots <= 0) return 1;
  if (ctas >= slots * 8 / 10) return 1;
  const int limit = std::max(1, std::min({max_splits, key_tiles / 4, (2 * slots + ctas - 1) / ctas}));
  auto efficiency = [&](int s) {
    const double waves = static_cast<double>(ctas) * s / slots;
    return waves / std::ceil(waves);
  };
  double best = 0;
  for (int s = 1; s <= limit; ++s) best = std::max(best, efficiency(s));
  for (int s = 1; s <= limit; ++s)
    if (efficiency(s) >= 0.98 * best) return s;
  return 1;
}

// The count for a device of `sms` SMs holding `per_sm` CTAs each. Filling every CTA slot pays
// off only when each split is long: a second CTA on an SM shares that SM's bandwidth, so it
// halves the splits' length and doubles the prologues and parts for the same bytes. Short
// splits therefore fill one CTA per SM (H200, batch 1 x 8k keys, graph-replayed: 16 splits of
// 8 tiles 19.8 us, 32 of 4 tiles 21.1; x 64k: 32 splits of 32 tiles 74.1, 16 of 64 tiles 77.8).
// A kernel of one CTA per SM (head dim 128: 8 warps, 208 KB) splits into one wave at most: a
// second wave of splits runs after the first, a latency the first wave's tail cannot hide
// (H200, graph-replayed: batch 1 x 64k keys, 33 splits in two waves 79.1 us, 16 in one 69.8;
// x 16k keys 33.2 vs 25.2; batch 8 x 8k keys, 4 splits 73.8 us, 2 splits 68.3).
inline int choose_device_splits(int ctas, int sms, int per_sm, int key_tiles) {
  constexpr int kLongSplitTiles = 16;
  const int one_wave = std::max(1, sms / std::max(ctas, 1));
  if (per_sm <= 1) return choose_num_splits(ctas, sms, key_tiles, one_wave);
  const int all_slots = choose_num_splits(ctas, sms * per_sm, key_tiles);
  if (key_tiles / all_slots >= kLongSplitTiles) return all_slots;
  return choose_num_splits(ctas, sms, key_tiles, one_wave);
}

// Where the splits can merge through a cluster's shared memory (decode_cluster_merge.cuh), a
// split costs less than a part written to and merged from global memory, and short contexts
// take more, shorter splits: the largest count of 2-16 whose clusters all fit on the device at
// once (`fits`), each split at least 2 grains (128 keys, one tile of the 8-warp kernel), when
// its splits are at most 4 grains long; longer ones keep `memory_splits`, the count above
// (H200, GQA 32/8, d128, one token, graph us, cluster / memory merge; the anchors' 16 splits of
// 8 KV heads need 8 resident clusters of 16, and an H200 holds 7):
//   1 x 1k: 4 splits 9.1 / 10.2, 8 splits 8.3 / 9.1, 16 splits  - / 9.5   -> 8 (was 4)
//   1 x 2k: 8 splits 9.6 / 10.4, 9 splits 10.0 / -, 16 splits - / 10.2  -> 8 (was 16)
//   1 x 4k: 8 splits 12.5 / 13.5, 16 splits - / 11.8                    -> 16 (8 is 8 grains)
//   2 x 2k: 6 splits 11.9 / 12.7, 8 splits  - / 11.7                    -> 8 (6 is 6 grains)
// Cluster-merged calls launched programmatically (session 11, a build allowing it, H200, graph
// us, two rounds of one run, cluster / cluster programmatic): 8 clusters of 8 at 1 x 2k 9.4 /
// 9.1-9.2, at 1 x 4k 12.5 / 12.0-12.1 (the memory merge's 16 splits: 11.3-11.4); 1 x 1k 8.2 / 8.2.
// Only the 2k row gains, and grids of 64 CTAs lose elsewhere when launched so
// (programmatic_launch_pays), so cluster-merged calls stay in stream order. (Splits of 10-14 at
// 1 x 4k do not fit as clusters on an H200 and ran the memory merge: 12.2-13.2 against 11.3.)
constexpr int kClusterMinSplitTiles = 2;
constexpr int kClusterMaxSplitTiles = 4;
constexpr int kMaxClusterSplits = 16;  // the most splits one cluster holds: Hopper's non-portable limit

// Of the counts that give the same longest split, the fewest: a split more that shortens no
// split adds a CTA and a part (1 x 2k: 9 splits of <= 4 grains 10.0 us, 8 of 4 grains 9.5).
// `fits` is monotone (fewer, smaller clusters fit wherever more, larger ones do), and long
// contexts and large grids return before asking it more than once: it runs on every call.
template <typename Fits>
int prefer_cluster_splits(int memory_splits, int key_tiles, Fits&& fits) {
  if (key_tiles > kMaxClusterSplits * kClusterMaxSplitTiles || key_tiles < 2 * kClusterMinSplitTiles || !fits(2))
    return memory_splits;
  for (int s = std::min(kMaxClusterSplits, key_tiles / kClusterMinSplitTiles); s >= 2; --s) {
    if (!fits(s)) continue;
    const int longest = (key_tiles + s - 1) / s;
    if (longest > kClusterMaxSplitTiles) return memory_splits;
    while (s > 2 && (key_tiles + s - 2) / (s - 1) == longest) --s;
    return s;
  }
  return memory_splits;
}

// Whether an unsplit decode grid of `ctas` CTAs on `slots` resident-CTA slots gains from the
// programmatic launch: grids of more than one wave, whose last wave leaves SMs idle that the
// next call's CTAs take (H200, GQA 32/8, d128, 8k keys, graph us, programmatic / stream order,
// means of two interleaved rounds of one run: batch 17 (136 CTAs) 204.0 / 206.0, 20 215.6 / 217.9, 32 236.9 / 240.0, 64 469.9 /
// 472.5), and one wave that fills nearly every slot (batch 15 (120 CTAs) 119.2 / 119.7, 16
// (128) 120.5 / 121.9). A single wave with many idle SMs lost, by up to a fifth: batch 12 (96
// CTAs, 36 SMs idle) 110.5 / 91.9, 13 (104) 112.0 / 104.6, 14 (112) 114.2 / 111.8, though
// batch 10 (80) gained (89.9 / 91.1). Why is not known. A guess, not tested: the next call's CTAs
// start on the idle SMs and the rest on those that free first, so the grids' spread over the GPCs
// drifts from the one a launch into an idle GPU makes. (Found through batch 12 x 16k keys, 96
// CTAs: 216.8 programmatic, 178.2 in stream order.)
inline bool programmatic_launch_pays(int ctas, int slots) { return ctas > slots || ctas * 10 >= slots * 9; }

// Whether an unsplit grid of `ctas` CTAs, each over at most `keys` keys, runs on a tile that
// holds `small_per_sm` CTAs per SM rather than the one of `big_per_sm`: where the big tile needs
// more than one wave and the small one packs the grid at least as tightly into its slots. A
// grid just past one wave of the big tile then runs in one wave, and between the waves of a
// one-CTA-per-SM grid each SM drains its last tiles and refills its ring for the next CTA with
// nothing else in flight, where two CTAs per SM refill one while the other streams. H200, GQA
// 32/8, d128, one token, us eager / graph, 227 KiB tile (one per SM) then 99 KiB tile (two per
// SM), each launched programmatically where programmatic_launch_pays, one run, same in a second
// round within 0.5%:
//   batch 17 x 8k (136 CTAs)  215.7 / 207.2   187.3 / 184.6
//   batch 24 x 8k (192)       220.5 / 217.5   206.4 / 203.1
//   batch 32 x 4k (256)       128.0 / 123.7   127.2 / 123.3
//   batch 64 x 4k (512)       247.8 / 243.4   246.7 / 242.3
//   batch 128 x 4k (1024)     497.7 / 493.3   486.9 / 482.8
//   batch 64 x 16k (512)      953.4 / 949.2   954.8 / 951.0, block size 16: 973.2 / 970.2  996.0 / 991.6
// At 16k keys per CTA a wave's refill is a small share of it and the paged cache ran slower on
// the small tile (why was not found), hence `keys` <= kSmallTileMaxKeys. Where the small tile
// would leave more slots idle it loses (the rule keeps the big one): batch 48 x 4k (384 CTAs: 97%
// of 3 x 132 slots, 73% of 2 x 264) 188.3 / 184.1 against 216.3 / 213.8 (stream order).
constexpr int kSmallTileMaxKeys = 8192;

inline bool prefer_smaller_tile(int ctas, int keys, int sms, int big_per_sm, int small_per_sm) {
  const int big_slots = sms * big_per_sm, small_slots = sms * small_per_sm;
  if (ctas <= big_slots || small_slots <= big_slots || keys > kSmallTileMaxKeys) return false;
  // Slots the grid's waves span: the same CTAs over fewer slots pack tighter.
  auto spanned = [ctas](int slots) { return (ctas + slots - 1) / slots * slots; };
  return spanned(small_slots) <= spanned(big_slots);
}

// ---- Tried and rejected: spreading the work over every SM (H200, GQA 32/8, d128, bf16, one
// token, CUDA-graph us per call, contiguous cache; each line one session, same run as the
// baseline; the code of each lives in that session's report, not here).
// The large-batch rows lose 1-3% to cuDNN with grids of equal CTAs that leave SMs idle (128
// CTAs on 132 SMs) or a part-filled last wave; three ways to give all 132 SMs work were built
// (a CTA walks several "segments" = pairs or parts of pairs, one K/V pipeline running through
// them, the stage the last tile freed holding the epilogue's O rows, the next pair's Q loaded
// into registers during the epilogue; parts merged by the last CTA of each pair) and lost:
// (In brackets: this kernel and split grid, unchanged, in the same run.)
// - stream-K, CTA c taking units [c*W/G, (c+1)*W/G) of the flat (pair, 32-key granule) space,
//   G = 132: 1 x 64k 90.9 (69.5), 8 x 8k 80.5 (69.9), 16 x 16k 265.2 (250.7), 32 x 4k 139.0
//   (129.3), 64 x 16k 1010 (967).
// - the same in bands that keep the KV heads of a batch row in phase (one CTA per head per
//   band, 16 bands x 8 heads + 4 spare CTAs doing 2 heads of a last band): 1 x 64k 95.2 with
//   32-key granules (67.0), 83.0 with 128-key granules (66.9), 16 x 16k 252.2 (239.9).
// - a dynamic queue (one CTA per SM, each taking its next (pair, split) item from an atomic
//   counter): 1 x 64k, 16 splits = one item per CTA 73.6, 32 splits 85.7, 64 splits 94.2
//   (68.3); 16 x 16k, 1 split 244.9, 2 splits 258.2, 4 splits 261.3, 8 splits 274.0 (243.8).
//   The segment-walking kernel itself, run as the plain split grid, was 0.5-30% slower than
//   this one (16 x 16k 244.9 vs 243.8, 1 x 64k 73.8 vs 68.3, 1 x 8k 20.0 vs 15.4); why was
//   not found (its main loop had ~8% more instructions before the refill's copies).
// The dynamic rows show the cost: every extra segment a CTA walks adds ~6-13 us. The likely
// cause (not isolated): the epilogue's barriers, the next Q's load, the arrival atomic, a merge
// and the next pair's length load wait in turn while no K/V copy is issued (copies are issued
// only from the main loop, and the 3-stage ring has no free stage while the epilogue holds
// one). ncu (1 x 64k, splits, this kernel): elapsed 140k cycles against 111k active cycles on
// the average SM (114k on the 128 busy ones), which suggests the tail of a one-wave grid is
// its SMs streaming at different rates more than the 4 idle SMs; balancing that needs segment
// changes that cost well under a microsecond (e.g. a producer warp that keeps copying through
// the epilogue, or a fourth stage), for which this kernel's 208 KB, one-CTA-per-SM layout has
// no room.
// Also measured, same sessions: issuing Q's copies before cache_seqlens is read (batch 1 x 4k,
// three alternating runs): 11.8-11.9 us against 11.6-11.7, no gain. Not reading cache_seqlens at
// all (session 9, a measurement build taking the length from the cache's capacity, which the
// bench's sequences fill; three interleaved rounds): 1 x 4k 11.7 / 11.6-11.7, 1 x 8k 15.3 /
// 15.2-15.3, 1 x 64k 67.3-67.7 / 67.5-67.7 — the load costs nothing a scalar argument would save. Split counts around this
// heuristic's (graph us): batch 1 x 4k, 8 / 11 / 16 / 22 / 32 splits: 13.3 / 12.4 / 11.7 / 15.7
// / 18.0; x 8k, 11 / 16 / 22 / 32: 16.6 / 15.3 / 23.0 / 21.2; batch 8 x 8k, 1 / 2 / 3: 90.6 /
// 67.9 / 81.0 (a second wave costs more than it spreads).
// - K/V by TMA on sm_90 (contiguous cache, head dim 128), rejected: tensor maps over
//   (D, Sk, Hkv, B_cache), 128-byte swizzle (each tile as two 64-column halves, read back by
//   ldmatrix at chunk ^ (row % 8), conflict-free), per-stage full mbarriers; all 3 stages
//   issued at the start, each refill issued at once by the last warp done with the stage (a
//   shared-memory arrival counter): no CTA barrier and no cp.async in the main loop; the split's
//   partial last tile zeroes its V rows past the end (the copy brings whole rows). Correct
//   (CudaDecode.* incl. CacheTailPastTheSequenceIsNeverUsed, memcheck and racecheck clean, with
//   one thread issuing 128-key boxes) but slower on every row. H200, graph us, one session, HEAD
//   kernel twice against one binary whose env picked the box (keys per box, L2 promotion):
//     shape     HEAD         128/256B  32/256B  16/256B  16/none  8/256B  cuDNN
//     1 x 4k    11.6-11.7    12.4      12.1     12.3     12.1     13.3    11.1
//     1 x 8k    15.4         16.2      16.0     16.1     15.7     19.4    15.5
//     1 x 64k   68.0-68.4    70.6      72.2     69.6     68.7     105     67.5
//     1 x 128k  127.7-128.3  133.7     138.8    131.4    128.9    204     126.8
//     8 x 8k    68.2-68.4    71.0      72.1     69.8     68.9     105     66.9
//     16 x 16k  243.6-244.0  256.1     264.7    254.0    243.9    399     239.1
//     32 x 4k   127.1-127.3  133.2     139.3    135.3    129.8    204     125.4
//     64 x 4k   247.3-247.5  266.3     270.0    267.0    257.3    407     244.1
//     64 x 16k  951.4-952.0  1034      1058     1058     975      1583    961.4
//   (HEAD's cp.async path in the TMA binary, env off: within 0.3% of HEAD; paged rows unchanged.)
//   Reading: the box count costs (8-key boxes, 64 copies a tile, 1.5x slower), and so do L2
//   promotion and 128-key boxes (a row's two 128-byte halves requested a whole box apart); the
//   best form (16-key boxes issued by the 32 lanes of one warp, no promotion) ties HEAD at 16 x
//   16k and loses 0.7-4% elsewhere (its test subset hit a 45 s limit on the device, not looked
//   into: a hang of the warp-issued form is not ruled out). Not measured: 32- or 64-key boxes without promotion, one
//   box per full 256-byte row (a 5-D map; 2-way ldmatrix conflicts), a producer warp. With the
//   copy engine no faster than 256 threads' cp.async here, the segment-walking schemes above
//   get no cheaper from it.

// - Programmatic dependent launch on sm_90 (cudaLaunchKernelEx with programmatic stream
//   serialization; griddepcontrol.wait before the first global read, launch_dependents right
//   after it), so a decode step's CTAs become resident while the step before it finishes:
//   no change (H200, graph us, PDL on / off in one run: 1 x 4k 12.0 / 12.0, 1 x 64k 67.2 / 67.2,
//   8 x 8k 67.4 / 67.5, 16 x 16k 239.1 / 239.7, 64 x 16k 932.1 / 933.9; cuDNN 11.2 / 66.5 /
//   65.6 / 234.1 / 936.5). With one 208 KB CTA per SM the next step's CTAs find no room until
//   this step's leave. Kept since (session 9) for unsplit calls only, in a form that does
//   something while it waits: each CTA prefetches its first tile to L2 before the wait
//   (decode_l2_prefetch.cuh, decode_launch.cu). (cuDNN runs batch 1 x 4k as a split kernel, 256 CTAs of 4 warps, plus a
//   separate reduction kernel: Nsight Compute 10.3-11.3 + 3.5-3.7 us in isolation, 11.0-11.2 per
//   call in the graph.)
// - cuDNN's batch-1 layout (more, shorter splits on two 4-warp CTAs per SM) with this kernel's
//   4-warp tile (the 99 KiB one, 80 KB: two per SM on an H200) against the 8-warp tile's 16
//   splits (H200, graph us, median of 3 alternating rounds, which agree within 0.5 us):
//     batch 1 x 4k: 8 warps 16 / 24 / 32 splits 11.8 / 15.3 / 18.0; 4 warps 16 / 24 / 32 / 48 /
//     64 splits 13.1 / 13.8 / 14.0 / 18.0 / 20.3.  x 8k: 8 warps 15.4 / 22.3 / 21.1; 4 warps
//     19.0 / 18.9 / 18.1 / 25.2 / 24.9.
// Where a batch-1 call's time goes (H200, batch 1 x 4k keys, 16 splits, graph-replayed; per-CTA
// globaltimer stamps of thread 0 in a probe build, medians over the 128 CTAs, us from the first
// CTA's start; the call is 11.2-11.8 us): cache_seqlens read and every copy issued 2.7 (the issue
// itself waits: 128 KB of copies per SM drain at the SM's share of DRAM bandwidth), tile 0 in
// 3.7, both tiles done 6.0, O of the 8 warps in shared memory 6.4, the split's part written 7.5,
// arrival counted 8.1, the last CTA's merge done 10.9-11.2. At 8k keys the same stamps read
// 2.8 / 3.7 / 9.3 / 9.7 / 10.8 / 11.4 / 15.2. The merge after the last arrival (2.5-3 us for
// 16 parts of 4 rows) and the epilogue before it (1.5 us) are the tail that a batch-1 call
// pays on top of the stream; the K / V stream itself runs at the SMs' share of bandwidth.
// - K / V copies with an L2 evict-first policy (kept): 0.3-0.9% faster on every shape from
//   1 x 64k up (two interleaved runs, graph us, old / new: 1 x 64k 68.1 / 67.6-67.7, 8 x 8k
//   68.2 / 67.6-67.7, 32 x 4k 127.2-127.3 / 126.3-126.4, 64 x 4k 247.2-247.4 / 246.5-246.6);
//   batch 1 x 4k unchanged (11.8 / 11.9-12.0): the tail above is not L2 misses.

// - Session 10 (H200, graph us, interleaved rounds of one run each):
//   * the stream's rate per CTA: batch 1 x 128k split 8 / 10 / 11 / 12 ways (64-96 CTAs) ran at
//     47-48 GB/s per CTA (177.8 / 145.9 / 134.6 / 124.4 us), so a one-CTA-per-SM grid reaches
//     DRAM's ~4.5 TB/s from about 96 CTAs; 13 / 14 / 15 / 16 splits 130.2 / 131.2 / 130.0 /
//     124.9 (16 kept: the 12-split grid ties it at 1 x 32k / 64k / 128k).
//   * an L2 prefetch (cp.async.bulk.prefetch.L2, a row per thread) of the tile one or two past
//     the cp.async ring, contiguous cache, rejected: 16 x 16k 311.6 / 308.4 against 242.5, 1 x
//     64k 82.5 / 80.0 against 67.4, 64 x 16k 1191 / 1177 against 948; batch 1 x 4k unchanged.
//   * why a one-wave grid of 128 CTAs streams slower than one of 96 (16 x 16k at 4.43-4.51 TB/s,
//     12 x 16k at 4.52): per-CTA globaltimer stamps (a probe build) show the 96 CTAs ending
//     within 3% of each other (175-181 us) and the 128 spread over 15% (first 200 us, median
//     233, last 236-256), faster on some SM ranges than others, every call: DRAM, saturated,
//     serves the SMs unequally, and the last CTAs stream alone at their own cap. Pacing to
//     even it out, rejected: a CTA more than 1-2 tiles ahead of the grid's mean progress (a
//     global tile counter, read a tile late) slept 200-1000 ns before its refill: 16 x 16k
//     242.8-244.1 against 242.3-242.7, 12 x 16k 182-227 against 182, and the counter's code,
//     even switched off, slowed the paged cache (64 x 16k paged16 1015 against 971).
//   * sequences that do not start a power of two apart (cache rows Sk + 64 or Sk + 1000 per
//     sequence): no change (12 x 16k 218.4 / 218.8 / 218.6, 16 x 16k 237.9 / 237.8 / 237.5).
//   * the split parts from one buffer reused (DECODE_BENCH_SCRATCH=fixed) instead of
//     cudaMallocAsync / cudaFreeAsync per call, which a capture records as memory nodes: no
//     change in the graph (1 x 4k 11.6 / 11.6, 1 x 64k 67.5 / 67.5), eager calls 0.3-0.6 us less.
// - The splits merged through distributed shared memory (sm_90 clusters, one cluster per
//   (batch, KV head, row group), decode_cluster_merge.cuh; kept where it can run). It runs only
//   when every cluster of the grid is resident at once, and on Hopper few are: an H200 holds 15
//   clusters of 2-8 one-CTA-per-SM CTAs (this kernel at head dim 128) but only 7 of 10-16
//   (cudaOccupancyMaxActiveClusters; 14 clusters of 16 for CTAs of <= 113 KB, two per SM).
//   The split grids of the batch-1 anchors (8 KV heads x 16 splits = 8 clusters of 16) do not
//   fit and keep the memory merge. Where it runs it saves about a microsecond (H200, batch 1,
//   graph us, cluster / memory merge, one run): 1 x 4k, 8 splits 12.5 / 13.6, 4 splits 18.3 /
//   18.9; 1 x 8k, 8 splits 17.9 / 18.8; the memory merge's 16 splits stay faster at these
//   shapes (1 x 4k 12.0, 1 x 8k 15.6).

}  // namespace flashattn::detail::decode
