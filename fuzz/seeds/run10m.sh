#!/bin/sh
# Runs one target to 10 million executions (or MAX seconds), one process, niced.
# Usage (from fuzz/): sh seeds/run10m.sh TARGET MAX_SECONDS
t=$1; max=$2
mkdir -p logs
start=$(date +%s)
RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run -s none "$t" "corpus/$t" -- \
  -runs=10000000 -max_total_time="$max" -print_final_stats=1 \
  > "logs/$t.log" 2>&1
rc=$?
echo "rc=$rc wall_s=$(( $(date +%s) - start ))" >> "logs/$t.log"
