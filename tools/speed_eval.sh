#!/usr/bin/env bash
# Real-time factor of the whole `callmood analyze` path, one invocation over every clip
# that tools/wer_eval.py finds (16 kHz PCM and 8 kHz mu-law), with and without
# transcription. Two views of the same measurement:
#   1. tools/wer_eval.py --speed   (median of --repeat runs; RTF and RTF per core)
#   2. one /usr/bin/time -v run per configuration (wall, user, sys, max RSS)
# Usage: tools/speed_eval.sh [--callmood PATH] [--repeat N]
# Note the load average it prints: on a shared 2-core box other jobs skew every number.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLMOOD=target/release/callmood
REPEAT=3
while [ $# -gt 0 ]; do
  case "$1" in
    --callmood) CALLMOOD="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    *) echo "usage: $0 [--callmood PATH] [--repeat N]" >&2; exit 2 ;;
  esac
done

echo "== $(date -u +%FT%TZ)  $(nproc) CPUs  $(uname -m)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 tools/wer_eval.py --speed --repeat "$REPEAT" --callmood "$CALLMOOD"

CLIPS=models/cache/eval/clips   # filled by wer_eval.py above
audio_s() { for f in "$@"; do soxi -D "$f"; done | awk '{s+=$1} END {printf "%.3f", s}'; }
for fmt in pcm16k ulaw8k; do
  files=("$CLIPS"/*."$fmt".wav)
  secs=$(audio_s "$CLIPS"/*.pcm16k.wav)
  for extra in "" "--no-transcript"; do
    log=$(mktemp)
    /usr/bin/time -v "$CALLMOOD" analyze $extra "${files[@]}" >/dev/null 2>"$log"
    awk -v fmt="$fmt" -v mode="${extra:-with transcript}" -v secs="$secs" '
      /Elapsed \(wall clock\)/ { n = split($NF, t, ":"); wall = (n == 3) ? t[1]*3600 + t[2]*60 + t[3] : t[1]*60 + t[2] }
      /User time/ { user = $NF } /System time/ { sys = $NF } /Maximum resident/ { rss = $NF }
      END { printf "/usr/bin/time: %s %-16s audio %.2f s  wall %.2f s  user %.2f s  sys %.2f s  RTF %.2fx  per core %.2fx  max RSS %d MiB\n",
                   fmt, mode, secs, wall, user, sys, secs / wall, secs / (user + sys), rss / 1024 }' "$log"
    rm -f "$log"
  done
done
echo "== load after: $(cut -d' ' -f1-3 /proc/loadavg)"
