#!/usr/bin/env python3
"""Makes a corpus directory holding some speakers of another: a manifest.csv with their rows
(all columns kept) and a symbolic link per audio file. Used for the held-out figures, e.g.

    python3 tools/split_corpus.py --corpus ../shared/data/ravdess-train --out /tmp/rav_a --speakers 'actor(0[1-9]|1[0-2])'
    python3 tools/split_corpus.py --corpus ../shared/data/ravdess-train --out /tmp/rav_b --speakers 'actor1[3-8]'
    python3 tools/split_corpus.py --corpus ../shared/data/read-speech --out /tmp/rs_even --half even

`--half even|odd`: the speakers sorted by id, every other one from the first (even) or the
second (odd): the readers' halves of models/README.md.
"""
import argparse
import csv
import os
import re
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="directory with manifest.csv")
    ap.add_argument("--out", required=True, help="directory to create (must not hold a manifest yet)")
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--speakers", help="regular expression a speaker id must match in full")
    which.add_argument("--half", choices=["even", "odd"],
                       help="every other speaker, sorted by id, from the first (even) or the second (odd)")
    a = ap.parse_args()
    with open(os.path.join(a.corpus, "manifest.csv"), newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = reader.fieldnames
    if a.half:
        ids = sorted({r["speaker"] for r in rows})
        keep = set(ids[0 if a.half == "even" else 1::2])
        rows = [r for r in rows if r["speaker"] in keep]
    else:
        pattern = re.compile(a.speakers)
        rows = [r for r in rows if pattern.fullmatch(r["speaker"])]
    if not rows:
        sys.exit(f"no speaker of {a.corpus} matches {a.speakers or a.half!r}")
    os.makedirs(a.out, exist_ok=True)
    manifest = os.path.join(a.out, "manifest.csv")
    if os.path.exists(manifest):
        sys.exit(f"{manifest} exists; choose an empty --out")
    for r in rows:
        link = os.path.join(a.out, r["file"])
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.abspath(os.path.join(a.corpus, r["file"])), link)
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    print(f"{a.out}: {len(rows)} clips of {len({r['speaker'] for r in rows})} speakers")


if __name__ == "__main__":
    main()
