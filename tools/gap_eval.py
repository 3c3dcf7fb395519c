#!/usr/bin/env python3
"""asr.gap_s (silence before each packed piece) against the default, through `callmood
serve` and `callmood analyze --server --no-emotion` on one packed recording: the server's
CPU seconds (utime + stime from /proc) and WER (issue 19, item 5; rule in
docs/measurements.md, "Silence between packed pieces").

    python3 tools/fw_compare.py --keep /tmp/cv642.wav
    python3 tools/gap_eval.py /tmp/cv642.wav [--gaps 1.0,0.5] [--rounds 3]

WER against the read-speech Common Voice transcripts in the recording's order (lower case,
punctuation dropped, number words as digits).
"""
import argparse
import csv
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadtest_wer  # noqa: E402

loadtest_wer.DIGITS = True
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def run(binary, gap, rec, port, tmp):
    cfg = os.path.join(tmp, f"gap{gap}.toml")
    with open(cfg, "w") as f:
        f.write(f"[asr]\ngap_s = {gap}\n[security]\nredact_all_numbers = false\n")
    srv = subprocess.Popen([binary, "serve", "--addr", f"127.0.0.1:{port}", "--config", cfg],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        c0, t0 = cpu_s(srv.pid), time.time()
        out = subprocess.run([binary, "analyze", "--server", f"http://127.0.0.1:{port}",
                              "--no-emotion", "--no-redaction", rec], check=True, capture_output=True,
                             text=True).stdout
        wall, cpu = time.time() - t0, cpu_s(srv.pid) - c0
    finally:
        srv.terminate()
        srv.wait()
    hyp = loadtest_wer.analyze_words(out)
    return cpu, wall, hyp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("recording")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "callmood"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--gaps", default="1.0,0.5")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--port", type=int, default=50593)
    a = ap.parse_args()
    ref = []
    with open(os.path.join(a.data, "read-speech", "manifest.csv")) as f:
        for r in csv.DictReader(f):
            if r["transcript"].strip():
                ref.extend(loadtest_wer.words(r["transcript"]))
    gaps = a.gaps.split(",")
    cpu = {g: [] for g in gaps}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            order = gaps[r % len(gaps):] + gaps[:r % len(gaps)]
            for g in order:
                load = os.getloadavg()[0]
                c, w, hyp = run(a.bin, g, a.recording, a.port, tmp)
                cpu[g].append(c)
                e = loadtest_wer.edits(ref, hyp)
                print(f"round {r + 1} gap_s {g}: server CPU {c:.2f} s, wall {w:.2f} s, "
                      f"WER {100 * e / len(ref):.2f} % ({e} of {len(ref)}), load {load:.2f}",
                      flush=True)
    base = gaps[0]
    for g in gaps[1:]:
        ratio = statistics.median(x / y for x, y in zip(cpu[g], cpu[base]))
        print(f"gap_s {g} against {base}: median per-round CPU ratio {ratio:.3f}")


if __name__ == "__main__":
    main()
