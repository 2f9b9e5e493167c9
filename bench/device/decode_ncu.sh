#!/bin/bash
# Nsight Compute on decode shapes: flashattn's decode kernel (examples/decode_bench, one shape)
# beside torch SDPA's cuDNN kernels (sdpa_decode_one.py): duration, SM active cycles, DRAM
# bytes, stall reasons, per-SASS samples of ours. DB=decode_bench path, NCU_SHAPES="B:Sk ...".
cd "$(dirname "$0")"
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
echo "NCU=$NCU"
SEC="--section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats --section SchedulerStats --section SourceCounters --section MemoryWorkloadAnalysis"
MET="--metrics gpu__time_duration.sum,sm__cycles_active.avg,sm__cycles_active.max,sm__cycles_active.min,sm__cycles_elapsed.max,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed"
for shape in ${NCU_SHAPES:-1:4096 16:16384}; do
  set -- ${shape//:/ }; tag=b$1s$2
  timeout 150 $NCU --clock-control none --cache-control none -k regex:decode_attention --launch-skip 8 --launch-count 1 $SEC $MET -o $OUT/ours_$tag $DB $1 $2 0 10 > $OUT/ncu_ours_$tag.log 2>&1; echo "ncu ours $tag rc=$?"
  timeout 150 $NCU --clock-control none --cache-control none --launch-skip 12 --launch-count 6 $MET -o $OUT/cudnn_$tag python3 sdpa_decode_one.py $1 $2 cudnn > $OUT/ncu_cudnn_$tag.log 2>&1; echo "ncu cudnn $tag rc=$?"
  $NCU --import $OUT/ours_$tag.ncu-rep --page details > $OUT/ours_${tag}_details.txt 2>&1
  $NCU --import $OUT/ours_$tag.ncu-rep --page source --csv --print-source sass > $OUT/ours_${tag}_sass.csv 2>&1
  $NCU --import $OUT/cudnn_$tag.ncu-rep --page details > $OUT/cudnn_${tag}_details.txt 2>&1
done
rm -f $OUT/*.ncu-rep; ls -la $OUT
