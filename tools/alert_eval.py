#!/usr/bin/env python3
"""Measures the `escalate` alert on calls stitched from a labelled corpus, through the
whole `callmood analyze` path (voice only: `--no-transcript`, so the words play no part).

For every speaker of the corpus it builds, with a fixed seed:
- calm calls: `--calm` clips labelled neutral or calm, one after the other;
- escalating calls: `--lead` calm clips, then `--angry` clips labelled angry.
Clips are 16 kHz mono with `--gap` seconds of silence after each; with `--line` (the
default) the call then goes through sox as a phone line would carry it (3 dB down for headroom,
300-3400 Hz, 8 kHz μ-law). Each call is one file, analysed as a single-channel caller.

It reports, per scenario, how many calls raised `escalate` (on calm calls: false alarms;
on escalating calls: before the first angry clip, and during the angry part), at which
angry utterance the alert came, and what a naive rule (any single utterance with
`angry` >= 0.5) would have done on the same calls.

Use a model that has not seen the corpus's speakers, e.g. train on RAVDESS actors 01-12
and stitch calls from actors 13-18:

    python3 tools/alert_eval.py --corpus DIR_13_18 --emotion-model MODEL_01_12.json

--escalate-angry T runs the calls with `alerts.escalate_angry` = T (the
`CALLMOOD_ALERTS__ESCALATE_ANGRY` variable `analyze` reads), for a threshold round; the naive
rule's line then uses T too.
"""
import argparse
import csv
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import wave
from collections import defaultdict

from callmood_events import ROOT, analyze, model_option
CALM = {"neutral", "calm"}


def clip16(src, dst, gap):
    """The clip as 16 kHz mono 16-bit WAV with `gap` s of silence after it; its length, ms."""
    subprocess.run(["sox", "-R", src, "-r", "16000", "-c", "1", "-b", "16", dst, "pad", "0", str(gap)],
                   check=True)
    with wave.open(dst) as w:
        return w.getnframes() * 1000 // w.getframerate()


def build_call(clips, out, tmp, gap, line):
    """Concatenates `clips` (paths) into `out`; returns each clip's (start_ms, end_ms)."""
    parts, spans, t = [], [], 0
    for i, c in enumerate(clips):
        p = os.path.join(tmp, f"part{i}.wav")
        n = clip16(c, p, gap)
        parts.append(p)
        spans.append((t, t + n))
        t += n
    if line:
        subprocess.run(["sox", "-R", *parts, "-r", "8000", "-e", "u-law", out, "gain", "-3", "sinc", "300-3400"],
                       check=True)
    else:
        subprocess.run(["sox", "-R", *parts, out], check=True)
    for p in parts:
        os.remove(p)
    return spans


def clip_of(spans, ms):
    for i, (a, b) in enumerate(spans):
        if a <= ms < b:
            return i
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="directory with manifest.csv (file,speaker,...,emotion)")
    ap.add_argument("--emotion-model", required=True, help="voice model that has not seen these speakers")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/callmood"))
    ap.add_argument("--calls", type=int, default=10, help="calls per speaker and scenario")
    ap.add_argument("--calm", type=int, default=10, help="clips in a calm call")
    ap.add_argument("--lead", type=int, default=4, help="calm clips before the anger")
    ap.add_argument("--angry", type=int, default=6, help="angry clips at the end of an escalating call")
    ap.add_argument("--gap", type=float, default=0.8, help="silence after each clip, s")
    ap.add_argument("--no-line", dest="line", action="store_false", help="keep 16 kHz, no phone line")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    ap.add_argument("--escalate-angry", type=float, default=None,
                    help="alerts.escalate_angry for these calls (default: the service's)")
    a = ap.parse_args()

    rows = list(csv.DictReader(open(os.path.join(a.corpus, "manifest.csv"))))
    pools = defaultdict(lambda: {"calm": [], "angry": []})
    for r in rows:
        kind = "calm" if r["emotion"] in CALM else "angry" if r["emotion"] == "angry" else None
        if kind:
            pools[r["speaker"]][kind].append(os.path.join(a.corpus, r["file"]))
    tmp = tempfile.mkdtemp()
    calls = {}  # call id -> (scenario, speaker, spans, first angry clip index or None)
    for speaker in sorted(pools):
        p = pools[speaker]
        if len(p["calm"]) < max(a.calm, a.lead) or len(p["angry"]) < a.angry:
            print(f"skipping {speaker}: too few calm or angry clips", file=sys.stderr)
            continue
        for k in range(a.calls):
            rng = random.Random(f"{a.seed}/{speaker}/{k}")
            for scenario in ("calm", "escalating"):
                if scenario == "calm":
                    clips, first_angry = rng.sample(p["calm"], a.calm), None
                else:
                    clips = rng.sample(p["calm"], a.lead) + rng.sample(p["angry"], a.angry)
                    first_angry = a.lead
                cid = f"{scenario}-{speaker}-{k}"
                spans = build_call(clips, os.path.join(tmp, cid + ".wav"), tmp, a.gap, a.line)
                calls[cid] = (scenario, speaker, spans, first_angry)
    if not calls:
        sys.exit("no calls could be built")
    files = [os.path.join(tmp, c + ".wav") for c in calls]
    try:
        if a.escalate_angry is not None:
            os.environ["CALLMOOD_ALERTS__ESCALATE_ANGRY"] = str(a.escalate_angry)
        events = analyze(a.binary, files, "--no-transcript", *model_option(a.emotion_model))
    finally:
        shutil.rmtree(tmp)
    utts, alerts = defaultdict(list), defaultdict(list)
    for ev in events:
        if "utterance" in ev and "emotion" in ev["utterance"]:
            u = ev["utterance"]
            utts[ev["call_id"]].append(((u["start_ms"] + u["end_ms"]) // 2, u["end_ms"], u["emotion"]["angry"]))
        if "alert" in ev and ev["alert"]["kind"] == "escalate":
            alerts[ev["call_id"]].append(ev["alert"]["at_ms"])

    res = {s: {"calls": 0, "alerted_calm_part": 0, "alerted_angry_part": 0, "naive_calm_part": 0,
               "naive_angry_part": 0, "alert_at_angry_utterance": [], "utterances": 0}
           for s in ("calm", "escalating")}
    naive = 0.5 if a.escalate_angry is None else a.escalate_angry
    for cid, (scenario, _speaker, spans, first_angry) in calls.items():
        r = res[scenario]
        r["calls"] += 1
        r["utterances"] += len(utts[cid])
        angry_from = spans[first_angry][0] if first_angry is not None else None
        in_angry = lambda ms: angry_from is not None and ms >= angry_from
        if any(not in_angry(t) for t in alerts[cid]):
            r["alerted_calm_part"] += 1
        late = [t for t in alerts[cid] if in_angry(t)]
        if late:
            r["alerted_angry_part"] += 1
            # Which angry utterance (1-based) had ended when the first alert came.
            r["alert_at_angry_utterance"].append(
                sum(1 for mid, end, _ in utts[cid] if in_angry(mid) and end <= min(late)))
        if any(p >= naive and not in_angry(mid) for mid, _, p in utts[cid]):
            r["naive_calm_part"] += 1
        if any(p >= naive and in_angry(mid) for mid, _, p in utts[cid]):
            r["naive_angry_part"] += 1
    if a.json:
        print(json.dumps(res))
        return
    c, e = res["calm"], res["escalating"]
    print(f"calls per scenario: {c['calls']} calm, {e['calls']} escalating "
          f"({len({v[1] for v in calls.values()})} speakers, {'phone line' if a.line else '16 kHz'})")
    print(f"calm calls with an escalate alert (false alarm): {c['alerted_calm_part']} of {c['calls']}")
    print(f"escalating calls alerted before the anger (false alarm): {e['alerted_calm_part']} of {e['calls']}")
    at = e["alert_at_angry_utterance"]
    med = f" (median: after angry utterance {statistics.median(at):g})" if at else ""
    print(f"escalating calls alerted during the anger: {e['alerted_angry_part']} of {e['calls']}{med}")
    print(f"naive rule (one utterance angry >= {naive:g}): fires on {c['naive_calm_part']} of {c['calls']} calm calls, "
          f"on {e['naive_calm_part']} of {e['calls']} escalating calls before the anger, "
          f"on {e['naive_angry_part']} of {e['calls']} during it")


if __name__ == "__main__":
    main()
