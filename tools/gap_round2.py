#!/usr/bin/env python3
"""asr.gap_s, second round (issue 19, item 5; rule in docs/measurements.md, "Silence between
packed pieces", second round): the recogniser's own time and the words, each gap on two sets
of real utterances, without the server's other work in the figure.

    python3 tools/gap_round2.py [--gaps 1.0,0.5] [--rounds 3] [--work /tmp/gap2]

Sets (8 kHz G.711 mu-law, made with sox without dither, so the same bytes every run):
- cv: the 100 Common Voice clips of read-speech/ that have transcripts (about 5 s each);
- tess: 200 TESS clips ("Say the word ...", about 2 s each, like short answers on a call):
  of each of the two speakers every second word in sorted order, 100 words, the emotion
  going round the seven in turn.
Per set: each clip as its own file for `callmood bench-packing --profile --rounds 1
--gap-s G` (its "in all: run" seconds: mel, encoder, decoder, DTW of every window, as the
service runs it), `--rounds` times with the gaps' order alternating from round to round;
and the clips as one recording (1 s of silence after each) through `callmood analyze
--no-emotion --gap-s G` (deterministic decoding: once per gap), WER against the clips'
transcripts in order (lower case, punctuation dropped, number words as digits).
"""
import argparse
import csv
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadtest_wer  # noqa: E402

loadtest_wer.DIGITS = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sox_mulaw(src, dst, pad=0.0):
    if not os.path.exists(dst):
        extra = ["pad", "0", str(pad)] if pad else []
        subprocess.run(["sox", "-D", "-R", src, "-r", "8000", "-c", "1", "-e", "u-law", dst,
                        *extra], check=True)


def cv_set(data):
    out = []
    with open(os.path.join(data, "read-speech", "manifest.csv")) as f:
        for r in csv.DictReader(f):
            if r["transcript"].strip():
                out.append((os.path.join(data, "read-speech", r["file"]), r["transcript"]))
    return out


def tess_set(data):
    rows = list(csv.DictReader(open(os.path.join(data, "tess", "manifest.csv"))))
    emotions = sorted({r["emotion"] for r in rows})
    out = []
    for spk in sorted({r["speaker"] for r in rows}):
        mine = [r for r in rows if r["speaker"] == spk]
        words = sorted({r["transcript"] for r in mine})[::2]
        by = {(r["transcript"], r["emotion"]): r for r in mine}
        for i, w in enumerate(words):
            # the i-th word in the i-th emotion, or the next emotion that has the clip
            for k in range(len(emotions)):
                r = by.get((w, emotions[(i + k) % len(emotions)]))
                if r:
                    out.append((os.path.join(data, "tess", r["file"]), r["transcript"]))
                    break
    return out


def build(name, clips, work):
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "clips"), exist_ok=True)
    files, padded = [], []
    for i, (src, _) in enumerate(clips):
        f = os.path.join(d, "clips", f"c{i:03d}.wav")
        sox_mulaw(src, f)
        files.append(f)
        p = os.path.join(d, "clips", f"p{i:03d}.wav")
        sox_mulaw(src, p, pad=1.0)
        padded.append(p)
    rec = os.path.join(d, "rec.wav")
    if not os.path.exists(rec):
        subprocess.run(["sox", "-D", *padded, rec], check=True)
    ref = [w for _, t in clips for w in loadtest_wer.words(t)]
    return files, rec, ref


def profile(binary, gap, files):
    out = subprocess.run([binary, "bench-packing", "--profile", "--rounds", "1", "--gap-s",
                          str(gap), *files], check=True, capture_output=True, text=True).stdout
    m = re.search(r"in all: run ([0-9.]+) s", out)
    n = re.search(r"in (\d+) windows", out)
    return float(m.group(1)), int(n.group(1))


def wer(binary, gap, rec, ref):
    out = subprocess.run([binary, "analyze", "--no-emotion", "--no-redaction", "--gap-s", str(gap), rec],
                         check=True, capture_output=True, text=True).stdout
    hyp = loadtest_wer.analyze_words(out)
    return loadtest_wer.edits(ref, hyp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "callmood"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--gaps", default="1.0,0.5")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sets", default="cv,tess")
    ap.add_argument("--work", default="/tmp/gap2")
    a = ap.parse_args()
    gaps = [float(g) for g in a.gaps.split(",")]
    makers = {"cv": cv_set, "tess": tess_set}
    sets = {s: build(s, makers[s](a.data), a.work) for s in a.sets.split(",")}
    for s, (files, rec, ref) in sets.items():
        print(f"{s}: {len(files)} clips, {len(ref)} words", flush=True)
    runs = {(s, g): [] for s in sets for g in gaps}
    for r in range(a.rounds):
        order = gaps if r % 2 == 0 else gaps[::-1]
        for s, (files, _, _) in sets.items():
            for g in order:
                load = open("/proc/loadavg").read().split()[0]
                secs, windows = profile(a.bin, g, files)
                runs[(s, g)].append(secs)
                print(f"round {r + 1} {s} gap {g}: {secs:.2f} s, {windows} windows "
                      f"(load {load})", flush=True)
    for s, (files, rec, ref) in sets.items():
        base = gaps[0]
        for g in gaps:
            e = wer(a.bin, g, rec, ref)
            ratios = [x / y for x, y in zip(runs[(s, g)], runs[(s, base)])]
            print(f"{s} gap {g}: WER {100 * e / len(ref):.2f} % ({e} of {len(ref)}); run s "
                  f"{', '.join(f'{x:.2f}' for x in runs[(s, g)])}; ratio to {base} per round "
                  f"{', '.join(f'{x:.3f}' for x in ratios)}, median "
                  f"{statistics.median(ratios):.3f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
