#!/usr/bin/env python3
"""Frustration in the QA risk (issue 17, item 4; rule in models/README.md, "Frustration in
the QA risk"): the candidate part F = clamp((f2 - t0) / (1 - t0), 0, 1), f2 the caller's
second-highest words `frustration` in a call of 8 utterances, scored on simulated calls of
the words alone.

    python3 tools/risk_frustration_eval.py [--bin target/release/callmood] [--data ../shared/data]

Calls (2,000 of each kind, seed 42): calm calls of the Common Voice transcripts of
read-speech/, calm calls of GoEmotions dev rows labelled neutral alone, escalating calls of
4 neutral rows then 4 rows labelled anger alone. Prints, per t0, the 95th percentile and the
mean of 35 x F on each calm set (what F can add to a calm call's risk, points) and the ROC
AUC of F for escalating against each calm set.
"""
import argparse
import csv
import json
import os
import random
import subprocess
import tempfile

T0S = (0.5, 0.6, 0.7, 0.8)
SHARE = 35.0
CALLS = 2000
N = 8


def scores(binary, rows):
    """Per-line frustration of `rows` (texts) through `callmood eval-text --per-line`."""
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        for t in rows:
            f.write(t.replace("\t", " ").replace("\n", " ") + "\tneutral\n")
        path = f.name
    try:
        out = subprocess.run([binary, "eval-text", "--sentences", path, "--per-line"],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    return [json.loads(line)["frustration"] for line in out.splitlines() if line.strip()]


def part(fs, t0):
    f2 = sorted(fs)[-2]
    return min(max((f2 - t0) / (1 - t0), 0.0), 1.0)


def auc(pos, neg):
    """P(pos > neg) + P(tie) / 2."""
    neg = sorted(neg)
    import bisect
    total = 0.0
    for p in pos:
        lo, hi = bisect.bisect_left(neg, p), bisect.bisect_right(neg, p)
        total += lo + (hi - lo) / 2
    return total / (len(pos) * len(neg))


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/callmood")
    ap.add_argument("--data", default="../shared/data")
    a = ap.parse_args()
    neutral, anger = [], []
    with open(os.path.join(a.data, "goemotions", "dev.tsv")) as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 2 and row[1] == "4":
                neutral.append(row[0])
            elif len(row) >= 2 and row[1] == "0":
                anger.append(row[0])
    read = []
    with open(os.path.join(a.data, "read-speech", "manifest.csv")) as f:
        for r in csv.DictReader(f):
            if r["transcript"].strip():
                read.append(r["transcript"])
    f_neutral, f_anger, f_read = (scores(a.bin, x) for x in (neutral, anger, read))
    print(f"rows: {len(f_read)} read, {len(f_neutral)} neutral, {len(f_anger)} anger")
    rng = random.Random(42)
    calm_read = [rng.sample(f_read, N) for _ in range(CALLS)]
    calm_neutral = [rng.sample(f_neutral, N) for _ in range(CALLS)]
    escalating = [rng.sample(f_neutral, N // 2) + rng.sample(f_anger, N // 2)
                  for _ in range(CALLS)]
    print("| t0 | read: p95 / mean added | neutral: p95 / mean added | AUC vs read | AUC vs neutral |")
    print("|---|---|---|---|---|")
    for t0 in T0S:
        pr = [SHARE * part(c, t0) for c in calm_read]
        pn = [SHARE * part(c, t0) for c in calm_neutral]
        pe = [SHARE * part(c, t0) for c in escalating]
        print(f"| {t0} | {pct(pr, 0.95):.1f} / {sum(pr) / CALLS:.1f} | "
              f"{pct(pn, 0.95):.1f} / {sum(pn) / CALLS:.1f} | {auc(pe, pr):.3f} | "
              f"{auc(pe, pn):.3f} |")


if __name__ == "__main__":
    main()
