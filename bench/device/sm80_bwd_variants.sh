#!/bin/bash
# One device call comparing sm80 backward variants beside FA2 (how rounds 7-8 of
# src/cuda/sm80/tile_size_bwd_sm80.hpp were measured): the variants' timing binaries ($BV,
# bench_<name>.gz, each bench/sm80_bwd_tune.cu linked against one variant's library) run
# interleaved $RUNS times, torch's FA2 backward once (bench/sm80_bwd_fa2.py), then for each test
# binary in $TV (tests_<name>.gz: flashattn_tests_cuda of a variant) the backward GPU tests in 8
# shards and memcheck on the filter in sm80_bwd_sanfilter.txt. Copy this file, sm80_bwd_sanfilter.txt, sm80_bwd_ncu.sh, fa2_bwd_one.py and the .gz
# binaries into a git-ignored folder at the repository root (it reads ../bench/), carry it, and
# run e.g. `BV="cur new" TV="new" RUNS=3 bash <folder>/sm80_bwd_variants.sh`; NCU_RUN=1 adds
# sm80_bwd_ncu.sh. Prints a table of TFLOP/s per variant and ratio to FA2; logs under $OUT.
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:$LD_LIBRARY_PATH
FINAL=$OUT; OUT=/tmp/o8; mkdir -p $OUT; export OUT
nvidia-smi -L | tee $OUT/device.txt
for f in *.gz; do gunzip -f $f & done; wait; chmod +x bench_* tests_*
BV="${BV:-cur}"; TV="${TV:-}"; RUNS="${RUNS:-2}"
t0=$(date +%s)
for r in $(seq 1 $RUNS); do
  ord() { if [ $((r % 2)) = 0 ]; then echo "$@" | tr ' ' '\n' | tac | paste -sd' '; else echo "$@"; fi; }
  for X in $(ord $BV); do timeout 40 ./bench_$X >> $OUT/bench_$X.csv 2>&1; echo "bench_$X rc=$? t=$(( $(date +%s) - t0 ))"; done
  if [ $r = 1 ]; then timeout 120 python3 ../bench/sm80_bwd_fa2.py > $OUT/bench_torch.csv 2>&1; echo "torch rc=$? t=$(( $(date +%s) - t0 ))"; head -1 $OUT/bench_torch.csv; fi
done
python3 - "$BV" <<'PY'
import os, sys
out = os.environ["OUT"]; names = sys.argv[1].split()
def load(name, k=7, key=(1, 2, 3)):
    d = {}
    try:
        for r in open(f"{out}/{name}.csv"):
            f = r.strip().split(",")
            if len(f) <= k or f[0] == "impl" or r.startswith("#"): continue
            try: d.setdefault(tuple(int(f[i]) for i in key), []).append(float(f[k]))
            except ValueError: pass
    except FileNotFoundError: pass
    return d
t = load("bench_torch"); rows = {n: load("bench_" + n) for n in names}
print("D c S | " + " ".join(names) + " (TFLOP/s, runs) | fa2 | " + " ".join(f"{n}/fa2" for n in names))
for D in (64, 128, 256):
  for c in (0, 1):
    for S in (1024, 2048, 4096, 8192, 16384):
      fa = max(t.get((D, c, S), [0]))
      vals = {n: rows[n].get((D, c, S), [0]) for n in names}
      best = {n: max(v) for n, v in vals.items()}
      print(D, c, S, "|", " ".join("/".join(f"{x:.0f}" for x in vals[n]) for n in names), "|", fa, "|",
            " ".join(f"{best[n]/fa:.3f}" if fa else "-" for n in names))
PY
[ -n "$NCU_RUN" ] && bash sm80_bwd_ncu.sh
start=$(date +%s)
S="$(cat sm80_bwd_sanfilter.txt)"
for X in $TV; do timeout 150 compute-sanitizer --tool memcheck ./tests_$X --gtest_brief=1 --gtest_filter="$S" > $OUT/memcheck_$X.log 2>&1 & done
for X in $TV; do
  F='*Sm80Backward*'
  for i in $(seq 0 7); do
    GTEST_TOTAL_SHARDS=8 GTEST_SHARD_INDEX=$i timeout 150 ./tests_$X --gtest_brief=1 --gtest_filter="$F" > $OUT/shard_${X}_$i.log 2>&1 &
  done
  wait -n; wait -n; wait -n; wait -n; wait -n; wait -n; wait -n; wait -n
done
wait
for X in $TV; do
  cat $OUT/shard_${X}_*.log > $OUT/tests_$X.log; rm $OUT/shard_${X}_*.log
  echo "tests_$X: $(( $(date +%s) - start )) s; passed $(grep -h 'PASSED  \]' $OUT/tests_$X.log | awk '{s+=$4} END{print s}'), failed lines $(grep -c 'FAILED  \]' $OUT/tests_$X.log), shards done $(grep -c 'tests ran' $OUT/tests_$X.log)/8"
  grep -h "FAILED  \]" $OUT/tests_$X.log | head -8
done
for X in $TV; do echo "memcheck_$X: $(grep -h 'ERROR SUMMARY' $OUT/memcheck_$X.log | tail -1) $(grep -h 'tests ran\|PASSED  \]\|FAILED  \]' $OUT/memcheck_$X.log | paste -sd' ')"; done
cd /tmp && tar czf $FINAL/all.tgz o8 && cp /tmp/o8/device.txt $FINAL/
