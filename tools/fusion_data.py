#!/usr/bin/env python3
"""Builds the held-out predictions the voice/words fusion is fitted and measured on (issue 17,
item 3): every clip through `callmood analyze` as 8 kHz mu-law (each clip its own call, cold
start, Whisper transcripts), one JSON line per utterance with the voice-only estimate (the
`utterance_prosody` event: probabilities and unfamiliarity), the fused one the binary made
(the `utterance` event) and the transcript, then the words model's probabilities of that
transcript (`callmood eval-text --per-line`) and its prior (the probabilities of an empty
transcript, which fusion compares them with).

Sets (`set`, `split` fit/test; speakers or sentences split in halves, never clips):
  ravdess   RAVDESS actors 13-18 scored by a voice model trained on actors 01-12
            (--ravdess-model): emotional voices, neutral words. fit 13-15, test 16-18.
  spoken    GoEmotions dev rows of one class (--per-class of each), spoken by espeak-ng in a
            flat voice: only the words carry the emotion. fit/test alternate.
  read      read-speech/ readers, labelled neutral: calm voices, ordinary words. Speakers
            sorted by id, even ones fit, odd ones test (the halves of models/README.md).
  tess, savee  acted corpora the shipped voice model never saw (every --tess-step-th TESS
            clip, every --savee-step-th SAVEE clip): emotional voices, neutral words. test only.

RAVDESS and TESS clips say known carrier sentences, so their words are the manifest's
transcript as written and the clips run without Whisper (`--no-transcript`, much faster);
the other sets are transcribed by Whisper. Each set's utterances are appended to --out as
soon as it is done.

  python3 tools/fusion_data.py --data ../shared/data --ravdess-model M0112.json --out F.jsonl

With --words-from OLD.jsonl (an earlier run with the same sets and settings) only the voice is
scored anew: every clip runs without Whisper, and each utterance takes its transcript and
words-model scores from OLD, matched by set, call and utterance id. The utterances of each set
must match OLD's one for one or the tool stops. For a new voice model, the words unchanged;
the rows then carry no `fused` (the binary's own fusion needs the transcript).
"""
import argparse, csv, json, os, random, subprocess, sys, tempfile

from callmood_events import ROOT, analyze

CLASSES = ["neutral", "happy", "angry", "sad", "fearful"]
MAP = {"calm": "neutral", "disgust": "angry"}
GO = {"anger": "angry", "disgust": "angry", "fear": "fearful", "joy": "happy",
      "neutral": "neutral", "sadness": "sad"}


def to_phone(src, dst, pad=False):
    """src as 8 kHz mu-law mono (the phone line without noise), optionally padded."""
    cmd = ["sox", "-q", "-G", "-R", src, "-r", "8000", "-c", "1", "-e", "u-law", dst]
    if pad:
        cmd += ["pad", "0.5", "0.5"]
    subprocess.run(cmd, check=True)


def corpus_items(root, name, tmp, keep, split_of):
    rows = list(csv.DictReader(open(os.path.join(root, "manifest.csv"))))
    out = []
    for i, r in enumerate(rows):
        label = MAP.get(r.get("emotion", "neutral"), r.get("emotion", "neutral"))
        if label not in CLASSES or not keep(i, r):
            continue
        wav = os.path.join(tmp, f"{name}-{i}.wav")
        to_phone(os.path.join(root, r["file"]), wav)
        out.append({"set": name, "split": split_of(r), "wav": wav, "label": label,
                    "speaker": r["speaker"], "text": r.get("transcript", "")})
    return out


def spoken_items(dev, per_class, tmp, seed):
    labels = [l.strip() for l in open(os.path.join(os.path.dirname(dev), "labels.txt"))]
    by_class = {c: [] for c in CLASSES}
    for line in open(dev):
        text, ids, _ = line.rstrip("\n").split("\t")
        names = {labels[int(k)] for k in ids.split(",")} - {"surprise"}
        classes = {GO[n] for n in names}
        if len(classes) == 1 and len(text.split()) >= 3:
            by_class[classes.pop()].append(text)
    rng = random.Random(seed)
    out = []
    for c in CLASSES:
        rows = by_class[c][:]
        rng.shuffle(rows)
        for j, text in enumerate(rows[:per_class]):
            raw = os.path.join(tmp, f"spoken-{c}-{j}.raw.wav")
            wav = os.path.join(tmp, f"spoken-{c}-{j}.wav")
            subprocess.run(["espeak-ng", "-w", raw, text], check=True)
            to_phone(raw, wav, pad=True)
            out.append({"set": "spoken", "split": "fit" if j % 2 == 0 else "test", "wav": wav,
                        "label": c, "speaker": "espeak", "text": text})
    return out


def words_scores(binary, texts, tmp):
    """The words model's probabilities of each text, and its prior (an empty transcript)."""
    path = os.path.join(tmp, "words.tsv")
    with open(path, "w") as f:
        f.write("[BLANK_AUDIO]\tneutral\n")
        for t in texts:
            f.write(t.replace("\t", " ").replace("\n", " ") + "\tneutral\n")
    run = subprocess.run([binary, "eval-text", "--sentences", path, "--per-line"],
                         cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"callmood eval-text failed:\n{run.stderr}")
    rows = [json.loads(l) for l in run.stdout.splitlines()]
    if len(rows) != len(texts) + 1:
        sys.exit(f"eval-text gave {len(rows)} lines for {len(texts) + 1}")
    return rows[0], rows[1:]


def reuse_words(rows, old, name):
    """Gives each of `rows` (voice scored anew) the transcript and words scores of the same
    utterance in an earlier run; stops unless the set's utterances match one for one."""
    keys = {(r["set"], r["call"], r["utterance"]) for r in rows}
    before = {k for k in old if k[0] == name}
    if keys != before:
        sys.exit(f"{name}: {len(keys - before)} utterances not in --words-from, "
                 f"{len(before - keys)} of it not found again; the runs differ")
    for r in rows:
        o = old[(r["set"], r["call"], r["utterance"])]
        for field in ("transcript", "words", "frustration", "words_prior"):
            r[field] = o[field]
        del r["fused"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--ravdess-model", required=True, help="voice model trained on actors 01-12")
    ap.add_argument("--voice-model", help="voice model of the other sets (default: the shipped one)")
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--tess-step", type=int, default=8)
    ap.add_argument("--savee-step", type=int, default=3)
    ap.add_argument("--sets", default="ravdess,spoken,read,tess,savee")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/callmood"))
    ap.add_argument("--words-from", help="reuse this earlier run's transcripts and words scores")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    old = None
    if a.words_from:
        old = {}
        for line in open(a.words_from):
            r = json.loads(line)
            old[(r["set"], r["call"], r["utterance"])] = r
    tmp = tempfile.mkdtemp()
    sets = a.sets.split(",")
    groups = []  # (items, analyze options)
    if "ravdess" in sets:
        actor = lambda r: int(r["speaker"].replace("actor", ""))
        items = corpus_items(os.path.join(a.data, "ravdess-train"), "ravdess", tmp,
                             lambda i, r: actor(r) >= 13,
                             lambda r: "fit" if actor(r) <= 15 else "test")
        groups.append((items, ["--emotion-model", os.path.abspath(a.ravdess_model),
                               "--no-transcript"]))
    if "spoken" in sets:
        groups.append((spoken_items(os.path.join(a.data, "goemotions", "dev.tsv"),
                                    a.per_class, tmp, a.seed), []))
    if "read" in sets:
        root = os.path.join(a.data, "read-speech")
        spk = sorted({r["speaker"] for r in csv.DictReader(open(os.path.join(root, "manifest.csv")))})
        half = {s: ("fit" if k % 2 == 0 else "test") for k, s in enumerate(spk)}
        groups.append((corpus_items(root, "read", tmp, lambda i, r: True,
                                    lambda r: half[r["speaker"]]), []))
    if "tess" in sets:
        groups.append((corpus_items(os.path.join(a.data, "tess"), "tess", tmp,
                                    lambda i, r: i % a.tess_step == 0, lambda r: "test"),
                       ["--no-transcript"]))
    if "savee" in sets:
        groups.append((corpus_items(os.path.join(a.data, "savee"), "savee", tmp,
                                    lambda i, r: i % a.savee_step == 0, lambda r: "test"), []))
    open(a.out, "w").close()
    total = 0
    for items, opts in groups:
        rows = []
        by_call = {os.path.splitext(os.path.basename(it["wav"]))[0]: it for it in items}
        print(f"{items[0]['set']}: {len(items)} clips", file=sys.stderr, flush=True)
        voice = {}
        if old is not None and "--no-transcript" not in opts:
            opts = opts + ["--no-transcript"]
        if a.voice_model and "--emotion-model" not in opts:
            opts = opts + ["--emotion-model", os.path.abspath(a.voice_model)]
        for ev in analyze(a.binary, [it["wav"] for it in items], "--jobs", "2", "--no-redaction", *opts):
            cid = ev["call_id"]
            if "utterance_prosody" in ev and "emotion" in ev["utterance_prosody"]:
                u = ev["utterance_prosody"]
                voice[(cid, u["utterance_id"])] = u["emotion"]
            if "utterance" in ev and "emotion" in ev["utterance"]:
                u = ev["utterance"]
                it = by_call[cid]
                v = voice.get((cid, u["utterance_id"]))
                if v is None:
                    continue
                rows.append({"set": it["set"], "split": it["split"], "call": cid,
                             "utterance": u["utterance_id"], "speaker": it["speaker"],
                             "label": it["label"], "said": it["text"],
                             "transcript": u.get("transcript") or (it["text"] if "--no-transcript" in opts else ""),
                             "voice": [v.get(c, 0.0) for c in CLASSES],
                             "unfamiliarity": v.get("unfamiliarity", 0.0),
                             "fused": [u["emotion"].get(c, 0.0) for c in CLASSES]})
        if old is not None:
            reuse_words(rows, old, items[0]["set"])
        else:
            prior, scores = words_scores(a.binary, [r["transcript"] for r in rows], tmp)
            for r, sc in zip(rows, scores):
                r["words"] = sc["probs"]
                r["frustration"] = sc.get("frustration", 0.0)
                r["words_prior"] = prior["probs"]
        with open(a.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        total += len(rows)
        print(f"{items[0]['set']}: {len(rows)} utterances", file=sys.stderr, flush=True)
    print(f"wrote {total} utterances to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
