#!/usr/bin/env python3
"""Recall of PII redaction on spoken cases, through the whole service (issue 20, item 3).

Each case is a sentence (or two, as separate utterances split by a pause) spoken by espeak-ng
with a few voices and rates, turned into 8 kHz mu-law telephone audio by sox, and analysed by
`callmood analyze`. The secret digits of each case (card, CVV, expiry, SSN, account, ...) are
then looked for in every output field: the transcripts and the words. A case passes when no
digit of its secret survives; digits that belong to the sentence but are not secret (the 12
of "order twelve") are taken out first.

    tools/pii_spoken_eval.py [--bin target/release/callmood] [--all-voices] [--keep DIR]
        [--redact-all-numbers] [--cases FILE] [--voices dev|held-out] [-- MORE ANALYZE FLAGS]

`--cases tools/pii_heldout_cases.tsv --voices held-out` runs the held-out set: 20 cases
in phrasings and 4 voices the rules were not developed on (written before their first run).
`--cases tools/pii_heldout2_cases.tsv --voices held-out-2` runs a second one, written after
the first had been looked at in detail (2026-12-07).

sox runs in repeatable mode (-R), so the clips are the same bytes every run (before
2026-12-06 sox's dither made each run's audio, and so Whisper's words, differ a little).

Prints numbers only: per case, how many secret digits survived, and the totals. Needs
espeak-ng (not installed by scripts/setup: `apt-get install espeak-ng`) and sox on the PATH,
and the Whisper model (models/fetch.sh). 21 cases x 2 voice/rate pairs = 42 clips; about 10
minutes on 2 busy cores.

A digit of the secret counts as surviving when the output holds it (as a digit or a number
word) more often than the non-secret part of the sentence accounts for; a misrecognised
word that happens to be a digit word counts too, so the figure errs high.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

# (name, utterances, secret digits, non-secret digits). Utterances are spoken apart with a
# pause long enough for the segmenter to cut between them.
CASES = [
    ("card-4444", ["My card number is four five three two, zero one five one, one two eight three, zero three six six."], "4532015112830366", ""),
    ("amex-465", ["It's an Amex, three seven eight two, eight two two four six three, one zero zero zero five."], "378282246310005", ""),
    ("card-double", ["The card is double five double five, five five five five, four four four four, four four four four."], "5555555555554444", ""),
    ("card-uh", ["Card number is four five three two, uh, zero one five one, uh, one two eight three, zero three six six."], "4532015112830366", ""),
    ("card-invalid", ["The card number is one two three four, five six seven eight, one two three four, five six seven nine."], "1234567812345679", ""),
    ("card-order", ["For order twelve, the card number is six zero one one, zero zero zero nine, nine zero one three, nine four two four."], "6011000990139424", "12"),
    ("card-split", ["Okay, my card number is", "four one one one, one one one one, one one one one, one one one one."], "4111111111111111", ""),
    ("card-split-mid", ["The card is five four two five, two three three four,", "three zero one zero, nine nine zero three."], "5425233430109903", ""),
    ("cvv", ["The security code is three seven one."], "371", ""),
    ("cvv-back", ["And the CVV on the back is four two nine."], "429", ""),
    ("cvv-split", ["The three digit code on the back?", "Seven seven three."], "773", ""),
    ("expiry-oh", ["It expires oh four twenty seven."], "0427", ""),
    ("expiry-date", ["The expiration date is twelve twenty eight."], "1228", ""),
    ("expiry-thru", ["Valid thru oh three slash twenty nine."], "0329", ""),
    ("ssn-324", ["My social security number is two one nine, zero nine, nine nine nine nine."], "219099999", ""),
    ("ssn-social", ["My social is five three six, two two, four one eight seven."], "536224187", ""),
    ("account", ["My account number is eight eight two nine one zero four four seven three."], "8829104473", ""),
    ("routing", ["The routing number is zero two one zero zero zero zero two one."], "021000021", ""),
    ("pin", ["My PIN is four four seven one."], "4471", ""),
    ("sort-code", ["The sort code is four zero, one two, three four."], "401234", ""),
    ("full", ["Card number four one one one, one one one one, one one one one, one one one one, expiry oh nine twenty six, and the code is one two three."], "41111111111111110926123", ""),
]

VOICES = [("en-us", 140), ("en-gb", 180), ("en+f3", 140), ("en-us", 180), ("en-gb", 140), ("en+f3", 180)]
# Voices the rules were not developed on, for held-out cases (--voices held-out).
HELD_OUT_VOICES = [("en-gb-scotland", 150), ("en-029", 170), ("en-us-nyc", 150), ("en-gb-x-rp+f2", 170)]
# A second set, used by no other tool (--voices held-out-2, with tools/pii_heldout2_cases.tsv).
HELD_OUT_2_VOICES = [("en-gb-x-gbclan", 160), ("en-us+Annie", 150), ("en-gb+aunty", 165), ("en-us+Mike", 175)]


def read_cases(path):
    """Cases from a TSV file: name, utterances separated by " | ", secret, non-secret digits."""
    cases = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            cols += [""] * (4 - len(cols))
            name, utterances, secret, other = cols[:4]
            cases.append((name, [u.strip() for u in utterances.split(" | ")], secret, other))
    return cases

UNITS = {"zero": "0", "oh": "0", "o": "0", "nought": "0", "one": "1", "two": "2", "three": "3",
         "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
         "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
         "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
         "twenty": "2", "thirty": "3", "forty": "4", "fifty": "5", "sixty": "6", "seventy": "7",
         "eighty": "8", "ninety": "9"}


def digits_in(text):
    """Every digit a text holds, written or as number words ("double four" is 44)."""
    out = []
    words = re.findall(r"[A-Za-z]+|\d", text.lower())
    repeat = 1
    for w in words:
        if w.isdigit():
            out.append(w * repeat)
            repeat = 1
        elif w in ("double", "triple"):
            repeat = 2 if w == "double" else 3
        elif w in UNITS:
            out.append(UNITS[w] * repeat)
            repeat = 1
        else:
            repeat = 1
    return "".join(out)


def surviving(texts, secret, other):
    """Secret digits (as a multiset) found in the texts, after the non-secret ones."""
    found = collections.Counter(digits_in(" ".join(texts)))
    found.subtract(collections.Counter(other))
    want = collections.Counter(secret)
    return sum(min(max(found[d], 0), n) for d, n in want.items())


def outputs(stdout):
    """Per call id, every utterance's transcript and its words joined, from analyze's JSON lines."""
    fields = collections.defaultdict(lambda: {"transcript": [], "words": []})
    for line in stdout.splitlines():
        ev = json.loads(line)
        u = ev.get("utterance")
        if u is None:
            continue
        f = fields[ev["call_id"]]
        f["transcript"].append(u.get("transcript", ""))
        f["words"].append(" ".join(w.get("text", "") for w in u.get("words", [])))
    return fields


def speak(text_parts, voice, rate, wav, tmp):
    parts = []
    for k, t in enumerate(text_parts):
        p = os.path.join(tmp, f"part{k}.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", p, t], check=True)
        parts.append(p)
    # 0.3 s before, 1.5 s after each utterance: the segmenter cuts in a pause that long
    padded = []
    for k, p in enumerate(parts):
        q = os.path.join(tmp, f"pad{k}.wav")
        subprocess.run(["sox", "-R", p, q, "pad", "0.3" if k == 0 else "0", "1.5"], check=True)
        padded.append(q)
    joined = os.path.join(tmp, "joined.wav")
    subprocess.run(["sox", "-R", *padded, joined], check=True)
    subprocess.run(["sox", "-R", joined, "-r", "8000", "-c", "1", "-e", "u-law", wav], check=True)


def redaction_flags(args):
    """analyze's flags: the chosen redaction, then the user's own; `-- --no-redaction` turns
    redaction off (analyze refuses it beside --redact-all-numbers, so that flag is left out)."""
    if "--no-redaction" in args.flags:
        return list(args.flags)
    return ["--redact-all-numbers" if args.redact_all_numbers else "--redact-all-numbers=false",
            *args.flags]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/callmood")
    ap.add_argument("--all-voices", action="store_true", help="every voice and rate per case (6x)")
    ap.add_argument("--keep", help="keep the audio and the JSON output in this directory")
    ap.add_argument("--redact-all-numbers", action="store_true",
                    help="run analyze with --redact-all-numbers (every number redacted, analyze's "
                         "default since 2026-12-07); without it the tool measures the cue, length "
                         "and payment-window rules alone (--redact-all-numbers=false)")
    ap.add_argument("--cases", help="read the cases from this TSV file (e.g. tools/pii_heldout_cases.tsv)")
    ap.add_argument("--voices", choices=["dev", "held-out", "held-out-2"], default="dev",
                    help="the voices the rules were developed on, or others")
    ap.add_argument("flags", nargs="*", help="more flags for analyze (after --)")
    args = ap.parse_args()
    cases = read_cases(args.cases) if args.cases else CASES
    voices = {"dev": VOICES, "held-out": HELD_OUT_VOICES, "held-out-2": HELD_OUT_2_VOICES}[args.voices]
    tmp = args.keep or tempfile.mkdtemp(prefix="pii-spoken-")
    os.makedirs(tmp, exist_ok=True)
    clips = {}
    half = len(voices) // 2
    for i, (name, parts, secret, other) in enumerate(cases):
        combos = range(len(voices)) if args.all_voices else [i % len(voices), (i + half) % len(voices)]
        for c in combos:
            voice, rate = voices[c]
            stem = f"{name}_{voice.replace('+', '')}_{rate}"
            wav = os.path.join(tmp, stem + ".wav")
            speak(parts, voice, rate, wav, tmp)
            clips[stem] = (name, secret, other, wav)
    res = subprocess.run([args.bin, "analyze", "--no-emotion", "-j", "1",
                          *redaction_flags(args), *[c[3] for c in clips.values()]],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        sys.exit(1)
    if args.keep:
        with open(os.path.join(tmp, "out.jsonl"), "w") as f:
            f.write(res.stdout)
    fields = outputs(res.stdout)
    clean = 0
    total = 0
    for stem, (name, secret, other, _) in clips.items():
        f = fields[stem]
        left = max(surviving(f["transcript"], secret, other), surviving(f["words"], secret, other))
        total += left
        clean += left == 0
        print(f"{stem:32} secret digits {len(secret):2}  surviving {left:2}")
    n = len(clips)
    print(f"cases {n}, with no secret digit left {clean} (recall {clean / n:.3f}), surviving digits {total}")


if __name__ == "__main__":
    main()
