#!/usr/bin/env python3
"""Two builds of callmood side by side on one recording (engine experiments, issue 19).

Runs `BIN analyze --no-emotion --no-redaction REC` for build A and build B, alternating the
order from round to round (A B, B A, A B, ...), and prints per run the wall time (model
load included) and the WER against a reference, and per round the ratio B / A. At the end:
the median ratio, each build's WER, and whether each build gave the same words every run.

    python3 tools/fw_compare.py --keep /tmp/cv642.wav      # the recording and its words
    python3 tools/bin_ab.py --a target/release/callmood --b OTHER/callmood --rounds 3 /tmp/cv642.wav

The reference is the 100 Common Voice transcripts of `tools/fw_compare.py`'s recording
(read from ../shared/data), number words as digits, as that tool counts them.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fw_compare  # noqa: E402  (its recording's clips and transcripts)
import loadtest_wer  # noqa: E402

loadtest_wer.DIGITS = True


def reference(data):
    _, refs = fw_compare.transcribed_clips(data)
    return [w for r in refs for w in loadtest_wer.words(r)]


def run(binary, rec):
    t0 = time.time()
    out = subprocess.run([binary, "analyze", "--no-emotion", "--no-redaction", rec], check=True,
                         capture_output=True, text=True).stdout
    return time.time() - t0, loadtest_wer.analyze_words(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="build A's callmood binary")
    ap.add_argument("--b", required=True, help="build B's callmood binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("rec", help="the recording (tools/fw_compare.py --keep FILE)")
    a = ap.parse_args()
    ref = reference(a.data)
    print(f"{a.rec}: {len(ref)} reference words; load {open('/proc/loadavg').read().split()[0]}")
    ratios, hyps = [], {"A": [], "B": []}
    for r in range(a.rounds):
        order = ["A", "B"] if r % 2 == 0 else ["B", "A"]
        wall = {}
        for which in order:
            w, hyp = run(a.a if which == "A" else a.b, a.rec)
            e = loadtest_wer.edits(ref, hyp)
            wall[which] = w
            hyps[which].append(hyp)
            print(f"round {r + 1} {which}: {w:.2f} s, WER {100 * e / len(ref):.2f} % ({e})", flush=True)
        ratios.append(wall["B"] / wall["A"])
        print(f"round {r + 1}: B / A {ratios[-1]:.3f}")
    for which in ("A", "B"):
        e = loadtest_wer.edits(ref, hyps[which][0])
        same = all(h == hyps[which][0] for h in hyps[which])
        print(f"{which}: WER {100 * e / len(ref):.2f} %, same words every run: {same}")
    print(f"median B / A: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    sys.exit(main())
