#!/usr/bin/env python3
"""Compare callmood's F0 track with Praat's (via parselmouth) on real speech.

Praat is a yardstick, not ground truth: its autocorrelation pitch with path finding is the
usual reference in speech research. Metrics over frames aligned by time (10 ms):

  GPE   gross pitch error: % of frames voiced in both where |ours - praat| / praat > 20%
  MAE   median absolute error on frames voiced in both, Hz and cents
  VDE   voicing decision error: % of all frames where one says voiced and the other not
        (split into false alarms, ours voiced / Praat not, and misses, the reverse)

Each FILE argument is a WAV to analyse; `ours.wav=ref.wav` analyses ours.wav with callmood
and ref.wav with Praat (e.g. an 8 kHz mu-law copy against the wideband original).

Our frames come from (--via):
  cli   `cargo run --release --quiet -- features FILE --frames` (CSV on stdout)
  csv   existing CSVs named <stem>.csv in --csv-dir
Setup: python3 -m venv /tmp/f0venv && /tmp/f0venv/bin/pip install praat-parselmouth numpy
"""

import argparse
import csv
import io
import math
import os
import subprocess
import sys

import numpy as np
import parselmouth

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_ours(text):
    times, f0 = [], []
    for row in csv.DictReader(io.StringIO(text)):
        times.append(float(row["time_s"]))
        f0.append(float(row["f0_hz"]))
    return np.array(times), np.array(f0)


def ours_via_cli(wav):
    out = subprocess.run(
        ["cargo", "run", "--release", "--quiet", "--", "features", wav, "--frames"],
        cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout


def praat_track(wav, floor, ceiling):
    snd = parselmouth.Sound(wav)
    if snd.n_channels > 1:
        snd = snd.extract_channel(1)
    pitch = snd.to_pitch_ac(time_step=0.01, pitch_floor=floor, pitch_ceiling=ceiling)
    return np.array(pitch.xs()), np.nan_to_num(pitch.selected_array["frequency"])


def compare(ours_t, ours_f, ref_t, ref_f):
    """Samples Praat's track at our frame times (Praat's frames sit half a hop off ours):
    linear interpolation between two voiced Praat frames, else the nearest frame."""
    if len(ref_t) < 2:
        return np.zeros(0), np.zeros(0)
    dt = ref_t[1] - ref_t[0]
    pos = (ours_t - ref_t[0]) / dt
    ok = (pos >= 0) & (pos <= len(ref_t) - 1)
    pos = pos[ok]
    j0 = np.minimum(np.floor(pos).astype(int), len(ref_t) - 2)
    w = pos - j0
    a, b = ref_f[j0], ref_f[j0 + 1]
    nearest = np.where(w < 0.5, a, b)
    r = np.where((a > 0) & (b > 0), a + w * (b - a), nearest)
    return ours_f[ok], r


def metrics(o, r):
    ov, rv = o > 0, r > 0
    both = ov & rv
    n = len(o)
    res = {"frames": n, "both_voiced": int(both.sum()),
           "ours_voiced": int(ov.sum()), "praat_voiced": int(rv.sum())}
    if both.any():
        rel = np.abs(o[both] - r[both]) / r[both]
        res["gpe"] = 100.0 * float(np.mean(rel > 0.2))
        fine = rel <= 0.2
        res["mae_hz"] = float(np.median(np.abs(o[both] - r[both])))
        cents = 1200.0 * np.abs(np.log2(o[both] / r[both]))
        res["mae_cents"] = float(np.median(cents))
        res["mae_cents_fine"] = float(np.median(cents[fine])) if fine.any() else math.nan
        res["octave_down"] = 100.0 * float(np.mean(o[both] / r[both] < 0.6))
        res["octave_up"] = 100.0 * float(np.mean(o[both] / r[both] > 1.6))
    res["vde"] = 100.0 * float(np.mean(ov != rv)) if n else math.nan
    res["false_alarm"] = 100.0 * float(np.mean(ov & ~rv)) if n else math.nan
    res["miss"] = 100.0 * float(np.mean(~ov & rv)) if n else math.nan
    return res


def fmt(name, m):
    g = m.get("gpe", math.nan)
    return (f"{name:<44} frames {m['frames']:5d}  voiced ours/praat/both "
            f"{m['ours_voiced']:4d}/{m['praat_voiced']:4d}/{m['both_voiced']:4d}  "
            f"GPE {g:5.1f}%  MAE {m.get('mae_hz', math.nan):5.1f} Hz "
            f"{m.get('mae_cents', math.nan):5.1f} c  VDE {m['vde']:5.1f}% "
            f"(FA {m['false_alarm']:4.1f} miss {m['miss']:4.1f})  "
            f"oct down/up {m.get('octave_down', math.nan):.1f}/{m.get('octave_up', math.nan):.1f}%")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", help="WAV, or ours.wav=reference.wav")
    ap.add_argument("--via", choices=["cli", "csv"], default="cli")
    ap.add_argument("--csv-dir", help="directory of <stem>.csv files (--via csv)")
    ap.add_argument("--floor", type=float, default=60.0, help="Praat pitch floor, Hz")
    ap.add_argument("--ceiling", type=float, default=500.0, help="Praat pitch ceiling, Hz")
    args = ap.parse_args()

    pairs = [f.split("=", 1) if "=" in f else [f, f] for f in args.files]
    csv_dir = args.csv_dir

    pooled_o, pooled_r = [], []
    for ours_wav, ref_wav in pairs:
        if args.via == "cli":
            text = ours_via_cli(ours_wav)
        else:
            stem = os.path.splitext(os.path.basename(ours_wav))[0]
            with open(os.path.join(csv_dir, stem + ".csv")) as fh:
                text = fh.read()
        ot, of = read_ours(text)
        rt, rf = praat_track(ref_wav, args.floor, args.ceiling)
        o, r = compare(ot, of, rt, rf)
        pooled_o.append(o)
        pooled_r.append(r)
        name = os.path.basename(ours_wav)
        if ref_wav != ours_wav:
            name += " vs ref"
        print(fmt(name, metrics(o, r)))
    if len(pairs) > 1:
        print(fmt("POOLED", metrics(np.concatenate(pooled_o), np.concatenate(pooled_r))))


if __name__ == "__main__":
    sys.exit(main())
