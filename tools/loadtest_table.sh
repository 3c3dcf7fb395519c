#!/usr/bin/env bash
# The live-calls table of docs/measurements.md, reproducibly: for each number of calls, a
# fresh `callmood serve` (started here, so CPU and peak RSS belong to that row alone), then
# `callmood loadtest` of that many two-party calls with transcripts (tools/make_call.sh),
# then the server's CPU seconds (utime + stime from /proc/PID/stat) and peak RSS (VmHWM from
# /proc/PID/status). One markdown row per run, with the 1-minute load average read before it:
# on a shared machine other jobs skew every figure, so keep the load next to the numbers.
#
#   tools/loadtest_table.sh [--callmood PATH] [--calls "1 2 4 8 12 16"] [--call WAV]...
#                           [--alone | --alone-from FILE] [--reference REF.tsv,...] [--port N]
#                           [--transcripts DIR] [-- SERVE-FLAGS...]
#
# The Whisper runs column is the server's own count, read from its /metrics before it is
# stopped: windows (callmood_asr_windows_total, every run of the model), of which pieces
# decoded again alone because a window repeated an earlier piece's words
# (callmood_asr_repeat_redecodes_total) and because Whisper was unsure of them
# (callmood_asr_low_confidence_redecodes_total). The server gets --metrics-addr on PORT+1.
#
# The last column is the pooled WER of the row's calls against the first row's call (run
# it with 1 call first): tools/loadtest_wer.py on the `loadtest --transcripts` files, which
# stay in DIR when --transcripts is given.
#
# Several --call files (tools/make_calls.py: every call its own voices and words, as real
# traffic is) are played call k = file k modulo their number. Then give --alone: before the
# rows, each file is played alone, one after the other on a fresh server, and the WER
# column is against that (a first row of one call would hold file 0 alone); the merged
# transcripts are kept as DIR/alone.jsonl, and --alone-from FILE takes such a file from an
# earlier run instead of playing the calls again (same files, same build).
# --reference (one CHANNEL<TAB>text file per call file, comma-separated, in the same order)
# adds the WER against what was said, alone and under load (tools/loadtest_wer.py
# --reference), the issue's bar.
#
# e.g. tools/loadtest_table.sh -- --pack-across-calls   (packing across calls is off by default)
# Needs a release build (cargo build --release), sox (for make_call.sh) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLMOOD=target/release/callmood
CALLS="1 2 4 8 12 16"
CALL_FILES=()
ALONE=""
ALONE_FROM=""
REFERENCE=""
PORT=50591
TDIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --callmood) CALLMOOD="$2"; shift 2 ;;
    --calls) CALLS="$2"; shift 2 ;;
    --call) CALL_FILES+=("$2"); shift 2 ;;
    --alone) ALONE=1; shift ;;
    --alone-from) ALONE_FROM="$2"; ALONE=1; shift 2 ;;
    --reference) REFERENCE="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --transcripts) TDIR="$2"; mkdir -p "$TDIR"; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--callmood PATH] [--calls \"1 2 4\"] [--call WAV]... [--alone | --alone-from FILE] [--reference REF.tsv,...] [--port N] [--transcripts DIR] [-- SERVE-FLAGS...]" >&2; exit 2 ;;
  esac
done
SERVE_FLAGS=("$@")
if [ -n "$REFERENCE" ] && [ -z "$ALONE" ]; then
  # The WER against what was said is given alone and under load, side by side.
  echo "$0: --reference needs --alone or --alone-from FILE (the calls played alone)" >&2
  exit 2
fi
tmp=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
TDIR=${TDIR:-$tmp}
first=""
if [ ${#CALL_FILES[@]} -eq 0 ]; then
  CALL_FILES=("$tmp/call.wav")
  tools/make_call.sh "$tmp/call.wav" >/dev/null
fi
ticks=$(getconf CLK_TCK)
# utime + stime of a process, s.
cpu_s() { awk -v t="$ticks" '{ print ($14 + $15) / t }' "/proc/$1/stat"; }

# A fresh server on PORT, returning once it accepts connections.
start_server() {
  # Numbers kept (only the cue and length rules redact): the WER column counts them.
  CALLMOOD_SECURITY__REDACT_ALL_NUMBERS=false "$CALLMOOD" serve --addr "127.0.0.1:$PORT" --max-calls 64 \
    --metrics-addr "127.0.0.1:$((PORT + 1))" "${SERVE_FLAGS[@]}" \
    >"$tmp/serve.log" 2>&1 &
  server=$!
  # Ready when the port accepts a connection (the models load first).
  for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    if ! kill -0 "$server" 2>/dev/null; then cat "$tmp/serve.log" >&2; exit 1; fi
    sleep 0.1
  done
}
stop_server() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }

if [ -n "$ALONE_FROM" ]; then
  if [ "$ALONE_FROM" != "$TDIR/alone.jsonl" ]; then cp "$ALONE_FROM" "$TDIR/alone.jsonl"; fi
  first=alone
elif [ -n "$ALONE" ]; then
  # Each call file alone, one after the other, as call k = recording k.
  start_server
  : >"$TDIR/alone.jsonl"
  for k in "${!CALL_FILES[@]}"; do
    "$CALLMOOD" loadtest --server "http://127.0.0.1:$PORT" --calls 1 --format json \
      "${CALL_FILES[$k]}" --transcripts "$tmp/alone-$k.jsonl" >/dev/null
    python3 - "$k" "$tmp/alone-$k.jsonl" >>"$TDIR/alone.jsonl" <<'EOF'
import json, sys
k = int(sys.argv[1])
for line in open(sys.argv[2]):
    if line.strip():
        u = json.loads(line)
        u["call"], u["recording"] = k, k
        print(json.dumps(u))
EOF
  done
  stop_server
  first=alone
fi
echo "== $(date -u +%FT%TZ)  $(nproc) CPUs  $CALLMOOD serve ${SERVE_FLAGS[*]:-}"
echo "| calls | load avg (1 min) before | prosody p50 / p95 | full result p50 / p95 (max) | transcripts dropped | calls completed | server CPU s (cores) | peak RSS | Whisper runs (repeat / low-confidence re-decodes) | WER vs the first row (or each call alone) |"
echo "|---:|---:|---|---|---:|---:|---|---:|---|---:|"
for n in $CALLS; do
  start_server
  load=$(cut -d' ' -f1 /proc/loadavg)
  cpu0=$(cpu_s "$server")
  t0=$(date +%s.%N)
  "$CALLMOOD" loadtest --server "http://127.0.0.1:$PORT" --calls "$n" --format json "${CALL_FILES[@]}" \
    --transcripts "$TDIR/$n.jsonl" >"$tmp/report.json"
  t1=$(date +%s.%N)
  cpu1=$(cpu_s "$server")
  hwm_kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status")
  python3 - "$((PORT + 1))" >"$tmp/runs" <<'EOF'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
v = {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l and not l.startswith("#")}
g = lambda k: int(v.get(f"callmood_asr_{k}_total", 0))
print(f"{g('windows')} ({g('repeat_redecodes')} / {g('low_confidence_redecodes')})")
EOF
  stop_server
  if [ -z "$first" ]; then first=$n; wer="(reference)"; else
    wer=$(python3 tools/loadtest_wer.py "$TDIR/$first.jsonl" "$TDIR/$n.jsonl" --calls="$n" --cell)
  fi
  if [ -n "$REFERENCE" ] && [ -n "$ALONE" ]; then
    wer="$wer; $(python3 tools/loadtest_wer.py "$TDIR/alone.jsonl" "$TDIR/$n.jsonl" --calls="$n" \
      --reference="$REFERENCE" --digits | sed 's/^against the reference: //')"
  fi
  python3 - "$tmp/report.json" "$n" "$load" "$cpu0" "$cpu1" "$t0" "$t1" "$hwm_kb" "$wer" \
    "$(cat "$tmp/runs")" <<'EOF'
import json, sys
path, n, load, cpu0, cpu1, t0, t1, hwm_kb, wer, runs = sys.argv[1:]
r = json.load(open(path))
s = lambda ms: f"{ms / 1000:.2f}"
p, f = r["prosody"], r["full"]
cpu = float(cpu1) - float(cpu0)
cores = cpu / (float(t1) - float(t0))
print(f"| {n} | {load} | {s(p['p50_ms'])} / {s(p['p95_ms'])} s | "
      f"{s(f['p50_ms'])} / {s(f['p95_ms'])} s ({s(f['max_ms'])}) | {r['transcripts_dropped']} | "
      f"{r['completed']} of {r['calls']} | {cpu:.1f} ({cores:.2f}) | {int(hwm_kb) / 1024:.0f} MiB | {runs} | {wer} |")
EOF
done
