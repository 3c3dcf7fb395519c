#!/usr/bin/env python3
"""Two words models on the same spoken held-out rows (issue 17, item 1; rule in
models/README.md, "Training on Whisper's own transcripts of spoken rows").

    python3 tools/fusion_data.py --sets spoken --ravdess-model models/emotion-voice.json --out F.jsonl
    python3 tools/asr_text_eval.py F.jsonl --model A.json --model B.json

F.jsonl: the `spoken` set of tools/fusion_data.py (250 GoEmotions dev rows, 50 a class, seed 7,
espeak-ng's default voice, 8 kHz mu-law, each clip its own call through `callmood analyze`),
which holds each utterance's transcript and the voice's own probabilities. Each model scores
the same transcripts (`callmood eval-text --per-line --model M`); printed per model:
- words alone, per clip (all the clip's utterances' words as one text) and per utterance;
- the fusion shipped until 2026-12-07 (R0, beta 1, gamma 0: tools/fusion_fit.py's `today`; the
  service's fusion since is checked by tools/fusion_parity.py) with that words model,
  per utterance, and its share of utterances whose top label is `angry`;
each as five-class UAR with the per-class recall.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fusion_fit import CLASSES, argmax, fuse, uar  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scores(binary, model, texts):
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as f:
        f.write("[BLANK_AUDIO]\tneutral\n")
        for t in texts:
            f.write((t.replace("\t", " ").replace("\n", " ").strip() or "[BLANK_AUDIO]")
                    + "\tneutral\n")
        path = f.name
    run = subprocess.run([binary, "eval-text", "--sentences", path, "--per-line", "--model",
                          model], cwd=ROOT, capture_output=True, text=True)
    os.unlink(path)
    if run.returncode != 0:
        sys.exit(f"callmood eval-text failed:\n{run.stderr}")
    rows = [json.loads(l) for l in run.stdout.splitlines()]
    return rows[0]["probs"], [r["probs"] for r in rows[1:]]


def recall(pairs):
    out = []
    for c in range(5):
        got = [p == c for y, p in pairs if y == c]
        out.append(sum(got) / len(got) if got else float("nan"))
    return " ".join(f"{CLASSES[c][:3]} {r:.2f}" for c, r in enumerate(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "callmood"))
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.data)]
    rows = [r for r in rows if r["set"] == "spoken"]
    calls = collections.OrderedDict()
    for r in rows:
        calls.setdefault(r["call"], []).append(r)
    print(f"{len(calls)} clips, {len(rows)} utterances")
    for m in a.model:
        prior, per_utt = scores(a.binary, m, [r["transcript"] for r in rows])
        _, per_clip = scores(a.binary, m, [" ".join(r["transcript"] for r in us)
                                           for us in calls.values()])
        clip_pairs = [(CLASSES.index(us[0]["label"]), argmax(p))
                      for us, p in zip(calls.values(), per_clip)]
        utt_pairs = [(CLASSES.index(r["label"]), argmax(p)) for r, p in zip(rows, per_utt)]
        fused = [fuse(dict(r, words_prior=prior), "R0", 1.0, 0.0, words=p)
                 for r, p in zip(rows, per_utt)]
        fused_pairs = [(CLASSES.index(r["label"]), argmax(p)) for r, p in zip(rows, fused)]
        angry = sum(p == 2 for _, p in fused_pairs) / len(fused_pairs)
        print(f"{m}:")
        print(f"  words alone, per clip:      UAR {uar(clip_pairs):.3f} ({recall(clip_pairs)})")
        print(f"  words alone, per utterance: UAR {uar(utt_pairs):.3f} ({recall(utt_pairs)})")
        print(f"  fusion before 2026-12-07, per utterance: UAR {uar(fused_pairs):.3f} "
              f"({recall(fused_pairs)}); top angry {100 * angry:.1f} %")
    voice_pairs = [(CLASSES.index(r["label"]), argmax(r["voice"])) for r in rows]
    print(f"voice alone, per utterance: UAR {uar(voice_pairs):.3f} ({recall(voice_pairs)})")


if __name__ == "__main__":
    sys.exit(main())
