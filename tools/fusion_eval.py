#!/usr/bin/env python3
"""Measures what the words add to the voice, through the whole `callmood analyze` path
(Whisper included): for every clip, the voice-only estimate (the `utterance_prosody` event)
against the fused one (the `utterance` event), as UAR over the five classes.

Two sets:
  --corpus DIR       a labelled corpus (manifest.csv: file,speaker,gender,emotion), e.g.
                     RAVDESS, whose words carry no emotion: the words should change nothing.
  --sentences FILE   labelled sentences (text<TAB>class), spoken by espeak-ng in a flat
                     synthetic voice and sent as 8 kHz mu-law: here only the words carry the
                     emotion, so the fused result should follow them.

Each clip is its own call (cold start). A clip's label is the top label of the mean
probabilities over its utterances; UAR and recalls come from `callmood score uar` (the
crate's own metrics, src/emotion/metrics.rs). Needs a release build (`cargo build --release`).

  python3 tools/fusion_eval.py --sentences tests/fixtures/text/contact_centre.tsv
  python3 tools/fusion_eval.py --corpus ../shared/data/ravdess-train --limit 300
"""
import argparse, csv, json, os, subprocess, sys, tempfile
from collections import defaultdict

from callmood_events import ROOT, analyze, model_option

CLASSES = ["neutral", "happy", "angry", "sad", "fearful"]
MAP = {"calm": "neutral", "disgust": "angry"}


def uar(binary, pairs, path):
    """UAR and {class: recall} (classes with examples) of (label, predicted) pairs, by
    `callmood score uar` on a CSV written to path."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "predicted"])
        w.writerows(pairs)
    run = subprocess.run([binary, "score", "uar", "--pairs", path], capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"callmood score uar failed:\n{run.stderr}")
    r = json.loads(run.stdout)
    return r["uar"], {c: x for c, x in zip(r["classes"], r["recalls"]) if x is not None}


def probs(e):
    return [e.get(c, 0.0) for c in CLASSES]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus")
    ap.add_argument("--sentences")
    ap.add_argument("--limit", type=int, default=0, help="every k-th clip so that at most this many run")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/callmood"))
    ap.add_argument("--emotion-model", help="voice model file (default: the binary's, models/emotion-voice.json)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    items = []  # (wav, label)
    if a.sentences:
        for i, line in enumerate(open(a.sentences)):
            if line.startswith("#") or not line.strip():
                continue
            text, label = line.rstrip("\n").split("\t")
            raw, wav = os.path.join(tmp, f"s{i}.raw.wav"), os.path.join(tmp, f"s{i}.wav")
            subprocess.run(["espeak-ng", "-w", raw, text], check=True)
            # Half a second of silence around the speech, then the phone line.
            subprocess.run(["sox", "-R", raw, "-r", "8000", "-e", "u-law", wav, "pad", "0.5", "0.5"], check=True)
            items.append((wav, label))
    if a.corpus:
        rows = list(csv.DictReader(open(os.path.join(a.corpus, "manifest.csv"))))
        rows = [r for r in rows if MAP.get(r["emotion"], r["emotion"]) in CLASSES]
        step = max(1, len(rows) // a.limit) if a.limit else 1
        for r in rows[::step]:
            src = os.path.join(a.corpus, r["file"])
            wav = os.path.join(tmp, os.path.basename(src) + ".wav")
            subprocess.run(["sox", "-R", src, wav], check=True)
            items.append((wav, MAP.get(r["emotion"], r["emotion"])))
    if not items:
        sys.exit("give --corpus and/or --sentences")
    events = analyze(a.binary, [w for w, _ in items], *model_option(a.emotion_model))
    voice, fused = defaultdict(list), defaultdict(list)
    for ev in events:
        cid = ev["call_id"]
        if "utterance_prosody" in ev and "emotion" in ev["utterance_prosody"]:
            voice[cid].append(probs(ev["utterance_prosody"]["emotion"]))
        if "utterance" in ev and "emotion" in ev["utterance"]:
            fused[cid].append(probs(ev["utterance"]["emotion"]))
    def top(ps):
        m = [sum(p[k] for p in ps) / len(ps) for k in range(5)]
        return CLASSES[max(range(5), key=lambda k: m[k])]
    res = {}
    for name, d in [("voice", voice), ("fused", fused)]:
        pairs = []
        for wav, label in items:
            cid = os.path.splitext(os.path.basename(wav))[0]
            if d.get(cid):
                pairs.append((label, top(d[cid])))
        u, rec = uar(a.binary, pairs, os.path.join(tmp, f"{name}.pairs.csv"))
        res[name] = u
        print(f"{name:>6}: UAR {u:.3f} over {len(pairs)} of {len(items)} clips; recall "
              + ", ".join(f"{c} {r:.2f}" for c, r in rec.items()))
    changed = sum(1 for wav, _ in items
                  for cid in [os.path.splitext(os.path.basename(wav))[0]]
                  if voice.get(cid) and fused.get(cid) and top(voice[cid]) != top(fused[cid]))
    print(f"top label changed by the words on {changed} clips")


if __name__ == "__main__":
    main()
