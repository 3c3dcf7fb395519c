#!/usr/bin/env python3
"""Builds N different two-party test calls for `callmood loadtest` from real read speech
(issue 19: words under load). tools/make_call.sh builds one call, and a load test of it
plays that same call N times, so a window packed across calls holds the same sentences
from several calls; real traffic does not. Here every call has its own voices and words:
the Common Voice clips of ../shared/data/read-speech (100 clips, 99 volunteers, with their
prompt text, CC0) dealt out round-robin, call k taking clips k, k+N, k+2N, ..., its caller
(left) and agent (right) taking turns with 0.7 s between them, as 8 kHz G.711 mu-law
stereo. Each call's reference (what was said, `CHANNEL<TAB>text` lines in the call's
order) is written beside it, for tools/loadtest_wer.py --reference.

    python3 tools/make_calls.py OUT_DIR [--calls 12] [--data ../shared/data/read-speech]

Writes OUT_DIR/call-00.wav, OUT_DIR/call-00.tsv, ... Needs sox.
"""
import argparse
import csv
import os
import subprocess
import tempfile


def duration(path):
    return float(subprocess.check_output(["soxi", "-D", path], text=True))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--calls", type=int, default=12)
    p.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                  "shared", "data", "read-speech"))
    p.add_argument("--gap", type=float, default=0.7)
    a = p.parse_args()
    with open(os.path.join(a.data, "manifest.csv")) as f:
        rows = [r for r in csv.DictReader(f)
                if r["file"].startswith("commonvoice/") and r["transcript"].strip()]
    rows.sort(key=lambda r: r["file"])
    if len(rows) < 2 * a.calls:
        raise SystemExit(f"{len(rows)} clips with text: too few for {a.calls} calls")
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.calls):
            clips = rows[k::a.calls]
            left, right, ref = [], [], []
            for i, r in enumerate(clips):
                ch = i % 2
                src = os.path.join(a.data, r["file"])
                d = duration(src) + a.gap
                talk = os.path.join(tmp, f"{k}-{i}-talk.wav")
                quiet = os.path.join(tmp, f"{k}-{i}-quiet.wav")
                subprocess.check_call(["sox", "-G", "-R", src, "-r", "8000", "-c", "1", "-b",
                                       "16", talk, "pad", "0", str(a.gap)])
                subprocess.check_call(["sox", "-R", "-n", "-r", "8000", "-c", "1", "-b", "16",
                                       quiet, "trim", "0", f"{d:.3f}"])
                (left if ch == 0 else right).append(talk)
                (right if ch == 0 else left).append(quiet)
                ref.append(f"{ch}\t{r['transcript'].strip()}")
            lw, rw = os.path.join(tmp, f"{k}-l.wav"), os.path.join(tmp, f"{k}-r.wav")
            subprocess.check_call(["sox", "-R", *left, lw])
            subprocess.check_call(["sox", "-R", *right, rw])
            out = os.path.join(a.out, f"call-{k:02d}.wav")
            subprocess.check_call(["sox", "-G", "-R", "-M", lw, rw, "-e", "u-law", "-b", "8",
                                   out])
            with open(os.path.join(a.out, f"call-{k:02d}.tsv"), "w") as f:
                f.write("\n".join(ref) + "\n")
            print(f"{out}: {len(clips)} turns, {duration(out):.1f} s")


if __name__ == "__main__":
    main()
