#!/usr/bin/env python3
"""How the voice model reads real, calm speech from outside its training corpus.

Takes groups of recordings (by default: the LibriVox reading and the CMU card-number prompts
of Debian's pocketsphinx-testdata, and the LibriSpeech sample in ../shared/data), converts
them to 16 kHz mono with sox and runs `callmood analyze --no-transcript` (voice only) on
them twice:
- each recording as its own call (cold start: no baseline from earlier utterances);
- each group's recordings one after the other as one call (each group is one reader, so
  the running baseline gets to learn the voice), with 0.8 s of silence between them.

None of this speech is acted or emotional, so a well-behaved model reads most of it as
neutral and raises no `escalate` alert. Prints, per run, the count of each top label of the
voice estimate (`utterance_prosody.emotion`), the mean `angry` probability, and the
`escalate` alerts raised.

    python3 tools/read_speech_eval.py [--emotion-model FILE] [--group NAME=GLOB ...]
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter

from callmood_events import ROOT, analyze, model_option
PS = "/usr/share/pocketsphinx/test/data"
DEFAULT_GROUPS = [
    f"librivox={PS}/librivox/*.wav",
    f"cards={PS}/cards/*.wav",
    "librispeech=" + os.path.join(ROOT, "../shared/data/librispeech-sample/**/*.flac"),
]
CLASSES = ["neutral", "happy", "angry", "sad", "fearful"]


def voice_readings(binary, model, files):
    """Top-label counts, `angry` probabilities and `escalate` alerts of the voice estimate."""
    labels, angry, alerts = Counter(), [], 0
    for ev in analyze(binary, files, "--no-transcript", *model_option(model)):
        e = ev.get("utterance_prosody", {}).get("emotion")
        if e:
            labels[e["top_label"]] += 1
            angry.append(e["angry"])
        if ev.get("alert", {}).get("kind") == "escalate":
            alerts += 1
    return labels, angry, alerts


def report(name, labels, angry, alerts, calls):
    n = sum(labels.values())
    counts = ", ".join(f"{c} {labels[c]}" for c in CLASSES if labels[c])
    mean = sum(angry) / len(angry) if angry else float("nan")
    print(f"{name}: {n} utterances in {calls} calls: {counts}; mean angry {mean:.2f}; "
          f"escalate alerts {alerts}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--emotion-model", help="voice model (default: the binary's, models/emotion-voice.json)")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/callmood"))
    ap.add_argument("--group", action="append", metavar="NAME=GLOB",
                    help="a reader's recordings (repeatable); default: " + "; ".join(DEFAULT_GROUPS))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    groups = {}
    for spec in a.group or DEFAULT_GROUPS:
        name, pattern = spec.split("=", 1)
        files = sorted(glob.glob(pattern, recursive=True))
        if not files:
            print(f"skipping group {name}: nothing matches {pattern}", file=sys.stderr)
            continue
        wavs = []
        for i, f in enumerate(files):
            w = os.path.join(tmp, f"{name}-{i:02}.wav")
            subprocess.run(["sox", "-R", f, "-r", "16000", "-c", "1", "-b", "16", w], check=True)
            wavs.append(w)
        groups[name] = wavs
    if not groups:
        sys.exit("no recordings found")
    alone = [w for ws in groups.values() for w in ws]
    report("each recording alone", *voice_readings(a.binary, a.emotion_model, alone), len(alone))
    calls = []
    for name, ws in groups.items():
        padded = []
        for w in ws:
            p = w[:-4] + "-pad.wav"
            subprocess.run(["sox", "-R", w, p, "pad", "0", "0.8"], check=True)
            padded.append(p)
        call = os.path.join(tmp, f"call-{name}.wav")
        subprocess.run(["sox", "-R", *padded, call], check=True)
        calls.append(call)
    report("each reader as one call", *voice_readings(a.binary, a.emotion_model, calls), len(calls))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
