#!/usr/bin/env python3
"""Two builds of callmood against each other on where a packed window's time goes (issue 19,
items 5 and 6; rule in docs/measurements.md, "whisper.cpp's threads: OpenMP"): `callmood
bench-packing --profile` over the 100 Common Voice clips of `read-speech/` that have
transcripts (8 kHz mu-law, made here with sox -R, so the same bytes every run), the two
binaries alternating round by round, first on the idle machine, then with one busy process
(a Python spin loop) taking a core beside it. Prints each run's total seconds ("run" of the
profile's last line) and the median ratio B / A per setting.

    python3 tools/omp_eval.py A_BIN B_BIN [--rounds 3] [--data ../shared/data]
"""
import argparse, csv, os, re, statistics, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def clips(data, tmp):
    out = []
    with open(os.path.join(data, "read-speech", "manifest.csv")) as f:
        for r in csv.DictReader(f):
            if r["transcript"].strip():
                p = os.path.join(tmp, f"c{len(out):03d}.wav")
                subprocess.run(["sox", "-R", "-D", os.path.join(data, "read-speech", r["file"]),
                                "-r", "8000", "-c", "1", "-e", "u-law", p], check=True)
                out.append(p)
    return out


def run(binary, files):
    res = subprocess.run([binary, "bench-packing", "--profile", "--rounds", "1", *files],
                         capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        sys.exit(res.stderr)
    m = re.search(r"in all: run ([0-9.]+) s", res.stdout)
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = clips(a.data, tmp)
        for setting in ("idle", "one busy core"):
            hog = None
            if setting != "idle":
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            ratios = []
            try:
                for r in range(a.rounds):
                    order = [("A", a.a), ("B", a.b)] if r % 2 == 0 else [("B", a.b), ("A", a.a)]
                    got = {k: run(b, files) for k, b in order}
                    ratios.append(got["B"] / got["A"])
                    print(f"{setting}, round {r + 1} ({order[0][0]} first): A {got['A']:.2f} s, "
                          f"B {got['B']:.2f} s, B/A {ratios[-1]:.3f}", flush=True)
            finally:
                if hog:
                    hog.kill()
            print(f"{setting}: median B/A {statistics.median(ratios):.3f}", flush=True)


if __name__ == "__main__":
    main()
