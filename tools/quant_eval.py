#!/usr/bin/env python3
"""f16 against quantised Whisper weights, side by side in one run: WER and CPU time.

Models are GGML files made by `callmood model convert [--quantize q8_0|q5_0|q5_1]`; the
first one given is the baseline. On the clips tools/wer_eval.py finds (16 kHz PCM and
8 kHz mu-law versions of each), this runs:

  * WER: `callmood transcribe --model M CLIP` once per clip and model (whole file, no
    endpointing: the engine alone), scored by `callmood score wer`;
  * speed: `callmood analyze --no-emotion --model M CLIP...` over all clips in one
    process, --rounds times per model, the model order rotated every round so that no
    model always runs first or last. Each run's wall and child CPU (user + sys) seconds
    are printed with the load average, and every round's CPU ratio to the baseline.

Timings on a shared machine are only comparable within one run of this script.

    python3 tools/quant_eval.py models/ggml-tiny.en.bin /tmp/ggml-tiny.en-q8_0.bin
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wer_eval  # noqa: E402  (the clip discovery, conversion, scoring this reuses)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="GGML files; the first is the baseline")
    p.add_argument("--callmood", default=os.path.join(wer_eval.REPO, "target", "release",
                                                      "callmood"))
    p.add_argument("--rounds", type=int, default=3, help="speed runs per model")
    p.add_argument("--threads", type=int, default=2, help="--threads for callmood")
    p.add_argument("--workdir", default=os.path.join(wer_eval.CACHE, "clips"))
    p.add_argument("--formats", default=",".join(wer_eval.FORMATS),
                   help="clip formats to use (comma-separated: pcm16k,ulaw8k)")
    p.add_argument("--no-wer", action="store_true", help="speed only")
    p.add_argument("--speed-corpus", default=None,
                   help="time only this corpus's clips (e.g. pocketsphinx-testdata)")
    p.add_argument("--speed-file", action="append", default=None,
                   help="time these recordings instead of the clips (repeatable)")
    args = p.parse_args()
    cm = os.path.abspath(args.callmood)
    models = [os.path.abspath(m) for m in args.models]
    thr = ["--threads", str(args.threads)]

    formats = args.formats.split(",")
    clips = []  # (ref, wav, corpus)
    for name, cs in wer_eval.discover():
        for clip in cs:
            inputs = wer_eval.convert(clip, os.path.abspath(args.workdir))
            for fmt in formats:
                clips.append((clip["ref"], inputs[fmt], name))
    audio_s = sum(wer_eval.duration_s(w) for _, w, _ in clips)
    print(f"== {len(clips)} clip inputs, {audio_s:.1f} s of audio, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()}")

    print("\nWER, `callmood transcribe` per clip (errors / reference words):")
    for m in [] if args.no_wer else models:
        hyps = []
        for _ref, wav, _ in clips:
            out, _, _ = wer_eval.run_timed([cm, "transcribe", "--model", m, *thr, wav])
            hyps.append(" ".join(out.split()))
        counts = wer_eval.score_wer(cm, [(ref, h) for (ref, _, _), h in zip(clips, hyps)])
        e, n = sum(c[0] for c in counts), sum(c[1] for c in counts)
        print(f"  {os.path.basename(m):<28} {100 * wer_eval.wer_of(e, n):6.2f} %  ({e}/{n})")

    print(f"\nSpeed, `callmood analyze --no-emotion {' '.join(thr)}` over the clips, one process:")
    wavs = args.speed_file or [w for _, w, c in clips if args.speed_corpus in (None, c)]
    secs = sum(wer_eval.duration_s(w) for w in wavs)
    print(f"  {len(wavs)} inputs, {secs:.1f} s of audio")
    cpu = {m: [] for m in models}
    wall = {m: [] for m in models}
    for r in range(args.rounds):
        order = models[r % len(models):] + models[:r % len(models)]
        for m in order:
            load = os.getloadavg()[0]
            _, w, c = wer_eval.run_timed([cm, "analyze", "--no-emotion", "--model", m, *thr,
                                          *wavs])
            cpu[m].append(c)
            wall[m].append(w)
            print(f"  round {r + 1} {os.path.basename(m):<28} wall {w:6.2f} s  cpu {c:6.2f} s"
                  f"  load {load:.2f}")
        base = models[0]
        print("    ratios to baseline this round: " + ", ".join(
            f"{os.path.basename(m)} cpu {cpu[m][-1] / cpu[base][-1]:.3f} "
            f"wall {wall[m][-1] / wall[base][-1]:.3f}" for m in models[1:]))
    print("\nMedian over rounds of the per-round ratio to the baseline:")
    for m in models[1:]:
        rc = statistics.median(a / b for a, b in zip(cpu[m], cpu[models[0]]))
        rw = statistics.median(a / b for a, b in zip(wall[m], wall[models[0]]))
        print(f"  {os.path.basename(m):<28} cpu x{rc:.3f}  wall x{rw:.3f}")
    print(f"== load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
