#!/usr/bin/env python3
"""Whisper's own transcripts of GoEmotions rows spoken by espeak-ng, as a GoEmotions-format
TSV that `callmood train-text --asr-train FILE` adds to its training rows (issue 17, item 1;
rule in models/README.md, "Training on Whisper's own transcripts of spoken rows").

    python3 tools/asr_text_data.py --out ASR.tsv [--split train.tsv] [--per-class 300]

Rows: of `--split`, those whose labels map to exactly one of the five classes (Ekman grouping,
surprise dropped), 3 to 30 words, `--per-class` of each chosen with `--seed`. Each is spoken by
espeak-ng in one of six voices no evaluation tool of this repository uses (the held-out
spoken rows of tools/fusion_data.py use espeak-ng's default voice `en`), made 8 kHz G.711
mu-law (the phone line, 0.5 s of silence either side) by sox without dither, and run
through `callmood analyze --no-emotion`, 100 files a run, each file its own call (as the
held-out rows are: a clip's utterances are never packed with another clip's). A clip's
transcript is its utterances' words in order. Output lines: the transcript, the
row's own label ids, and `asr-<voice>-<index>` as the id; clips that came back with no words
are left out (and counted).
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

from callmood_events import ROOT, analyze

GO = {"anger": "angry", "disgust": "angry", "fear": "fearful", "joy": "happy",
      "neutral": "neutral", "sadness": "sad"}
CLASSES = ["neutral", "happy", "angry", "sad", "fearful"]
VOICES = [("en-us-nyc+m4", 160), ("en-us-nyc", 170), ("en-gb-x-gbclan", 155),
          ("en-gb-x-gbcwmd", 165), ("en-us-nyc+f4", 150), ("en-gb-x-gbclan+m2", 175)]
CHUNK = 100


def rows_of(path, labels, per_class, seed):
    by_class = {c: [] for c in CLASSES}
    for line in open(path):
        text, ids, _ = line.rstrip("\n").split("\t")
        names = {labels[int(k)] for k in ids.split(",")} - {"surprise"}
        classes = {GO[n] for n in names if n in GO}
        # every label of the row must map (a row with another label is mixed, left out)
        if len(names) == len({n for n in names if n in GO}) and len(classes) == 1 \
                and 3 <= len(text.split()) <= 30:
            by_class[classes.pop()].append((text, ids))
    rng = random.Random(seed)
    out = []
    for c in CLASSES:
        rows = by_class[c][:]
        rng.shuffle(rows)
        out += [(t, ids, c) for t, ids in rows[:per_class]]
    rng.shuffle(out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--goemotions", default=os.path.join(ROOT, "..", "shared", "data", "goemotions"))
    ap.add_argument("--split", default="train.tsv")
    ap.add_argument("--per-class", type=int, default=300)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--max-rows", type=int, default=None,
                    help="stop after the first N rows of the seeded order (whole runs of 100)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "callmood"))
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    labels = [l.strip() for l in open(os.path.join(a.goemotions, "labels.txt")) if l.strip()]
    rows = rows_of(os.path.join(a.goemotions, a.split), labels, a.per_class, a.seed)
    if a.max_rows is not None:
        rows = rows[:a.max_rows]
    tmp = tempfile.mkdtemp()
    kept = empty = 0
    with open(a.out, "w") as out:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            files = []
            for j, (text, _, _) in enumerate(chunk):
                i = start + j
                voice, rate = VOICES[i % len(VOICES)]
                raw = os.path.join(tmp, f"{i}.raw.wav")
                wav = os.path.join(tmp, f"c{i}.wav")
                txt = os.path.join(tmp, f"{i}.txt")
                with open(txt, "w") as f:
                    f.write(text + "\n")  # a file, so a row starting with "-" is no option
                subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", raw, "-f", txt],
                               check=True)
                subprocess.run(["sox", "-q", "-G", "-R", raw, "-r", "8000", "-c", "1", "-e",
                                "u-law", wav, "pad", "0.5", "0.5"], check=True)
                files.append(wav)
            words = {f"c{start + j}": [] for j in range(len(chunk))}
            for ev in analyze(a.binary, files, "--no-emotion", "--no-redaction"):
                u = ev.get("utterance")
                if u and u.get("transcript", "").strip() and ev.get("call_id") in words:
                    words[ev["call_id"]].append((u["start_ms"], u["transcript"].strip()))
            words = [[t for _, t in sorted(words[f"c{start + j}"])] for j in range(len(chunk))]
            for j, (text, ids, _) in enumerate(chunk):
                said = " ".join(words[j]).replace("\t", " ").strip()
                if not said:
                    empty += 1
                    continue
                voice = VOICES[(start + j) % len(VOICES)][0]
                out.write(f"{said}\t{ids}\tasr-{voice}-{start + j}\n")
                kept += 1
            out.flush()
            print(f"{min(start + CHUNK, len(rows))} of {len(rows)} rows spoken and transcribed",
                  file=sys.stderr, flush=True)
    print(f"{a.out}: {kept} rows, {empty} clips with no words left out")


if __name__ == "__main__":
    sys.exit(main())
