#!/usr/bin/env python3
"""Word error rate of calls under load against the same recording played alone (issue 19,
item 4: packing must not cost words).

Inputs are `callmood loadtest --transcripts FILE` outputs: ALONE from a run of one call per
recording (`--calls 1` with one file), LOAD from the run under load. Each call's utterances
are put in the recording's own order (`recording_ms`: calls start at different places of a
recording and wrap around), per channel, and compared word for word with the same
recording's and channel's transcript played alone. Lower case, punctuation dropped.

    python3 tools/loadtest_wer.py ALONE.jsonl LOAD.jsonl [--calls=N] [--digits] [--json | --cell]
    python3 tools/loadtest_wer.py ALONE.jsonl LOAD.jsonl --calls=N --reference=REF.tsv[,REF2.tsv...] [--digits]

--calls=N: the calls of the load run (default: the highest call index seen, plus one); a
call with no line (it heard nothing) then counts as all its words deleted. --cell: the
pooled WER alone, as a table cell (tools/loadtest_table.sh). --digits: number words zero to
twenty count as their digits ("ten" = "10"), so that Whisper writing a number another way
in another window is no error. --reference=REF.tsv (`CHANNEL<TAB>text` lines in the
recording's order; tools/make_call_reference.tsv is the call of tools/make_call.sh; with
several recordings one file each, comma-separated, in the recordings' order, as
tools/make_calls.py writes them): WER of the calls alone and of the calls under load
against what was said, and the difference (the issue's bar), instead of the distance
between the two. ALONE then holds each recording played alone as call k = recording k
(tools/loadtest_table.sh --alone).

Prints a line per call under load (its edits, the reference's words, its WER) and the pooled
WER (all edits over all reference words). The pooled figure bounds how far the WER of calls
under load can be from the call alone against any reference.
"""
import json
import re
import sys
from collections import defaultdict


NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
DIGITS = False


def words(text):
    ws = re.sub(r"[^\w'\[\]\s]", " ", text.lower()).split()
    return [NUMBER_WORDS.get(w, w) for w in ws] if DIGITS else ws


def analyze_words(out):
    """The words of every `utterance` event's transcript in `callmood analyze`'s JSON lines
    `out`, in output order (fw_compare.py, gap_eval.py, gap_round2.py)."""
    return [w for line in out.splitlines() if line.strip()
            for w in words(json.loads(line).get("utterance", {}).get("transcript", ""))]


def load(path):
    calls = defaultdict(list)
    with open(path) as f:
        for line in f:
            if line.strip():
                u = json.loads(line)
                calls[(u["call"], u["recording"], u["channel_id"])].append(u)
    out = {}
    for key, us in calls.items():
        us.sort(key=lambda u: u["recording_ms"])
        out[key] = [w for u in us for w in words(u["transcript"])]
    return out


def edits(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def main(argv):
    global DIGITS
    DIGITS = "--digits" in argv
    args = [a for a in argv if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    if len(args) != 2:
        sys.exit(__doc__)
    # The first call of each recording in ALONE (call k plays recording k modulo their
    # number, so call r is recording r's first).
    alone = {(rec, ch): ws for (call, rec, ch), ws in load(args[0]).items() if call == rec}
    under = load(args[1])
    recordings = sorted({rec for rec, _ in alone})
    # Call k plays recording k modulo their number; a call (or a channel) that heard
    # nothing has no lines, and all its reference words count as deleted.
    n_calls = int(opts.get("calls", 1 + max(k[0] for k in under)))
    if "reference" in opts:
        absolute(opts["reference"], args[0], alone, under, n_calls, recordings)
        return
    rows, total_e, total_n = [], 0, 0
    for call in range(n_calls):
        rec = recordings[call % len(recordings)]
        e = n = 0
        for (r, ch), ref in alone.items():
            if r != rec:
                continue
            e += edits(ref, under.get((call, rec, ch), []))
            n += len(ref)
        rows.append({"call": call, "edits": e, "words": n, "wer": e / n if n else 0.0})
        total_e, total_n = total_e + e, total_n + n
    pooled = total_e / total_n if total_n else 0.0
    if "--cell" in argv:
        print(f"{100 * pooled:.2f} % ({total_e} of {total_n})")
        return
    if "--json" in argv:
        print(json.dumps({"calls": rows, "pooled_wer": pooled, "edits": total_e,
                          "words": total_n}))
        return
    for r in rows:
        print(f"call {r['call']:3d}: {r['edits']:4d} edits of {r['words']:4d} words, "
              f"WER {100 * r['wer']:.2f} %")
    print(f"pooled: {total_e} edits of {total_n} words, WER {100 * pooled:.2f} % "
          f"({n_calls} calls)")


def absolute(paths, alone_path, alone, under, n_calls, recordings):
    """WER against what was said in each recording (`CHANNEL<TAB>text` lines, in the
    recording's order; one file per recording, comma-separated, recording k's k-th), alone
    and under load, and their difference."""
    paths = paths.split(",")
    if len(paths) != len(recordings):
        sys.exit(f"--reference names {len(paths)} files for {len(recordings)} recordings")
    refs = {}
    for rec, path in zip(recordings, paths):
        ref = defaultdict(list)
        with open(path) as f:
            for line in f:
                if line.strip():
                    ch, text = line.rstrip("\n").split("\t", 1)
                    ref[int(ch)].extend(words(text))
        refs[rec] = ref
    # Alone and under load over the same recordings: those the load run played, each as
    # often as it played them (with fewer calls than recordings, the first ones).
    e_alone = e_load = n = 0
    for call in range(n_calls):
        rec = recordings[call % len(recordings)]
        for ch, r in refs[rec].items():
            e_alone += edits(r, alone.get((rec, ch), []))
            e_load += edits(r, under.get((call, rec, ch), []))
            n += len(r)
    w_alone, w_load = e_alone / n, e_load / n
    n_load = n
    print(f"against the reference: alone {100 * w_alone:.2f} % ({e_alone} of {n}), "
          f"under load {100 * w_load:.2f} % ({e_load} of {n_load}), "
          f"difference {100 * (w_load - w_alone):+.2f} points")


if __name__ == "__main__":
    main(sys.argv[1:])
