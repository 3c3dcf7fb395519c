#!/usr/bin/env python3
"""Fits and measures the voice/words fusion (issue 17, item 3; the rule is in
models/README.md, "A fitted fusion of voice and words") on the per-utterance predictions of
`tools/fusion_data.py`:

    fused logit(c) = (1 - gamma * u) * ln p(c | voice) + beta * (ln p(c | words) - ln r(c))

u is the voice's unfamiliarity, r the words reference: R0 the words model's output for an
empty transcript, R1 uniform (the class-balanced training prior of both models). For each
reference, (beta, gamma) on a grid is chosen by the lowest mean per-utterance NLL over the
fit halves of the ravdess, spoken and read sets; the test halves give the rule's figures.
Standard library only.

  python3 tools/fusion_fit.py F.jsonl
"""
import json, math, random, sys

CLASSES = ["neutral", "happy", "angry", "sad", "fearful"]
BETAS = [i * 0.25 for i in range(9)]
GAMMAS = [0.0, 0.25, 0.5, 0.75, 1.0]
TODAY = ("R0", 1.0, 0.0)


def fuse(row, ref, beta, gamma, words=None):
    w = words if words is not None else row["words"]
    r = row["words_prior"] if ref == "R0" else [0.2] * 5
    a = 1.0 - gamma * min(max(row["unfamiliarity"], 0.0), 1.0)
    z = [a * math.log(max(v, 1e-9)) + beta * (math.log(max(p, 1e-9)) - math.log(max(q, 1e-9)))
         for v, p, q in zip(row["voice"], w, r)]
    m = max(z)
    e = [math.exp(x - m) for x in z]
    s = sum(e)
    return [x / s for x in e]


def uar(pairs):
    rec = []
    for c in range(5):
        got = [p == c for y, p in pairs if y == c]
        if got:
            rec.append(sum(got) / len(got))
    return sum(rec) / len(rec) if rec else float("nan")


def argmax(p):
    return max(range(len(p)), key=lambda k: p[k])


def nll(rows, ref, beta, gamma):
    return sum(-math.log(max(fuse(r, ref, beta, gamma)[CLASSES.index(r["label"])], 1e-12))
               for r in rows) / len(rows)


def figures(rows, probs_of):
    pairs = [(CLASSES.index(r["label"]), argmax(probs_of(r))) for r in rows]
    angry = sum(p == 2 for _, p in pairs) / len(pairs)
    return uar(pairs), angry


def main():
    rows = [json.loads(l) for l in open(sys.argv[1])]
    sets = lambda name, split: [r for r in rows if r["set"] == name and r["split"] == split]
    fit = {n: sets(n, "fit") for n in ("ravdess", "spoken", "read")}
    print("fit rows:", {n: len(v) for n, v in fit.items()})
    best = {}
    for ref in ("R0", "R1"):
        grid = []
        for b in BETAS:
            for g in GAMMAS:
                per = [nll(v, ref, b, g) for v in fit.values()]
                grid.append((sum(per) / len(per), b, g, per))
        grid.sort()
        best[ref] = grid[0]
        print(f"{ref}: best beta {grid[0][1]} gamma {grid[0][2]}: mean fit NLL {grid[0][0]:.3f} "
              f"(ravdess / spoken / read {' / '.join(f'{x:.3f}' for x in grid[0][3])})")
    today = [nll(v, *TODAY) for v in fit.values()]
    print(f"today (R0, 1, 0): mean fit NLL {sum(today) / 3:.3f} "
          f"({' / '.join(f'{x:.3f}' for x in today)})")
    ref = min(best, key=lambda k: best[k][0])
    chosen = (ref, best[ref][1], best[ref][2])
    print(f"chosen: {chosen}")

    test = {n: sets(n, "test") for n in ("ravdess", "spoken", "read")}
    test["tess+savee"] = [r for r in rows if r["set"] in ("tess", "savee")]
    print("test rows:", {n: len(v) for n, v in test.items()})
    cands = {"voice": None, "words": None, "today": TODAY, "chosen": chosen,
             "R0 fitted": ("R0",) + best["R0"][1:3], "R1 fitted": ("R1",) + best["R1"][1:3]}
    table = {}
    for name, c in cands.items():
        if name == "voice":
            f = lambda r: r["voice"]
        elif name == "words":
            f = lambda r: r["words"]
        else:
            f = lambda r, c=c: fuse(r, *c)
        table[name] = {n: figures(v, f) for n, v in test.items()}
    # Pairs: a RAVDESS test utterance's voice with a spoken test sentence's words, same label.
    rng = random.Random(11)
    spoken_by = {c: [r for r in test["spoken"] if r["label"] == c] for c in CLASSES}
    pairs = []
    for r in test["ravdess"]:
        pool = spoken_by.get(r["label"]) or []
        if pool:
            w = rng.choice(pool)
            pairs.append((r, w))
    for name, c in cands.items():
        if name == "voice":
            f = lambda r, w: r["voice"]
        elif name == "words":
            f = lambda r, w: w["words"]
        else:
            f = lambda r, w, c=c: fuse(r, *c, words=w["words"])
        got = [(CLASSES.index(r["label"]), argmax(f(r, w))) for r, w in pairs]
        table[name]["pairs"] = (uar(got), float("nan"))
    cols = list(test) + ["pairs"]
    print("| | " + " | ".join(f"{c} UAR" for c in cols) + " | read top angry |")
    print("|---" * (len(cols) + 2) + "|")
    for name, t in table.items():
        print(f"| {name} | " + " | ".join(f"{t[c][0]:.3f}" for c in cols)
              + f" | {100 * t['read'][1]:.1f} % |")
    t, d, v, w = table["chosen"], table["today"], table["voice"], table["words"]
    checks = [
        ("(1) RAVDESS fused >= voice - 1 pt", t["ravdess"][0] >= v["ravdess"][0] - 0.01),
        ("(2) spoken >= today + 10 pts", t["spoken"][0] >= d["spoken"][0] + 0.10),
        ("(2) spoken >= words - 5 pts", t["spoken"][0] >= w["spoken"][0] - 0.05),
        ("(3) read top angry <= today", t["read"][1] <= d["read"][1]),
        ("(4) TESS+SAVEE >= today - 2 pts", t["tess+savee"][0] >= d["tess+savee"][0] - 0.02),
        ("(5) pairs > voice and > words",
         t["pairs"][0] > v["pairs"][0] and t["pairs"][0] > w["pairs"][0]),
    ]
    for k, ok in checks:
        print(f"{'pass' if ok else 'FAIL'}  {k}")
    print("adopt" if all(ok for _, ok in checks) else "not adopted")


if __name__ == "__main__":
    main()
