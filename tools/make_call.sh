#!/usr/bin/env bash
# Builds a two-party test call for `callmood loadtest` from the committed speech clips:
# the caller (left) reads the LibriVox sentences, the agent (right) the CMU card prompts,
# taking turns with 0.7 s between them, the whole exchange repeated to about a minute,
# as 8 kHz G.711 μ-law stereo (what a phone system sends). Needs sox.
#
#   tools/make_call.sh OUT.wav
set -euo pipefail
out=${1:?usage: tools/make_call.sh OUT.wav}
root=$(cd "$(dirname "$0")/.." && pwd)
clips=$root/tests/fixtures/asr
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gap=0.7
left=() right=()
i=0
for pair in librivox-0880:cards-001 librivox-0890:cards-005 librivox-0930:cards-001; do
  c=$clips/${pair%%:*}.wav a=$clips/${pair##*:}.wav
  dc=$(soxi -D "$c") da=$(soxi -D "$a")
  # Caller speaks while the agent is silent, then the other way round.
  sox -G -R "$c" -r 8000 -c 1 "$tmp/l$i-a.wav" pad 0 "$gap"
  sox -R -n -r 8000 -c 1 "$tmp/l$i-b.wav" trim 0 "$(awk "BEGIN { print $da + $gap }")"
  sox -R -n -r 8000 -c 1 "$tmp/r$i-a.wav" trim 0 "$(awk "BEGIN { print $dc + $gap }")"
  sox -G -R "$a" -r 8000 -c 1 "$tmp/r$i-b.wav" pad 0 "$gap"
  left+=("$tmp/l$i-a.wav" "$tmp/l$i-b.wav") right+=("$tmp/r$i-a.wav" "$tmp/r$i-b.wav")
  i=$((i + 1))
done
sox -R "${left[@]}" "$tmp/left.wav"
sox -R "${right[@]}" "$tmp/right.wav"
# One exchange is about 24 s: three of them make the call.
sox -R "$tmp/left.wav" "$tmp/left.wav" "$tmp/left.wav" "$tmp/left3.wav"
sox -R "$tmp/right.wav" "$tmp/right.wav" "$tmp/right.wav" "$tmp/right3.wav"
sox -G -R -M "$tmp/left3.wav" "$tmp/right3.wav" -e u-law -b 8 "$out"
soxi "$out" | grep -E "Channels|Sample Rate|Duration|Encoding"
