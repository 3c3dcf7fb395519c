#!/usr/bin/env python3
"""Makes recorded two-party calls from a corpus of single-speaker clips, as a contact centre
records them: stereo WAV, 8 kHz G.711 μ-law, caller on the left channel and agent on the
right, the two taking turns (each speaker's clips in manifest order, 0.6 s between turns, the
other channel silent meanwhile). Speakers are taken in sorted order, those matching
--speakers, and paired one after the other (an odd one out is left out). Used to measure
`callmood calibrate --calm-calls` (models/README.md, "Calm-speech calibration"):

    python3 tools/calls_from_corpus.py --corpus ../shared/data/read-speech --out /tmp/rs_calls --half even

Needs sox (reads FLAC and WAV, writes the μ-law files).
"""
import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import wave

RATE = 8000
GAP = int(0.6 * RATE)


def pcm16_8k(path):
    """The clip as 8 kHz mono 16-bit samples (bytes), through sox."""
    out = subprocess.run(
        ["sox", "-R", path, "-t", "raw", "-r", str(RATE), "-c", "1", "-e", "signed", "-b", "16", "-"],
        check=True, capture_output=True).stdout
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="directory with manifest.csv (file,speaker,...)")
    ap.add_argument("--out", required=True, help="directory to write the calls to")
    ap.add_argument("--speakers", default=".*", help="regular expression a speaker id must match in full")
    ap.add_argument("--half", choices=["all", "even", "odd"], default="all",
                    help="of the matching speakers in sorted order, every one, the even-indexed or the odd-indexed")
    a = ap.parse_args()
    with open(os.path.join(a.corpus, "manifest.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    pattern = re.compile(a.speakers)
    by_speaker = {}
    for r in rows:
        if pattern.fullmatch(r["speaker"]):
            by_speaker.setdefault(r["speaker"], []).append(r["file"])
    speakers = sorted(by_speaker)
    if a.half == "even":
        speakers = speakers[0::2]
    elif a.half == "odd":
        speakers = speakers[1::2]
    if len(speakers) < 2:
        sys.exit("fewer than two speakers match")
    os.makedirs(a.out, exist_ok=True)
    n = 0
    for i in range(0, len(speakers) - 1, 2):
        caller, agent = speakers[i], speakers[i + 1]
        turns = [(0, pcm16_8k(os.path.join(a.corpus, f))) for f in by_speaker[caller]]
        agent_turns = [(1, pcm16_8k(os.path.join(a.corpus, f))) for f in by_speaker[agent]]
        # Alternate: caller, agent, caller, ... then whoever has turns left.
        order = []
        while turns or agent_turns:
            if turns:
                order.append(turns.pop(0))
            if agent_turns:
                order.append(agent_turns.pop(0))
        left, right = bytearray(), bytearray()
        for ch, pcm in order:
            silence = bytes(len(pcm))
            left += (pcm if ch == 0 else silence) + bytes(2 * GAP)
            right += (pcm if ch == 1 else silence) + bytes(2 * GAP)
        frames = bytearray()
        for k in range(0, len(left), 2):
            frames += left[k:k + 2] + right[k:k + 2]
        name = f"call-{n:03d}"
        with tempfile.TemporaryDirectory() as tmp:
            pcm_path = os.path.join(tmp, "call.wav")
            with wave.open(pcm_path, "wb") as w:
                w.setnchannels(2)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(bytes(frames))
            subprocess.run(["sox", "-R", pcm_path, "-e", "u-law", os.path.join(a.out, name + ".wav")], check=True)
        n += 1
    print(f"{n} calls of {2 * n} speakers written to {a.out}")


if __name__ == "__main__":
    main()
