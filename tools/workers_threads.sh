#!/bin/bash
# The workers/threads round of docs/measurements.md (issue 19, item 6): four configurations
# one after the other, 4 and 8 calls each, WER against what was said. Needs a release
# build and the 1-call transcripts of the words-under-load run in /tmp/ltw/pack/1.jsonl.
cd "$(dirname "$0")/.."
for wt in "1 2" "2 1" "1 1" "2 2"; do
  set -- $wt
  tools/loadtest_table.sh --calls "4 8" --transcripts /tmp/wt/w$1t$2 -- --workers $1 --threads $2
  for n in 4 8; do
    echo "w$1 t$2 n$n: $(python3 tools/loadtest_wer.py /tmp/ltw/pack/1.jsonl /tmp/wt/w$1t$2/$n.jsonl --calls=$n --reference=tools/make_call_reference.tsv --digits)"
  done
done
