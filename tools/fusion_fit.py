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

  python3 tools/fusion_fit.py F.jsonl              # first round
  python3 tools/fusion_fit.py F.jsonl --round 2    # second round (selection under the guards)
  python3 tools/fusion_fit.py F.jsonl --round 3    # third round (words only for emotions)
  python3 tools/fusion_fit.py F.jsonl --round 5    # fifth round (the plain Bayes product)
  python3 tools/fusion_fit.py F.jsonl --round 6    # sixth round (words against calm speech)
  python3 tools/fusion_fit.py F.jsonl --round 7    # seventh round (an unfamiliar voice mixed
                                                   # with uniform, words weighed by it)
  python3 tools/fusion_fit.py F.jsonl --round 8    # eighth round (the words only as evidence
                                                   # for an emotion, over a mixed voice)
  python3 tools/fusion_fit.py F.jsonl --round 9    # ninth round (the words weighed by the
                                                   # voice's own neutral probability too)

Second round: TESS and SAVEE are split by speaker as well (ACTED_FIT), and the setting is the
lowest mean fit NLL over ravdess, spoken, read and acted among those that pass tests (1)-(4)
on the fit halves.
"""
import argparse, json, math, random, sys

CLASSES = ["neutral", "happy", "angry", "sad", "fearful"]
BETAS = [i * 0.25 for i in range(9)]
GAMMAS = [0.0, 0.25, 0.5, 0.75, 1.0]
TODAY = ("R0", 1.0, 0.0)
ACTED_FIT = {"OAF", "DC", "JE"}


def fuse(row, ref, beta, gamma, k=None, words=None):
    """Fused probabilities. ref "R0"/"R1": the words' full log-ratio; "R1+": the words only as
    evidence for an emotional class (positive part of the log-ratio against 1/5), and k times
    the neutral log-ratio (third round)."""
    w = words if words is not None else row["words"]
    if isinstance(ref, (list, tuple)):  # R2: ln r(c) given (sixth round)
        r = [math.exp(x) for x in ref]
    else:
        r = row["words_prior"] if ref == "R0" else [0.2] * 5
    a = 1.0 - gamma * min(max(row["unfamiliarity"], 0.0), 1.0)
    z = []
    for c, (v, p, q) in enumerate(zip(row["voice"], w, r)):
        lr = math.log(max(p, 1e-9)) - math.log(max(q, 1e-9))
        if ref == "R1+":
            lr = k * lr if c == 0 else max(0.0, lr)
        z.append(a * math.log(max(v, 1e-9)) + beta * lr)
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


def nll(rows, *c):
    return sum(-math.log(max(fuse(r, *c)[CLASSES.index(r["label"])], 1e-12))
               for r in rows) / len(rows)


def figures(rows, probs_of):
    pairs = [(CLASSES.index(r["label"]), argmax(probs_of(r))) for r in rows]
    angry = sum(p == 2 for _, p in pairs) / len(pairs)
    return uar(pairs), angry


def split_sets(rows, split, second):
    """The named sets of one split; in the second round TESS and SAVEE are split by speaker."""
    out = {n: [r for r in rows if r["set"] == n and r["split"] == split]
           for n in ("ravdess", "spoken", "read")}
    acted = [r for r in rows if r["set"] in ("tess", "savee")]
    if second:
        keep = (lambda r: r["speaker"] in ACTED_FIT) if split == "fit" else \
            (lambda r: r["speaker"] not in ACTED_FIT)
        out["acted"] = [r for r in acted if keep(r)]
    elif split == "test":
        out["acted"] = acted
    return out


def table_for(sets, cands):
    """{candidate: {set: (uar, top-angry share)}} plus same-label pairs (ravdess voice,
    spoken words). A candidate is "voice", "words", a setting of the family (fuse's
    arguments) or a callable fused(row, words=None)."""
    table = {}
    for name, c in cands.items():
        if name == "voice":
            f = lambda r: r["voice"]
        elif name == "words":
            f = lambda r: r["words"]
        elif callable(c):  # a fitted fusion of its own: fused(row, words=None)
            f = c
        else:
            f = lambda r, c=c: fuse(r, *c)
        table[name] = {n: figures(v, f) for n, v in sets.items() if v}
    rng = random.Random(11)
    spoken_by = {c: [r for r in sets["spoken"] if r["label"] == c] for c in CLASSES}
    pairs = [(r, rng.choice(spoken_by[r["label"]])) for r in sets["ravdess"]
             if spoken_by.get(r["label"])]
    for name, c in cands.items():
        if name == "voice":
            f = lambda r, w: r["voice"]
        elif name == "words":
            f = lambda r, w: w["words"]
        elif callable(c):
            f = lambda r, w, c=c: c(r, words=w["words"])
        else:
            f = lambda r, w, c=c: fuse(r, *c, words=w["words"])
        got = [(CLASSES.index(r["label"]), argmax(f(r, w))) for r, w in pairs]
        table[name]["pairs"] = (uar(got), float("nan"))
    return table


def checks(table, name, with_pairs=True, acted_vs="today"):
    t, d, v, w = table[name], table["today"], table["voice"], table["words"]
    out = [
        ("(1) RAVDESS fused >= voice - 1 pt", t["ravdess"][0] >= v["ravdess"][0] - 0.01),
        ("(2) spoken >= today + 10 pts", t["spoken"][0] >= d["spoken"][0] + 0.10),
        ("(2) spoken >= words - 5 pts", t["spoken"][0] >= w["spoken"][0] - 0.05),
        ("(3) read top angry <= today", t["read"][1] <= d["read"][1]),
        (f"(4) acted >= {acted_vs} - 2 pts", t["acted"][0] >= table[acted_vs]["acted"][0] - 0.02),
    ]
    if with_pairs:
        out.append(("(5) pairs > voice and > words",
                    t["pairs"][0] > v["pairs"][0] and t["pairs"][0] > w["pairs"][0]))
    return out


def print_table(table):
    cols = [c for c in next(iter(table.values()))]
    print("| | " + " | ".join(f"{c} UAR" for c in cols) + " | read top angry |")
    print("|---" * (len(cols) + 2) + "|")
    for name, t in table.items():
        print(f"| {name} | " + " | ".join(f"{t[c][0]:.3f}" for c in cols)
              + f" | {100 * t['read'][1]:.1f} % |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--round", type=int, default=1, choices=[1, 2, 3, 5, 6, 7, 8, 9, 11])
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.data)]
    if a.round == 5:
        return fifth_round(rows)
    if a.round == 6:
        return sixth_round(rows)
    if a.round == 7:
        return seventh_round(rows)
    if a.round == 8:
        return eighth_round(rows)
    if a.round == 9:
        return ninth_round(rows)
    if a.round == 11:
        return eleventh_round(rows)
    second = a.round >= 2
    acted_vs = "voice" if a.round == 3 else "today"
    fit = split_sets(rows, "fit", second)
    nll_sets = [v for n, v in fit.items() if v]
    print("fit rows:", {n: len(v) for n, v in fit.items()})
    grid = []
    cands = [(ref, b, g) for ref in ("R0", "R1") for b in BETAS for g in GAMMAS]
    if a.round == 3:
        cands = [("R1+", b, g, k) for b in BETAS for g in GAMMAS for k in (0.0, 0.5, 1.0)]
    for c in cands:
        per = [nll(v, *c) for v in nll_sets]
        grid.append((sum(per) / len(per), c, per))
    grid.sort()
    today = [nll(v, *TODAY) for v in nll_sets]
    print(f"today {TODAY}: mean fit NLL {sum(today) / len(today):.3f}")
    if second:
        base = {"voice": None, "words": None, "today": TODAY}
        ok = []
        for mean, c, per in grid:
            t = table_for(fit, {**base, "cand": c})
            if all(passed for _, passed in checks(t, "cand", False, acted_vs)):
                ok.append((mean, c, per))
        print(f"settings passing (1)-(4) on the fit halves: {len(ok)} of {len(grid)}")
        if not ok:
            print("none: not adopted")
            return
        mean, chosen, per = ok[0]
    else:
        best = {}
        for mean, c, per in grid:
            best.setdefault(c[0], (mean, c, per))
        for ref, (mean, c, per) in best.items():
            print(f"{ref}: best {c}: mean fit NLL {mean:.3f}")
        mean, chosen, per = min(best.values())
    print(f"chosen: {chosen}, mean fit NLL {mean:.3f} ({' / '.join(f'{x:.3f}' for x in per)})")
    test = split_sets(rows, "test", second)
    print("test rows:", {n: len(v) for n, v in test.items()})
    table = table_for(test, {"voice": None, "words": None, "today": TODAY, "chosen": chosen})
    print_table(table)
    results = checks(table, "chosen", True, acted_vs)
    for k, passed in results:
        print(f"{'pass' if passed else 'FAIL'}  {k}")
    print("adopt" if all(p for _, p in results) else "not adopted")


def both_halves(rows, cand, check):
    """The candidate against voice, words and today on the fit and the test halves; prints
    each table and test, returns whether the test halves pass every test of `check`."""
    verdicts = []
    for split in ("fit", "test"):
        sets = split_sets(rows, split, True)
        print(f"{split} halves:", {n: len(v) for n, v in sets.items()})
        table = table_for(sets, {"voice": None, "words": None, "today": TODAY, "chosen": cand})
        print_table(table)
        results = check(table)
        for k, ok in results:
            print(f"{'pass' if ok else 'FAIL'}  {k}")
        verdicts.append(all(ok for _, ok in results))
    return verdicts[0], verdicts[1]


def fifth_round(rows):
    """The plain Bayes product R1, beta 1, gamma 0: nothing fitted, so both halves are held
    out; the third round's five tests on each."""
    fit, test = both_halves(rows, ("R1", 1.0, 0.0), lambda t: checks(t, "chosen", True, "voice"))
    print("adopt" if fit and test else "not adopted")


def checks6(table, read_vs_voice=True):
    """The five tests; read_vs_voice False (the eleventh round's fit halves, whose readers
    the voice model trained on) judges the readers against today's fusion only."""
    t, d, v, w = table["chosen"], table["today"], table["voice"], table["words"]
    return [
        ("(1) RAVDESS fused >= voice - 1 pt", t["ravdess"][0] >= v["ravdess"][0] - 0.01),
        ("(2) spoken >= words - 3 pts", t["spoken"][0] >= w["spoken"][0] - 0.03),
        ("(3) read top angry <= today and <= voice" if read_vs_voice else
         "(3) read top angry <= today",
         t["read"][1] <= d["read"][1] and (t["read"][1] <= v["read"][1] or not read_vs_voice)),
        ("(4) acted >= voice - 2 pts", t["acted"][0] >= v["acted"][0] - 0.02),
        ("(5) pairs > voice and > words",
         t["pairs"][0] > v["pairs"][0] and t["pairs"][0] > w["pairs"][0]),
    ]


def sixth_round(rows):
    """R2: the words against the mean log-probabilities the words model gives the fit half
    of the calm readers; beta 1, gamma 0. Adopted on the test halves' five tests (checks6)."""
    calm = [r for r in rows if r["set"] == "read" and r["split"] == "fit"]
    ref = [sum(math.log(max(r["words"][c], 1e-9)) for r in calm) / len(calm) for c in range(5)]
    z = [math.exp(x) for x in ref]
    print(f"R2 from {len(calm)} calm utterances: ln r = {[round(x, 3) for x in ref]}"
          f" (normalised r = {[round(x / sum(z), 3) for x in z]})")
    _, test = both_halves(rows, (ref, 1.0, 0.0), checks6)
    print("adopt" if test else "not adopted")


def calm_reference(rows):
    """ln r(c): the mean log-probabilities the words model gives the fit half of the calm
    readers (the sixth round's R2)."""
    calm = [r for r in rows if r["set"] == "read" and r["split"] == "fit"]
    return [sum(math.log(max(r["words"][c], 1e-9)) for r in calm) / len(calm) for c in range(5)]


def fuse_mixed(row, ref, e, b0, b1, k=None, words=None, b2=0.0):
    """Seventh to ninth rounds: the voice mixed with uniform by e * u (an unfamiliar
    voice's probabilities floored, its top label kept), the words' log-ratio against `ref`
    (ln r) weighed by b0 + b1 * u + b2 * n, n the voice's own neutral probability (b2: the
    ninth round). With k (eighth and ninth rounds) the words count only as evidence for an
    emotional class (the positive part of their log-ratio) and k times their neutral
    log-ratio; without it (seventh round), in full."""
    w = words if words is not None else row["words"]
    u = min(max(row["unfamiliarity"], 0.0), 1.0)
    eps = e * u
    beta = b0 + b1 * u + b2 * row["voice"][0]
    z = []
    for c, (v, p, q) in enumerate(zip(row["voice"], w, ref)):
        lr = math.log(max(p, 1e-9)) - q
        if k is not None:
            lr = k * lr if c == 0 else max(0.0, lr)
        z.append(math.log(max((1 - eps) * v + eps / 5, 1e-9)) + beta * lr)
    m = max(z)
    x = [math.exp(t - m) for t in z]
    return [t / sum(x) for t in x]


def select_and_test(rows, settings, fit_check=checks6):
    """Chooses among `settings` ((label, fused(row, words=None)) pairs) on the fit halves:
    the lowest mean NLL over ravdess, spoken, read and acted among those passing `fit_check`
    there; then the chosen one is adopted only if it passes checks6 on the test halves."""
    fit = split_sets(rows, "fit", True)
    best = None
    for label, f in settings:
        table = table_for(fit, {"voice": None, "words": None, "today": TODAY, "chosen": f})
        if not all(ok for _, ok in fit_check(table)):
            continue
        score = sum(sum(-math.log(max(f(r)[CLASSES.index(r["label"])], 1e-12))
                        for r in v) / len(v) for v in fit.values()) / len(fit)
        print(f"passes on the fit halves: {label}, mean fit NLL {score:.4f}")
        if best is None or score < best[0]:
            best = (score, label, f)
    if best is None:
        print("no setting passes the tests on the fit halves: not adopted")
        return None
    _, label, f = best
    print(f"chosen: {label}")
    _, test = both_halves(rows, f, checks6)
    return test


E7 = [0.0, 0.5, 1.0]
B0_7 = [0.0, 0.25, 0.5, 1.0]
B1_7 = [0.0, 0.5, 1.0, 2.0]


def seventh_round(rows):
    """Grid (e, b0, b1) with the calm-speech reference (select_and_test)."""
    ref = calm_reference(rows)
    settings = [(f"e {e}, b0 {b0}, b1 {b1}",
                 lambda r, words=None, c=(e, b0, b1): fuse_mixed(r, ref, *c, words=words))
                for e in E7 for b0 in B0_7 for b1 in B1_7]
    test = select_and_test(rows, settings)
    if test is not None:
        print("adopt" if test else "not adopted")


E8 = [0.5, 1.0]
B0_8 = [0.0, 0.5, 1.0]
B1_8 = [0.0, 1.0, 2.0]
K8 = [0.0, 0.5]


def one_sided_round(rows, es, b0s, b1s, ks, b2s=(0.0,), fit_check=checks6):
    """Grid (reference R1 or R2, e, b0, b1, b2, k) of fuse_mixed with the words one-sided
    (select_and_test): the eighth round (b2 0), the ninth and tenth (b2 > 0), the eleventh
    (the ninth's grid, its own fit check)."""
    refs = {"R1": [math.log(0.2)] * 5, "R2": calm_reference(rows)}
    settings = [(f"{rname}, e {e}, b0 {b0}, b1 {b1}" + (f", b2 {b2}" if b2 else "") + f", k {k}",
                 lambda r, words=None, ref=ref, c=(e, b0, b1, k), b2=b2:
                 fuse_mixed(r, ref, *c, words=words, b2=b2))
                for rname, ref in refs.items()
                for e in es for b0 in b0s for b1 in b1s for b2 in b2s for k in ks]
    test = select_and_test(rows, settings, fit_check)
    if test is not None:
        print("adopt (on to tests 6 and 7 through the service)" if test else "not adopted")


def eighth_round(rows):
    """The words only as evidence for an emotion, over a mixed voice (models/README.md, "An
    eighth round")."""
    one_sided_round(rows, E8, B0_8, B1_8, K8)


E9 = [0.0, 0.5]
B0_9 = [0.0, 0.5]
B1_9 = [0.0, 1.0]
B2_9 = [1.0, 2.0, 3.0, 4.0]
K9 = [0.0, 0.5]


def ninth_round(rows):
    """The words' weight grows with the voice's own neutral probability, b2 > 0
    (models/README.md, "A ninth round")."""
    one_sided_round(rows, E9, B0_9, B1_9, K9, B2_9)


def eleventh_round(rows):
    """The ninth round's grid; on the fit halves the readers (whom the voice model trained
    on) are judged against today's fusion only (models/README.md, "An eleventh round")."""
    one_sided_round(rows, E9, B0_9, B1_9, K9, B2_9,
                    fit_check=lambda t: checks6(t, read_vs_voice=False))


if __name__ == "__main__":
    main()
