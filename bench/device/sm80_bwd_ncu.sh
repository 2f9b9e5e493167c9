#!/bin/bash
# Nsight Compute on backward shapes of ours (bench_$NCU_OURS, default bench_cur) and FA2
# (fa2_bwd_one.py): stall reasons, pipe use, per-SASS samples. NCU_CFG="D:causal:seqlen ...".
cd "$(dirname "$0")"
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "NCU=$NCU"
SEC="--section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section SchedulerStats --section InstructionStats --section SourceCounters --section MemoryWorkloadAnalysis"
MET="--metrics sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active,sm__inst_executed_pipe_lsu.avg.pct_of_peak_sustained_active,sm__pipe_shared_cycles_active.avg.pct_of_peak_sustained_active,smsp__inst_executed.sum,sm__cycles_elapsed.avg"
for cfg in ${NCU_CFG:-64:0:16384 256:0:16384}; do
  set -- ${cfg//:/ }; tag=d$1c$2s$3
  timeout 150 $NCU --clock-control none -k regex:flash_bwd_kernel --launch-skip 2 --launch-count 1 $SEC $MET -o $OUT/ours_$tag ./bench_${NCU_OURS:-cur} $1 $2 $3 4 > $OUT/ncu_ours_$tag.log 2>&1; echo "ncu ours $tag rc=$?"
  [ -z "$NCU_NOFA2" ] && timeout 150 $NCU --clock-control none -k regex:flash_bwd_dq_dk_dv --launch-skip 2 --launch-count 1 $SEC $MET -o $OUT/fa2_$tag python3 fa2_bwd_one.py $1 $2 $3 > $OUT/ncu_fa2_$tag.log 2>&1; echo "ncu fa2 $tag rc=$?"
  for r in ours ${NCU_NOFA2:-fa2}; do
    $NCU --import $OUT/${r}_$tag.ncu-rep --page details > $OUT/${r}_${tag}_details.txt 2>&1
    $NCU --import $OUT/${r}_$tag.ncu-rep --page source --csv --print-source sass > $OUT/${r}_${tag}_sass.csv 2>&1
  done
done
rm -f $OUT/*.ncu-rep; ls -la $OUT
