// Tile sizes and warp layouts of the sm80 backward, per padded head dim, and the
// shared-memory budget. The layouts follow FlashAttention-2's sm80 choices (its
// Flash_bwd_kernel_traits for these head dims), which balance ldmatrix traffic against
// the accumulator registers of each product.
//
// One block owns kBlockN keys of one kv head and walks the q tiles (kBlockM rows) of every
// q head of its GQA group. Shared memory holds K, V (kBlockN x D), `stages` copies of Q and
// dO (kBlockM x D) and the P / dS tiles (kBlockM x kBlockN) that the transposed products
// read back, so
//   bytes = 2 * (2*N*D + stages*2*M*D + 2*M*N) + 4 * stages*2*M   (LSE2, Drow rows in fp32)
// D = 64: 128 x 128 (FA2's choice); 162 KiB with two stages (fits A100's 163 KiB); the sm_90 TMA
// kernel (round 8) asks for 1 KiB more to align its tiles to 1024 bytes.
// D = 128: 64 x 128; 161 KiB with two stages.
// D = 256: 64 x 64; 144.5 KiB with one stage (A100), 209 KiB with two (H100 / H200).
// 99 KiB GPUs (sm_86 / sm_89) take the compact tiles: see "Compact tiles" at the end.
//
// Measured (H200, bf16, 16k tokens, hidden 2048, 8k sequence, backward TFLOP/s, one run
// with torch FLASH_ATTENTION = FA2: d64 280, d128 298, d256 253; causal 257 / 281 / 242):
//   first version                                     d64 111 / 103   d128 154 / 144
//   + plain kernel (no dropout / softcap / ALiBi compiled in), rolled unaligned-load
//     path (7.5k -> 4.1k instructions at D = 128), red.global.add.v4.f32 on sm_90 (a
//     quarter of the dQ atomics), S / dP for two m-tiles per pass (K / V fragments
//     loaded once per step)                          d64 189             d128 235
//   + D = 64 with kBlockM = 128, four m-tiles per pass in its plain kernel
//                                                     d64 214 / 203   d128 232 / 216
//                                                     d256 197 / 195 (causal after /)
// Round 2 (same run: H200, bf16, the table of bench/gpu_sweep shapes, TFLOP/s at 1k / 8k,
// d128 non-causal; all head dims and causal moved alike):
//   round-1 state                                     d128 178 / 233   d64 159 / 214   d256 158 / 197
//   + plain kernel: full tiles skip the per-element mask compares (P / dS body compiled
//     twice, branch on the block-uniform `partial`), logit2 - LSE2 as one FMA, the
//     constant dlogit/ds = scale moved out of dS into the dK epilogue and the dQ
//     conversion, no integer division per step: ~230 fewer instructions per step and
//     warp at D = 128 (of ~1.7k)                     d128 184 / 243   d64 168 / 228   d256 163 / 204
//   + dK / dV and dQ products without the per-k-slice early exits for rows / keys past
//     the sequence end (zero-filled, so they add zeros): branch-free, ptxas issues the
//     next fragments' loads under the current mma    d128 185 / 250   d64 172 / 233   d256 165 / 208
//   FA2 (torch FLASH_ATTENTION) in the same run:      d128 227 / 300   d64 211 / 281   d256 200 / 253
// Ceiling check: the same kernel with the dQ red.add removed (wrong dQ, timing only) is
// only 4-8% faster (d128 193 / 265): the dQ atomics do not dominate.
// Rejected in round 2 (spill at 255 registers): dropping the head-dim early exit of the
// dK / dV product as well (d128: 8-72 bytes; d64 too), i.e. every further fragment that
// ptxas hoists needs a register the dK / dV accumulators hold.
// Rejected: one m-tile per pass at D = 128 plain (218: K / V fragments loaded twice);
// dQ product before dK / dV (229; no gain at D = 64); tile addresses without the opaque
// move (230, no gain) and, at D = 128, also the lane id (218); a fully unrolled head-dim
// loop of S / dP, and two m-tiles per pass in the feature kernel at D = 128 (both spill).
// Round 3 (one run, H200, bf16, the same shapes, backward TFLOP/s, best of two interleaved
// runs; FA2 = torch FLASH_ATTENTION in the same run):
//   round-2 state                         d64 173 / 238   d128 190 / 252   d256 167 / 208 (1k / 8k)
//   + stmatrix.x4 for the P / dS stores on sm_90 (a quarter of the store instructions):
//     d64 +0.1..1.0% (mean +0.6), d256 +0.5..1.7% (+0.9), d128 -0.6..+0.5% (-0.2); kept
//                                         d64 173 / 240   d128 189 / 251   d256 168 / 212
//   FA2 in the same run:                  d64 214 / 280   d128 224 / 299   d256 200 / 254
//   (causal: ours / FA2 0.82-0.89 at d64, 0.81-0.83 at d128, 0.86 at d256)
// Rejected in round 3: D = 64 as 64 x 64 tiles with two blocks per SM (launch bounds
// min 2, 125 registers, 66 KiB each; one m-tile per pass, since two spill 24 bytes at the
// 128-register cap and 64 x 128 tiles spill 188): 12-23% slower (d64 143 / 184 vs 173 /
// 238): the second block's overlap does not make up for half the K / V reuse per q-side
// load and the shorter mma runs between barriers. Checked, nothing to change: the grid
// already puts the kv tiles of one (batch, kv head) next to each other (Q / dO stay in
// L2), and a step has two block barriers (top: the Q / dO stage and the P / dS buffer
// reuse; middle: P / dS written), fewer than FA2's.
// Round 4: compared with FA2's machine code (torch's libtorch_cuda, sm_90 cubin of
// flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<Flash_bwd_kernel_traits<128, 64, 128, 8, 2, 4,
// 2>, even M/N and K>, bf16, no dropout / causal), the same tiles and warp layouts as ours.
// Dynamic instructions of one warp per (q tile, kv tile) step at D = 128 (full tile, two
// stages; ours sm_90a, plain kernel):
//                         FA2    round 3   round 4
//   all                  1003       1384      1156
//   HMMA / LDSM         320/144   320/144   320/144
//   MUFU.EX2 / float ops  32/268    32/128    32/128  (FA2's exp2f takes a denormal path)
//   STS, STSM / RED     32 STS/32  8 STSM/8 v4  8/8
//   BAR                     3         2         2
//   branches, syncs, NOP    3        78        30
//   accumulator zero fill   0        65         2   (FA2: first mma with C = RZ)
//   integer / address     139       546       426
// FA2 runs S, P (stored), dP, dS (stored), barrier, dV, barrier, dQ and dK; it loads the
// next step's LSE / dpsum with LDG into registers and keeps 8 bytes of stack. Its dV
// product is 64 mma with 16 ldmatrix issued ahead from three base registers; ours had a
// head-dim exit every 16 columns between dV / dK loads and mma (16 branches a step).
// Measured (H200, bf16, same shapes, backward TFLOP/s at 1k / 8k / 16k, non-causal, best of
// two interleaved runs; one run with FA2 = torch FLASH_ATTENTION):
//   round-3 state                    d64 174 / 239 / 245   d128 188 / 251 / 257   d256 168 / 211 / 215
//   + dV and dK as two branch-free products on sm_90, zero fill replaced by a first mma with
//     C = 0 (S / dP: first 64-column group peeled on sm_90; dQ: every arch), dQ vectors of
//     one n-tile's four accumulators (no register moves before the red)
//                                    d64 181 / 252 / 259   d128 208 / 284 / 294   d256 174 / 220 / 225
//   + sm_90: loop bounds and kv-tile extent re-read from shared memory each step
//     (kReloadBounds in flash_bwd_kernel.cuh): registers for the products, faster although
//     19 more instructions a step
//                                    d64 184 / 257 / 266   d128 213 / 296 / 304   d256 187 / 240 / 245
//   FA2 in the same run:             d64 214 / 278 / 288   d128 228 / 295 / 306   d256 198 / 253 / 259
//   (ours / FA2 over all shapes of two runs, causal too: d64 0.85-0.96, d128 0.91-1.005,
//   d256 0.93-0.99; causal alone 0.85-0.96 / 0.91-0.98 / 0.95-0.99)
// Rejected in round 4 (register allocation at 255 decides; each measured or spilled):
//   - P computed in one basic block with dP's first 64 columns, so the exponentials overlap
//     those mma (FA2's order): spills 48 bytes at D = 128 and 16-36 at D = 64; with the
//     spills 6-7% slower at d64 / d128, no gain at d256 (where it fits).
//   - the fully visible q tiles found once per block (a range, both ends of a row's keys are
//     monotone) instead of classify_tile per step: 35 fewer instructions a step, yet 3-10%
//     slower than classifying each step (d128 8k 278 vs 296, d256 8k 218 vs 240; no spill
//     at d128 / d256), and it spills 24 bytes at d64.
//   - a predicate-free load_tile path for whole tiles: 21 fewer instructions a step at
//     D = 128, 1-2% slower (d128 8k 292 vs 295, d64 16k 260 vs 266).
//   - sm_80: the split dK / dV products (spill 72 bytes at D = 128, 4 at D = 64), the peeled
//     first S / dP group (24 bytes at D = 128), the bounds re-read from shared memory (36
//     bytes at D = 64), tid through an opaque move each step (12-24 bytes): sm_80 keeps the
//     round-3 forms there (not measured: no A100 here).
//   - dQ between dV and dK (FA2's order; the dQ reds leave earlier): d128 +0.1-0.5% (noise),
//     d64 and d256 -1%. D = 64 plain with two m-tiles per pass instead of four (225
//     registers on sm_80, K / V fragments loaded twice): d64 2-3% slower.
//   - dK / dV k-loop in two `unroll 1` halves (4-16 bytes spill), the lane offset tables from
//     an opaque lane each step (16 bytes at D = 128), D = 64 with FA2's 4 x 2 S / dP warp
//     layout (32 rows x 64 keys, 12-64 bytes).
//   What is left against FA2: the integer work (426 vs 139 a step), most of it the next
//   stage's cp.async issue and the step setup between the top barrier and the first
//   ldmatrix (~230 instructions with the tensor cores idle; FA2 walks one pointer per
//   tensor, with no row predicates at even sizes).
// Round 5 (H200, bf16, same shapes, backward TFLOP/s at 1k / 16k tokens per sequence, best of
// two interleaved runs; FA2 = torch FLASH_ATTENTION in run 1):
//   round-4 state (run 1)            d64 180 / 263   d128 208 / 301   d256 181 / 243
//                                    causal 1k: d64 126, d128 144, d256 135
//   + preprocess and dQ conversion: one block per (64 rows | q tile, q head, batch) from the
//     grid; they divided 64-bit scratch row numbers per row / per element (two 64-bit
//     divisions each), the preprocess used 8 of 32 lanes at D = 64 and the conversion
//     stored 2 bytes per thread (now a shared tile, 16-byte row stores); the dq_accum zero
//     fill moved into the preprocess (no memset pass). Together ~10% of the backward at 1k.
//                                    d64 197 / 269   d128 230 / 304   d256 192 / 244
//                                    causal 1k: d64 152, d128 165, d256 148 (+11-21%)
//   FA2 in run 1:                    d64 207 / 284   d128 221 / 303   d256 199 / 256
//                                    causal 1k: d64 149, d128 166, d256 145
//   ours / FA2 after this step, all 30 shapes: d64 0.946-0.960 non-causal, 0.987-1.026 causal;
//   d128 0.996-1.040 / 0.983-1.001; d256 0.953-0.969 / 0.980-1.020.
// Run 2 (another H200; main-kernel variants over that state, two interleaved runs each):
//   that state                       d64 207 / 269   d128 234 / 306   d256 196 / 246
//   + LSE2 / Drow rows as 16-byte copies without a row predicate (sm_90; kRowsBy4)
//                                    d64 207 / 270   d128 234 / 305   d256 194 / 246
//                                    (d64 2k-8k +0.5-1.5%, the rest noise)
//   + the next stage's loads issued between the dV and dK products (Mainloop::kIssueAt = 2,
//     sm_90): their ~230 instructions of address maths and predicates run while the dV
//     mma drain instead of between the top barrier and the first ldmatrix
//                                    d64 212 / 279   d128 236 / 313   d256 201 / 257
//                                    (d64 +2.5-3.5%, d128 +1-3%, d256 +3-5%; causal alike)
//   estimated ours / FA2 (run-2 gain x run-1 ratio): d64 0.98-0.99 non-causal, 1.02-1.05
//   causal; d128 1.02-1.05 / 1.01-1.03; d256 1.00-1.01 / 1.02-1.05.
//   Measured with a 4-byte spill at D = 64 (a hoisted copy offset; every issue point inside
//   the step spills it: after the first S / dP pass, after the middle barrier, after dV,
//   after dK) and with the staggered q-tile walk rejected below. The committed D = 64 form
//   takes the thread id through an opaque move instead (no spill, 16 more
//   instructions in the loop), and warps whose dK / dV columns are all head-dim padding issue
//   their share of Q / dO too (run 2's variant skipped it with their products: head dims 136
//   and 192 failed, the only failures of that run).
// Run 3 (H200, the committed code = "fin", round-4 state = "base", FA2 in the same run; all
// 647 backward GPU tests pass, memcheck clean): ours / FA2 at 1k..16k
//   d64  non-causal 1.01 0.99 0.99 0.98 0.97   causal 1.08 1.06 1.03 1.04 1.03  (base 0.86-0.97)
//   d128 non-causal 1.08 1.05 1.03 1.03 1.03   causal 1.08 1.04 1.02 1.01 1.00  (base 0.93-1.00)
//   d256 non-causal 1.02 1.00 0.99 0.99 0.99   causal 1.06 1.03 1.01 1.02 1.01  (base 0.94-0.97)
//   The d64 loads issued at the top of the step as before ("alt"): 1-3% slower than fin.
// Rejected in round 5:
//   - walking each head's q tiles from i_lo + j % per_head (kv tile j starts j tiles in), so
//     the blocks of one head that run together add into different dQ tiles: no change
//     (d64 1k-16k within +-1%), and it spills 12 bytes on sm_80 at D = 128.
// Round 6 (H200, bf16, same shapes; variants against the committed code "cur", best of two
// interleaved runs per call; FA2 = torch FLASH_ATTENTION in call 1). cur / FA2 at 1k..16k:
//   d64  non-causal 1.00 0.99 0.98 0.97 0.97   causal 1.03 1.01 1.03 1.02 1.01
//   d128 non-causal 1.05 1.02 1.01 1.02 1.02   causal 1.04 1.02 1.02 1.00 1.00
//   d256 non-causal 1.01 0.99 0.99 0.98 0.99   causal 1.07 1.01 1.00 1.02 1.01
// torch's sm_90 cubin runs FA2's d64 backward as Flash_bwd_kernel_traits<64, 128, 128, 8, 4, 4,
// 4, false, false> (S / dP warps 4 x 2, which spills here: round 4) and d256 as <256, 64, 64,
// 8, 4, 2, 2, false, false>, the layouts of ours otherwise. Its d64 step has about as many
// instructions as ours (~1.36k static in its loop; ours ~1.3k on the full-tile path), so what
// is left is scheduling, not instruction count. Rejected in round 6 (all spill-free, each
// variant / cur at 1k..16k; none beat cur anywhere by more than noise):
//   - dQ between the dV and dK products (FA2's order), the next stage's loads issued after dV
//     as now: d128 0.982-0.996, d256 0.977-0.990 (D = 64 spills 4 bytes that way).
//   - the same with the loads issued after dQ (dV, dQ, loads, dK; D = 64 with the plain thread
//     id, which then fits): 0.94-0.97 at every head dim: the issue must come right after dV.
//   - D = 256: S / dP over all four 64-column groups unrolled without the head-dim exits
//     (zero-filled padding adds zeros): no change (same numbers with and without).
//   - the loads issued before the dV product (after the middle barrier): 0.97-1.00.
//   - the loads issued after the dK product (before dQ): d64 0.99-1.01, d128 0.995-1.01 (noise),
//     d256 0.978-0.991.
// Round 7 (H200, bf16, same shapes; variants built from the same library with only the backward
// objects swapped, best of 2-3 interleaved runs per call, FA2 = torch FLASH_ATTENTION in each call).
// Ablations of the round-6 code (timing only, wrong results; d64 / d128 / d256 at 16k, non-causal,
// TFLOP/s): as is 280 / 313 / 256; full-tile exponentials replaced by the argument 290 / 317 / 257;
// no dQ red.add 305 / 338 / 295; no next-stage Q / dO loads 299 / 332 / 277; no P / dS stores (the
// compiler then drops the whole P / dS body) 316 / 326 / 257.
// Nsight Compute (d64 and d256, 16k, non-causal; ours / FA2): d64 35.2M / 34.1M cycles, IPC 1.22 /
// 1.32, tensor pipe 44.8 / 46.2%. Only our cp.async copies had excessive shared wavefronts (50%
// of theirs; 4.5% of all shared wavefronts at d64, 7.5% at d256; FA2 none): the static BlockBases
// put the dynamic base 64 bytes past a 128-byte boundary. The top stall samples after the dQ reds:
// the loop's last compares waited for their shared-memory reads of the bounds (d64: 4.3% + 2.2%
// short scoreboard; d256: the LDS.128 4.2% long scoreboard, its destination being the reds'
// source registers, which stay locked until the LSU has read them).
// Kept (call 3; ours / FA2 at 1k..16k, round-6 code "cur" in the same run):
//   + dynamic shared memory 128-byte aligned (flash_bwd_kernel.cuh; kStaticSmem 128): no excessive
//     wavefronts; d64 +0.1-0.4%, d128 +0.3-0.6%, d256 +1.6-2.1%
//   + the next step's q tile, head and loop condition formed before the dQ product (the kernel's
//     before_dq, called by the step): with the alignment
//     d64  non-causal 1.025 1.001 1.003 0.989 0.989 (cur 1.010 0.985 0.988 0.976 0.976)
//     d128 non-causal 1.063 1.047 1.038 1.050 1.041 (cur 1.043 1.024 1.022 1.030 1.022)
//     d256 non-causal 1.053 1.029 1.031 1.030 1.008 (cur 1.021 0.998 0.998 0.999 0.979)
//     causal: d64 1.034-1.049 (cur 1.020-1.034), d128 1.020-1.071, d256 1.036-1.076
// Final (the CMake build of this code, sm_90a SASS identical to the measured variant; one call,
// TFLOP/s round 6 / round 7 / FA2 at 1k..16k):
//   d64  non-causal 215/219/206 245/248/246 263/266/266 272/276/280 280/282/288
//        causal     159/162/152 203/206/198 236/240/233 260/264/254 279/283/274
//   d128 non-causal 239/245/228 274/280/267 295/301/292 306/312/298 313/318/306
//        causal     175/177/166 223/227/216 258/263/256 284/289/283 311/317/313
//   d256 non-causal 204/210/200 229/236/229 244/251/246 252/259/252 256/263/258
//        causal     156/161/146 192/198/187 221/227/217 248/255/242 258/266/256
//   ours / FA2: d64 non-causal 1.063 1.012 1.000 0.988 0.980 (8k / 16k still under FA2), every
//   other cell 1.013-1.102.
// Rejected in round 7 (spill-free unless said):
//   - a share of the full-tile exponentials on the FMA pipe (2^x as a degree-5 polynomial with the
//     exponent added to the bits, relative error 2.3e-7 like ex2.approx): the P / dS phase is not
//     MUFU-bound. One in 16 per lane: d64 +0.4-0.7% over round 6 in two calls, +0.5% over the
//     alignment alone, but -0.4..-0.7% over the dQ-target variant below, and d128 -0.5..-0.8%;
//     one in 8: d64 -0.6..-1.1%; one in 4: -0.3..-0.5%.
//   - D = 64: P computed in place of S right after the S product, in the basic block of dP (or
//     one m-tile of P per k-slice of dP), so the exponentials overlap the dP mma: spills 32-56
//     bytes (40 with the per-k-slice interleave; 92 with the dQ pointers also formed late).
//   - the next step's rows and `partial` also formed before the dQ reds, the mask / kv extent /
//     dQ target read from shared memory where used: the locked red source registers only moved to
//     the first address instruction of the step (3.5% long scoreboard) and the first ldmatrix
//     (4.5% at the barrier); vs the kept form d64 -0.8..-1.0%, d256 -0.5..-0.7%, d128 -0.2%.
//   - sm_90, D <= 128: dQ stored to a shared fp32 tile and added by one cp.reduce.async.bulk
//     .add.f32 per warp (4 KB, DqLayout order, no register held by the LSU; deterministic mode
//     keeping the reds): correct (647 tests, memcheck clean) but d64 -5..-7%, d128 -6..-8%
//     (16k: 265 vs 283, 291 vs 318).
// Round 8 (H200, bf16, same shapes; backward objects swapped into one library build, sm_90a, best of
// 2-3 interleaved runs per call, FA2 = torch FLASH_ATTENTION in each call). Nsight Compute of round 7
// (d64 16k): ours spent ~200 instructions a warp-step on the next stage's Q / dO / LSE2 / Drow issue
// (64-bit row addresses from the user strides, row predicates, SEL of the zero-fill source, 9
// LDGSTS a thread), and 16 predicated LDS a step on the LSE2 / Drow rows (~6 instructions each with
// their compares, address and INF / 0 defaults); FA2 also stalled less on HMMA math throttle (4.8 vs
// 8.1% of the samples).
// Kept:
//   + sm_90, D = 64, plain kernel: the q side as TMA bulk copies (flash_bwd_kernel.cuh BwdTma): one
//     thread per step issues two 64 x 128 tensor boxes (Q, dO; 128-byte swizzle = swz<64>'s layout,
//     zero fill past the sequence end and head dim from the map's bounds) and two 512-byte copies
//     (LSE2, Drow), completing on a per-stage mbarrier that every thread waits on at the top of the
//     step. Host: tensor maps (head_dim, seqlen_q, heads_q, batch) from cuTensorMapEncodeTiled (runtime
//     entry point), only for padded batches with 16-byte aligned rows, two stages, compute capability
//     9.0; else the cp.async kernel. A separate instantiation (<T, 64, true, true>): compiled beside
//     the cp.async issue in one kernel it spilled 4 bytes.
//   + sm_90, D <= 128: LSE2 / Drow read without the row predicate (Mainloop::kRowsUnpredicated); the
//     preprocess now writes every scratch row (+inf / 0 past the sequence end: P = dS = 0 there).
//   Attribution (call 1, d64 non-causal 16k, TFLOP/s; FA2 284): round 7 284, TMA alone 288, row
//   predicates alone (with the pass split below) +2.2%, both 294 (that form spilled 4 bytes: the
//   separate TMA kernel above is the spill-free form, 298 in call 2).
// Final (call 2; TFLOP/s round 7 / round 8 / FA2 at 1k..16k; ours / FA2 after):
//   d64  non-causal 218/226/210 248/260/247 266/278/270 277/289/281 283/298/288  1.075 1.051 1.029 1.031 1.035
//        causal     162/167/153 206/215/199 241/251/232 263/276/255 282/296/274  1.087 1.082 1.083 1.084 1.080
//   d128 non-causal 243/244/222 279/282/263 300/303/290 312/315/299 318/322/307  1.101 1.072 1.046 1.056 1.048
//        causal     178/178/165 226/228/216 263/265/253 288/291/282 317/320/313  1.083 1.054 1.046 1.030 1.022
//   d256 non-causal 208/210/199 235/235/226 250/251/246 259/259/252 263/263/259  1.051 1.040 1.019 1.028 1.017
//        causal     161/161/147 199/198/186 227/227/214 254/255/241 265/265/255  1.095 1.065 1.057 1.055 1.040
//   round 8 / round 7: d64 +3.2..5.2%, d128 +0.3..1.3%, d256 -0.2..+0.5% (noise). All 647 backward GPU
//   tests pass, memcheck clean on the subset (TMA path: d64 plain, odd seqlens, d40).
// Rejected in round 8 (spill-free unless said):
//   - D = 64 plain: S / dP in two 2-m-tile passes inside one basic block per tile kind (the full /
//     masked branch outside the passes), so ptxas interleaves the first pass's exponentials with the
//     second pass's mma (it did: MUFU between HMMA in the SASS): 233 registers, but d64 -3..-5%
//     (16k: 271 vs 284; with the row change 277): the K / V fragments loaded twice cost more than the
//     overlap gains. With four m-tiles in that one block it spills 32 bytes.
//   - the unpredicated rows at D = 256: -1.5..-2% (d256 16k 259 vs 264); kept at D <= 128 only.
//   - the TMA issue at the top of the step instead of after the dV product: same as after dV
//     (d64 within +-0.5%), so it stays at Mainloop::kIssueAt.
// Compact tiles (99 KiB GPUs). sm_86 / sm_89 (RTX 30xx / 40xx, A10, L4, L40) offer 101376 bytes
// per block, where no standard tile fits even with one stage (D = 64 / 128 / 256 need 129 / 128.5
// / 144.5 KiB). BwdTile<D, true>, with the warp layouts of the standard tile of the same head dim;
// choose_bwd_tile takes standard over compact, two stages over one:
//   D = 64:  64 x 128, two stages, 99328 bytes (+128 static: 99456); FA2's sm86 / sm89 tile and
//            warp atoms (S / dP 2 x 4, dK / dV 4 x 2, dQ 4 x 2); two m-tiles per S / dP pass.
//   D = 128: 32 x 128, one stage, 98560 bytes (two need 115200). FA2 takes 64 x 64 there (80.5 KiB,
//            S / dP 4 x 2, dK / dV 2 x 4, V in registers); ours with that tile was 2-8% slower
//            (H200 under the 101376 limit, bf16, 16k tokens, hidden 2048, TFLOP/s 32 x 128 / 64 x 64,
//            best of 3: 1k / 4k / 8k 173 / 163, 206 / 196, 208 / 203; causal 139 / 135, 198 / 184,
//            215 / 200): per q row the block covers twice the keys, so half the dQ red.add per
//            flop and twice the K / V reuse per Q / dO load, for the same mma work per step.
//   D = 256: 64 x 32, one stage, V in registers (kVInRegs), 98816 bytes (+128 static: 98944): FA2's
//            sm86 / sm89 tile (its Flash_bwd_kernel_traits<256, 64, 32, 8, 4, 1, 2, true, true>).
//            K, V, Q and dO alone need 96 KiB and P / dS 8 more (104.5 KiB), so each warp loads its
//            16 keys of V as the dP product's B fragments once per block (64 registers; dK / dV hold
//            64 at this tile, half the standard tile's 128) and P / dS then live where V was. The
//            S / dP warps are 4 x 2 (16 rows x 16 keys), dK / dV 2 x 4 (16 keys x 64 columns), dQ
//            2 x 4 as in the standard tile; P / dS rows of 32 keys are 64 bytes (swz<32>). Where no
//            tile fits (below 98944 bytes), calls throw unsupported (head_dim, bytes needed and
//            offered).
// Same kernels otherwise, no TMA form (Hopper never takes them); built for sm_80 and sm_90a, so that
// FLASHATTN_MAX_SMEM_PER_BLOCK=101376 (device_smem.hpp) tests and times them on an H100 / H200.
// seq_pad is rounded to whole 64-row blocks (the preprocess' unit) since a 32-row q tile no longer
// implies it. Measured in one call (H200, bf16, 16k tokens, hidden 2048, bench/sm80_bwd_tune.cu,
// TFLOP/s standard / compact, the compact ones under FLASHATTN_MAX_SMEM_PER_BLOCK=101376, best of 3
// interleaved; on an H200 these only say that the compact tiles work and roughly how fast, not how an
// sm_86 / sm_89 runs them):
//   d64  1k 224 / 196   4k 277 / 235   8k 291 / 244   causal 162 / 146   247 / 212   272 / 230
//   d128 1k 241 / 173   4k 299 / 204   8k 314 / 206   causal 175 / 138   262 / 197   288 / 215
// Same call: tests/cuda/test_backward_compact_tiles.cpp and every backward GPU test pass under 101376
// (then with no D = 256 tile), 166912 and no limit; memcheck / racecheck clean.
// D = 256 (added later; H200, bf16, same shapes, bench/sm80_bwd_tune.cu, TFLOP/s standard / compact,
// two interleaved rounds): 1k 197-198 / 123-128, 4k 245 / 147, 8k 254-257 / 148-150; causal 141-146 /
// 106-109, 220-224 / 138-141, 249-252 / 147-149. Its tests (480 compact, 651 backward at 101376 and
// with no limit) pass; memcheck / racecheck clean on the D = 256 / 160 subset.
// One-stage tiles (A100 D = 256, compact D = 128 / 256) then issued the next q tile before the dQ
// product instead of after it (flash_bwd_kernel.cuh), so its loads run under the dQ mma and reds:
// H200, bf16, same shapes, TFLOP/s before / after, two interleaved rounds, 1k / 4k / 8k:
//   compact d128 (101376)   166 / 176-178   199-200 / 219-220   204-205 / 227-230
//            causal          122-128 / 133-139   194-196 / 192-195   212-214 / 210-211
//   compact d256 (101376)   123-124 / 135-137   144-145 / 161-162   148-149 / 169-170
//            causal          106-108 / 109-115   140-141 / 156-157   149 / 164-168
//   A100 d256 (166912)      174-176 / 184-187   220 / 237-238   227-228 / 248-249
//            causal          137-142 / 140-144   204-206 / 209-214   229-231 / 244-245
//   (two-stage tiles, unchanged code path: within +-2%, noise). Compact d128 causal 4k / 8k lose
//   0-2%; every other cell gains 1-14%.
// Rejected: on sm_90 (split dK / dV products) issuing the next dO and rows after dV, behind one
// more barrier, and Q before dQ: 2-10% slower than all before dQ on every one-stage tile (same
// shapes, two interleaved rounds, one H200 call; e.g. compact d128 8k 230 -> 215, A100 d256 8k
// 246-250 -> 237-239).

#pragma once

#include <cstddef>
#include <initializer_list>

namespace flashattn::detail::sm80_bwd {

constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;

// kCompact: the tiles of 99 KiB GPUs (see "Compact tiles" above).
template <int kHeadDim, bool kCompact = false>
struct BwdTile {
  static_assert(kHeadDim == 64 || kHeadDim == 128 || kHeadDim == 256, "instantiated head dims");
  static constexpr int kBlockM = kCompact ? (kHeadDim == 128 ? 32 : 64) : kHeadDim == 64 ? 128 : 64;
  static constexpr int kBlockN = kCompact ? (kHeadDim == 256 ? 32 : 128) : kHeadDim <= 128 ? 128 : 64;
  static constexpr int D = kHeadDim;
  // V's dP fragments held in registers for the whole block; P / dS take V's shared memory.
  static constexpr bool kVInRegs = kCompact && kHeadDim == 256;

  // S / dP (M x N): kSWarpsM x kSWarpsN warps.
  static constexpr int kSWarpsM = kHeadDim <= 128 ? 2 : 4;
  static constexpr int kSWarpsN = kWarps / kSWarpsM;
  static constexpr int kSRows = kBlockM / kSWarpsM, kSMTiles = kSRows / 16;
  static constexpr int kSCols = kBlockN / kSWarpsN, kSNTiles = kSCols / 8;
  // dK / dV (N x D): kKvWarpsN x kKvWarpsD warps; accumulators live for the whole block.
  static constexpr int kKvWarpsN = kHeadDim <= 128 ? 4 : 2;
  static constexpr int kKvWarpsD = kWarps / kKvWarpsN;
  static constexpr int kKvRows = kBlockN / kKvWarpsN, kKvMTiles = kKvRows / 16;
  static constexpr int kKvCols = D / kKvWarpsD, kKvNTiles = kKvCols / 8;
  // dQ (M x D): kQWarpsM x kQWarpsD warps, in column chunks of at most 32 (16 fp32 per m-tile).
  static constexpr int kQWarpsM = kHeadDim == 64 ? 4 : 2;
  static constexpr int kQWarpsD = kWarps / kQWarpsM;
  static constexpr int kQRows = kBlockM / kQWarpsM, kQMTiles = kQRows / 16;
  static constexpr int kQCols = D / kQWarpsD;
  static constexpr int kQChunk = kQCols < 32 ? kQCols : 32, kQNTiles = kQChunk / 8;

  static_assert(kSMTiles >= 1 && kKvMTiles >= 1 && kQMTiles >= 1, "warps own whole m16 slices");
  static_assert(kSNTiles % 2 == 0 && kKvNTiles % 2 == 0 && kQNTiles % 2 == 0, "B operands load n-tile pairs");
  static_assert(kBlockN % 64 == 0 || kBlockN == 32, "P / dS rows are swizzle periods (swz<kBlockN>)");
  static_assert(!kVInRegs || kSNTiles == 2, "V fragments: one n-tile pair per warp");

  // Elements of the V region: V, or with kVInRegs whichever of V and P + dS is larger.
  static constexpr std::size_t kVRegion = !kVInRegs || kBlockN * D >= 2 * kBlockM * kBlockN
                                              ? std::size_t(kBlockN) * D
                                              : 2 * std::size_t(kBlockM) * kBlockN;
  // Elements of P + dS outside the V region.
  static constexpr std::size_t kPdsOwn = kVInRegs ? 0 : 2 * std::size_t(kBlockM) * kBlockN;

  static constexpr std::size_t smem_bytes(int stages) {
    return 2 * (std::size_t(kBlockN) * D + kVRegion + std::size_t(stages) * 2 * kBlockM * D + kPdsOwn) +
           4 * std::size_t(stages) * 2 * kBlockM;  // LSE2 and Drow of each stage's rows (fp32)
  }
};

// The kernel's static shared memory (BlockBases, the TMA mbarriers), padded to the 128-byte
// aligned dynamic base: counted against the device's per-block limit with the tiles.
inline constexpr std::size_t kBwdStaticSmem = 128;

enum class BwdTileKind { standard, compact, none };
struct BwdTileChoice {
  BwdTileKind kind;
  int stages;  // 0 with none
};

// Dynamic shared memory of a tile kind at padded head dim d (64, 128, 256).
constexpr std::size_t bwd_tile_smem(int d, BwdTileKind kind, int stages) {
  if (kind == BwdTileKind::standard)
    return d == 64 ? BwdTile<64>::smem_bytes(stages)
           : d == 128 ? BwdTile<128>::smem_bytes(stages)
                      : BwdTile<256>::smem_bytes(stages);
  if (kind == BwdTileKind::compact)
    return d == 64    ? BwdTile<64, true>::smem_bytes(stages)
           : d == 128 ? BwdTile<128, true>::smem_bytes(stages)
                      : BwdTile<256, true>::smem_bytes(stages);
  return 0;
}

// The tile a device with `smem_per_block` bytes per block (device_smem_per_block) runs at padded head
// dim d: the standard tile with two stages, else one; else the compact tile with two, else one;
// else none (the caller reports it as unsupported).
constexpr BwdTileChoice choose_bwd_tile(int d, std::size_t smem_per_block) {
  for (BwdTileKind kind : {BwdTileKind::standard, BwdTileKind::compact})
    for (int stages = 2; stages >= 1; --stages) {
      const std::size_t bytes = bwd_tile_smem(d, kind, stages);
      if (bytes > 0 && bytes + kBwdStaticSmem <= smem_per_block) return {kind, stages};
    }
  return {BwdTileKind::none, 0};
}

// Order of the dQ accumulator inside one q tile's kBlockM x D block. Lane l of warp w
// issues its kPerThread adds in kVec-wide vectors; the i-th value goes to
//   ((w * kPerThread / kVec + i / kVec) * 32 + l) * kVec + i % kVec,
// so every warp-wide red covers 32 * kVec consecutive floats (whole 128-byte lines)
// instead of 8 rows. kVec = 4 (red.global.add.v4.f32) on sm_90, where it exists: a quarter
// of the atomic instructions; 1 on sm_80. The main kernel and the convert kernel are
// compiled for the same architecture, so they always agree. i enumerates (chunk, m-tile,
// n-tile, row half, pair element) as the dQ loop of the mainloop issues them: a vector is
// one n-tile's four accumulators (rows g and g + 8), the four consecutive registers its mma
// wrote, so the red takes them as they are (the earlier order, pairs of n-tiles per row
// half, needed 24 register moves a step at D = 128 to gather each vector).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
inline constexpr int kDqVec = 4;
#else
inline constexpr int kDqVec = 1;
#endif

template <int kHeadDim, bool kCompact = false>
struct DqLayout {
  using Tile = BwdTile<kHeadDim, kCompact>;
  static constexpr int kVec = kDqVec;
  static constexpr int kPerThread = Tile::kBlockM * kHeadDim / kThreads;
  static_assert(kPerThread % kVec == 0 && kVec <= 4, "a vector lies within one n-tile's accumulators");
  static constexpr int index(int chunk, int mt, int n, int half, int c) {
    return (((chunk * Tile::kQMTiles + mt) * Tile::kQNTiles + n) * 2 + half) * 2 + c;
  }
  // Offset of value i of lane `lane` in warp `warp`.
  static constexpr int position(int warp, int lane, int i) {
    return ((warp * (kPerThread / kVec) + i / kVec) * 32 + lane) * kVec + i % kVec;
  }
  // (row, col) within the tile of position pos.
  static constexpr void element(int pos, int& row, int& col) {
    const int r = pos % kVec, lane = (pos / kVec) & 31, k = pos / (32 * kVec);
    const int warp = k / (kPerThread / kVec), i = (k % (kPerThread / kVec)) * kVec + r;
    const int c = i & 1, half = (i >> 1) & 1, n = (i >> 2) % Tile::kQNTiles, rest = (i >> 2) / Tile::kQNTiles;
    const int mt = rest % Tile::kQMTiles, chunk = rest / Tile::kQMTiles;
    const int q_m = warp % Tile::kQWarpsM, q_d = warp / Tile::kQWarpsM;
    row = q_m * Tile::kQRows + mt * 16 + half * 8 + (lane >> 2);
    col = q_d * Tile::kQCols + chunk * Tile::kQChunk + n * 8 + 2 * (lane & 3) + c;
  }
};

}  // namespace flashattn::detail::sm80_bwd
