#!/usr/bin/env python3
"""Spoken PII between two parties, through the whole service (issue 20, item 3).

tools/pii_spoken_eval.py speaks each secret with its cue in one voice ("my card number is
..."). On a real payment line the cue is usually the agent's question ("and the three digits
on the back?") and the caller answers with digits alone, so a cue Whisper hears in the
agent's voice has to protect the caller's answer. Each case here is a short dialogue: the
agent (espeak-ng en-us, one voice) asks, the caller (other espeak-ng voices and rates, none
of them used by pii_spoken_eval.py) answers, written as a stereo WAV (caller left, agent
right, 8 kHz mu-law after sox), analysed by `callmood analyze`.

    tools/pii_dialogue_eval.py [--bin target/release/callmood] [--keep DIR] [-- ANALYZE FLAGS]

Two kinds of case:
- payment: the secret digits (card, CVV, expiry, SSN, account, PIN) must not survive in
  any output of either party (counted as in pii_spoken_eval.py: digits and number words,
  a misheard word that happens to be a digit word counts too, so the figure errs high);
- window: ordinary numbers said just after a payment cue ("my card was charged twice" ...
  "forty dollars each"): the price a rule that redacts every number near a payment cue
  pays; reported apart, as digits kept.
- control: ordinary numbers with no payment cue anywhere in the dialogue ("the third time",
  "forty five minutes", "order seven two eight one nine"): the digits the same clip keeps
  with `--no-redaction` should still be there with redaction on. Reported as digits kept.

sox runs in repeatable mode (-R): the clips are the same bytes every run. Prints numbers only. Needs espeak-ng and sox on the PATH and the Whisper model.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pii_spoken_eval import digits_in, outputs, redaction_flags, surviving  # noqa: E402

AGENT_VOICE = ("en-us", 160)
CALLER_VOICES = [("en-gb-scotland", 150), ("en-us+m3", 170), ("en-gb-x-rp", 140),
                 ("en-029", 160), ("en-gb-x-gbcwmd", 150), ("en-us+m3", 140)]

# (name, kind, turns, secret digits, non-secret digits). A turn is ("A" | "C", text).
CASES = [
    ("front", "payment", [("A", "Can I take the long number on the front of the card, please?"),
                          ("C", "Yes. Four nine one six, three eight two seven, one one five four, six six zero two.")],
     "4916382711546602", ""),
    ("cvv-back", "payment", [("A", "And what is the security code on the back?"),
                             ("C", "It's five one seven.")], "517", ""),
    ("cvv-three", "payment", [("A", "Then the last three digits on the signature strip."),
                              ("C", "Two eight four.")], "284", "3"),
    ("expiry", "payment", [("A", "What is the expiry date on the card?"),
                           ("C", "Oh nine, twenty eight.")], "0928", ""),
    ("expiry-month", "payment", [("A", "When does that card expire?"),
                                 ("C", "December twenty nine.")], "29", ""),
    ("ssn", "payment", [("A", "Could you confirm your social security number for me?"),
                        ("C", "Sure. Six two one, four four, nine eight one zero.")], "621449810", ""),
    ("account", "payment", [("A", "Which account number would you like to pay from?"),
                            ("C", "Three three zero one, eight seven six, two two five.")], "3301876225", ""),
    ("pin", "payment", [("A", "Please enter or say your PIN."),
                        ("C", "One nine eight seven.")], "1987", ""),
    ("cvv-uh", "payment", [("A", "And the CVV, please?"),
                           ("C", "Uh, I think it's four zero six.")], "406", ""),
    ("card-later", "payment", [("C", "I'd like to pay my bill today."),
                               ("A", "Of course. Which card would you like to use?"),
                               ("C", "Four one four seven, two zero two zero, zero zero one two, three four five six.")],
     "4147202000123456", ""),
    ("three-turns", "payment", [("A", "Please read me the card number."),
                                ("C", "Five two nine nine, one three three seven, four two zero eight, eight eight one five."),
                                ("A", "Thank you. And the expiry?"),
                                ("C", "Oh three, thirty."),
                                ("A", "And the code on the back?"),
                                ("C", "Seven seven one.")],
     "5299133742088815" + "0330" + "771", ""),
    ("pause", "payment", [("A", "What is the card number?"),
                          ("C", "Hang on, let me find it."),
                          ("C", "Okay. Six zero one one, five five four two, one nine zero zero, three two one seven.")],
     "6011554219003217", ""),
    ("times", "control", [("A", "How many times have you called us about this?"),
                          ("C", "This is the third time, and I waited forty five minutes.")], "", ""),
    ("order", "control", [("A", "What is your order number?"),
                          ("C", "It's seven two eight one nine.")], "", ""),
    ("dates", "control", [("A", "When did the package arrive?"),
                          ("C", "On the twelfth, about two weeks ago, with four boxes.")], "", ""),
    ("price", "control", [("A", "How much were you charged?"),
                          ("C", "Sixty two dollars, and then another nineteen.")], "", ""),
    ("ticket", "control", [("A", "Do you have the ticket reference?"),
                           ("C", "Yes, it's ticket eight one four, from March the third.")], "", ""),
    ("count", "control", [("C", "I have two accounts and three phones on the plan."),
                          ("A", "Alright, and how many lines do you want to keep?"),
                          ("C", "Just the two.")], "", ""),
    ("charged", "window", [("C", "My card was charged twice last week."),
                           ("A", "I'm sorry about that. How much was each charge?"),
                           ("C", "Forty dollars each, on the third and the fifth.")], "", ""),
]


def tts(text, voice, rate, path):
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-w", path, text], check=True)


def duration(path):
    out = subprocess.run(["soxi", "-D", path], capture_output=True, text=True, check=True)
    return float(out.stdout)


def dialogue(turns, caller, wav, tmp):
    """Caller on the left, agent on the right, 0.9 s between turns, 8 kHz mu-law."""
    left, right = [], []
    for k, (who, text) in enumerate(turns):
        voice, rate = AGENT_VOICE if who == "A" else caller
        raw = os.path.join(tmp, f"t{k}.wav")
        tts(text, voice, rate, raw)
        seg = os.path.join(tmp, f"s{k}.wav")
        subprocess.run(["sox", "-R", raw, "-r", "16000", "-c", "1", seg, "pad", "0.3", "0.6"], check=True)
        silent = os.path.join(tmp, f"z{k}.wav")
        subprocess.run(["sox", "-R", seg, silent, "vol", "0"], check=True)
        (left if who == "C" else right).append(seg)
        (right if who == "C" else left).append(silent)
    both = []
    for side, parts in (("l", left), ("r", right)):
        p = os.path.join(tmp, f"{side}.wav")
        subprocess.run(["sox", "-R", *parts, p], check=True)
        both.append(p)
    joined = os.path.join(tmp, "joined.wav")
    subprocess.run(["sox", "-R", "-M", *both, joined], check=True)
    subprocess.run(["sox", "-R", joined, "-r", "8000", "-c", "2", "-e", "u-law", wav], check=True)


def analyze(binary, wavs, flags):
    res = subprocess.run([binary, "analyze", "--no-emotion", "-j", "1", *flags, *wavs],
                         capture_output=True, text=True)
    if res.returncode != 0:
        sys.stderr.write(res.stderr)
        sys.exit(1)
    return res.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/callmood")
    ap.add_argument("--keep", help="keep the audio and the JSON output in this directory")
    ap.add_argument("--redact-all-numbers", action="store_true",
                    help="every number redacted (analyze's default since 2026-12-07); without "
                         "it the tool measures the cue, length and payment-window rules alone")
    ap.add_argument("flags", nargs="*", help="more flags for analyze (after --)")
    args = ap.parse_args()
    args.flags = redaction_flags(args)
    tmp = args.keep or tempfile.mkdtemp(prefix="pii-dialogue-")
    os.makedirs(tmp, exist_ok=True)
    clips = {}
    for i, (name, kind, turns, secret, other) in enumerate(CASES):
        for c in (i % len(CALLER_VOICES), (i + 3) % len(CALLER_VOICES)):
            voice, rate = CALLER_VOICES[c]
            stem = f"{name}_{voice.replace('+', '')}_{rate}"
            wav = os.path.join(tmp, stem + ".wav")
            dialogue(turns, (voice, rate), wav, tmp)
            clips[stem] = (name, kind, secret, other, wav)
    wavs = [c[4] for c in clips.values()]
    red = analyze(args.bin, wavs, args.flags)
    plain = analyze(args.bin, [clips[s][4] for s in clips if clips[s][1] != "payment"],
                    ["--no-redaction"])
    if args.keep:
        with open(os.path.join(tmp, "out.jsonl"), "w") as f:
            f.write(red)
        with open(os.path.join(tmp, "plain.jsonl"), "w") as f:
            f.write(plain)
    red, plain = outputs(red), outputs(plain)
    clean = total = n = 0
    kept = collections.Counter()
    heard = collections.Counter()
    for stem, (name, kind, secret, other, _) in clips.items():
        f = red[stem]
        if kind == "payment":
            left = max(surviving(f["transcript"], secret, other), surviving(f["words"], secret, other))
            n += 1
            total += left
            clean += left == 0
            print(f"{stem:34} payment  secret digits {len(secret):2}  surviving {left:2}")
        else:
            have = len(digits_in(" ".join(plain[stem]["transcript"])))
            got = len(digits_in(" ".join(f["transcript"])))
            heard[kind] += have
            kept[kind] += min(got, have)
            print(f"{stem:34} {kind:8} digits without redaction {have:2}  kept {min(got, have):2}")
    print(f"payment clips {n}, with no secret digit left {clean} ({clean / n:.3f}), "
          f"surviving digits {total}")
    for kind in ("control", "window"):
        print(f"{kind} digits heard {heard[kind]}, kept with redaction {kept[kind]}")


if __name__ == "__main__":
    main()
