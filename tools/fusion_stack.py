#!/usr/bin/env python3
"""Fourth fusion round (issue 17, item 3; the rule is in models/README.md, "Fourth round,
stacking"): a multinomial logistic regression on 20 features per utterance of
`tools/fusion_data.py`'s predictions,

    ln p(c | voice), ln p(c | words) - ln 0.2, and both times the voice's unfamiliarity u,

fitted on the fit halves of the second round's four sets (ravdess, spoken, read, acted),
each set weighing the same and, within a set, each class the same; L2 penalty lambda on a
grid (not on the biases). The lambda with the lowest mean fit NLL among those passing tests
(1)-(4) on the fit halves is then judged by all five tests on the test halves, exactly as in
`tools/fusion_fit.py --round 3`. Needs numpy.

  python3 tools/fusion_stack.py F.jsonl [--out fusion.json]

With --out the chosen weights are written as JSON (features, weights, biases, lambda) whether
or not the rule adopts them.
"""
import argparse
import json
import math

import numpy as np

from fusion_fit import CLASSES, TODAY, checks, print_table, split_sets, table_for

LAMBDAS = [0.001, 0.01, 0.1, 1.0]
FEATURES = ([f"ln_voice_{c}" for c in CLASSES] + [f"words_lr_{c}" for c in CLASSES]
            + [f"u_ln_voice_{c}" for c in CLASSES] + [f"u_words_lr_{c}" for c in CLASSES])


def features(row, words=None):
    w = words if words is not None else row["words"]
    u = min(max(row["unfamiliarity"], 0.0), 1.0)
    lv = [math.log(max(p, 1e-9)) for p in row["voice"]]
    lw = [math.log(max(p, 1e-9)) - math.log(0.2) for p in w]
    return lv + lw + [u * x for x in lv] + [u * x for x in lw]


def weights_for(sets):
    """Per-row weights: each set sums to 1, each class within a set the same share."""
    X, y, wt = [], [], []
    for rows in sets:
        by = {}
        for r in rows:
            by.setdefault(r["label"], []).append(r)
        for lab, rs in by.items():
            for r in rs:
                X.append(features(r))
                y.append(CLASSES.index(lab))
                wt.append(1.0 / (len(sets) * len(by) * len(rs)))
    return np.array(X), np.array(y), np.array(wt)


def softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def fit(X, y, wt, lam, steps=3000):
    """Weighted multinomial logistic regression by full-batch gradient descent with Adam;
    deterministic."""
    n, d = X.shape
    W, b = np.zeros((d, 5)), np.zeros(5)
    Y = np.eye(5)[y]
    mW, vW, mb, vb = [np.zeros_like(W), np.zeros_like(W), np.zeros(5), np.zeros(5)]
    lr, b1, b2 = 0.05, 0.9, 0.999
    for t in range(1, steps + 1):
        P = softmax(X @ W + b)
        G = (P - Y) * wt[:, None]
        gW = X.T @ G + 2 * lam * W
        gb = G.sum(0)
        for g, m, v, p in ((gW, mW, vW, W), (gb, mb, vb, b)):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + 1e-8)
    return W, b


def predictor(W, b):
    def fused(row, words=None):
        return list(softmax(np.array([features(row, words)]) @ W + b)[0])
    return fused


def table_with(sets, fused):
    """The fusion_fit table, with the stacker as the candidate."""
    return table_for(sets, {"voice": None, "words": None, "today": TODAY, "cand": fused})


def mean_nll(sets, fused):
    per = []
    for rows in sets:
        per.append(sum(-math.log(max(fused(r)[CLASSES.index(r["label"])], 1e-12))
                       for r in rows) / len(rows))
    return sum(per) / len(per), per


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--out")
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.data)]
    fit_sets = split_sets(rows, "fit", True)
    sets = [v for v in fit_sets.values() if v]
    print("fit rows:", {n: len(v) for n, v in fit_sets.items()})
    X, y, wt = weights_for(sets)
    ok = []
    for lam in LAMBDAS:
        W, b = fit(X, y, wt, lam)
        fused = predictor(W, b)
        mean, per = mean_nll(sets, fused)
        t = table_with(fit_sets, fused)
        res = checks(t, "cand", False, "voice")
        passed = all(p for _, p in res)
        print(f"lambda {lam}: mean fit NLL {mean:.3f} ({' / '.join(f'{x:.3f}' for x in per)}); "
              f"fit-half tests: {'pass' if passed else 'fail ' + ', '.join(k for k, p in res if not p)}")
        if passed:
            ok.append((mean, lam, W, b))
    if not ok:
        print("none passes on the fit halves: not adopted")
        return
    ok.sort(key=lambda x: x[0])
    mean, lam, W, b = ok[0]
    print(f"chosen: lambda {lam}, mean fit NLL {mean:.3f}")
    test = split_sets(rows, "test", True)
    print("test rows:", {n: len(v) for n, v in test.items()})
    table = table_with(test, predictor(W, b))
    print_table(table)
    results = checks(table, "cand", True, "voice")
    for k, passed in results:
        print(f"{'pass' if passed else 'FAIL'}  {k}")
    adopted = all(p for _, p in results)
    print("adopt" if adopted else "not adopted")
    if a.out:
        json.dump({"features": FEATURES, "classes": CLASSES, "lambda": lam,
                   "weights": W.T.tolist(), "biases": b.tolist(), "adopted": adopted},
                  open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
