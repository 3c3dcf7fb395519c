#!/usr/bin/env python3
"""Checks that the service's fusion is the prototype's (models/README.md, "A thirteenth
round"): for each row of a `tools/fusion_data.py` run (made with the binary under test, so
that its `fused` is the service's own output), the shipped setting of `tools/fusion_fit.py`'s
`fuse_mixed` (R1, e 0.5, b0 0, b1 1, b2 1, k 0) on the row's voice and words, against `fused`.
Prints how many top labels agree, the largest probability difference, and the UAR and top
`angry` share of the service's fusion, the voice alone, the words alone and the prototype.

    python3 tools/fusion_data.py --sets spoken --ravdess-model models/emotion-voice.json --out S.jsonl
    python3 tools/fusion_parity.py S.jsonl
"""
import json, math, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusion_fit as ff  # noqa: E402

REF = [math.log(0.2)] * 5


def shipped(r):
    return ff.fuse_mixed(r, REF, 0.5, 0.0, 1.0, 0.0, b2=1.0)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rows = [json.loads(l) for l in open(sys.argv[1])]
    rows = [r for r in rows if "fused" in r]
    if not rows:
        sys.exit("no rows with the service's `fused` (a --words-from run has none)")
    worst, agree = 0.0, 0
    for r in rows:
        p = shipped(r)
        worst = max(worst, max(abs(a - b) for a, b in zip(p, r["fused"])))
        agree += ff.argmax(p) == ff.argmax(r["fused"])
    print(f"{len(rows)} rows: top label agrees on {agree}, largest probability difference {worst:.4f}")
    for name, f in (("service", lambda r: r["fused"]), ("voice", lambda r: r["voice"]),
                    ("words", lambda r: r["words"]), ("prototype", shipped)):
        pairs = [(ff.CLASSES.index(r["label"]), ff.argmax(f(r))) for r in rows]
        angry = sum(p == 2 for _, p in pairs) / len(pairs)
        print(f"{name}: UAR {ff.uar(pairs):.3f}, top angry {100 * angry:.1f} %")


if __name__ == "__main__":
    main()
