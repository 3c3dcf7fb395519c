//! The `callmood` binary as a user runs it.
mod common;

use std::process::Command;

use common::*;

#[test]
fn analyze_prints_one_call_event_per_line_with_proto_names() {
    let dir = tempfile::tempdir().unwrap();
    let (clip, reference) = librivox("0890");
    // The same clip as 8 kHz μ-law telephone audio.
    let ulaw = dir.path().join("call.wav");
    to_mulaw_8k(&clip, &ulaw);
    let (ok, stdout, stderr) = run(callmood()
        .arg("analyze")
        .arg(&ulaw)
        .env("CALLMOOD_MODEL", model_path()));
    assert!(ok, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|v| v["call_id"] == "call"));
    let utts: Vec<&serde_json::Value> = lines.iter().filter_map(|v| v.get("utterance")).collect();
    assert!(!utts.is_empty());
    for u in &utts {
        assert!(u["start_ms"].as_u64().unwrap() < u["end_ms"].as_u64().unwrap());
        assert_eq!(u["role"], "CALLER");
        assert!(u["prosody"]["f0_mean_hz"].as_f64().unwrap() > 50.0);
        let label = u["emotion"]["top_label"].as_str().unwrap();
        assert!(callmood::emotion::CLASSES.contains(&label), "{u}");
        // Every cue is described; only a neutral label may have none (nothing pushed it).
        let cues = u["cues"].as_array().map_or(&[][..], |c| c.as_slice());
        assert!(label == "neutral" || !cues.is_empty(), "{u}");
        for cue in cues {
            assert!(
                cue["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{u}"
            );
        }
    }
    let text: Vec<&str> = utts
        .iter()
        .map(|u| u["transcript"].as_str().unwrap())
        .collect();
    let w = wer(&reference, &text.join(" "));
    assert!(w < 0.2, "WER {w}: {text:?}");
    assert!(lines.last().unwrap().get("summary").is_some());
    assert!(lines.iter().any(|v| v.get("utterance_prosody").is_some()));
}

#[test]
fn features_prints_a_frame_track_csv() {
    let (clip, _) = librivox("0880");
    let (ok, stdout, stderr) = run(callmood().arg("features").arg(&clip).arg("--frames"));
    assert!(ok, "{stderr}");
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..3], &["time_s", "f0_hz", "energy_db"]);
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    // One row per 10 ms of the 2.99 s clip.
    assert!((rows.len() as i64 - 299).abs() <= 3, "{} rows", rows.len());
    assert!((rows[1][0] - rows[0][0] - 0.01).abs() < 1e-6);
    let voiced = rows.iter().filter(|r| r[1] > 0.0).count();
    assert!(voiced > 50, "only {voiced} voiced frames");
    assert!(rows
        .iter()
        .all(|r| r[1] == 0.0 || (50.0..=500.0).contains(&r[1])));
}

#[test]
fn bad_arguments_and_files_give_one_clear_line_and_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.wav");
    std::fs::write(&text, "this is not audio").unwrap();
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (
            vec!["analyze".into(), dir.path().join("missing.wav").into()],
            "no such file",
        ),
        (
            vec!["features".into(), text.clone().into(), "--frames".into()],
            "notes.wav",
        ),
        (
            vec![
                "analyze".into(),
                "--no-transcript".into(),
                text.clone().into(),
            ],
            "notes.wav",
        ),
        (
            vec![
                "stream".into(),
                text.clone().into(),
                "--speed".into(),
                "0".into(),
            ],
            "--speed",
        ),
        (
            vec![
                "serve".into(),
                "--model".into(),
                dir.path().join("none.bin").into(),
            ],
            "models/fetch.sh",
        ),
        (
            vec!["serve".into(), "--addr".into(), "not-an-address".into()],
            "addr",
        ),
        (
            train_args(dir.path(), &["--eval-orders", "0"]),
            "--eval-orders must be at least 1",
        ),
        (
            train_args(dir.path(), &["--prior-weight", "0"]),
            "--prior-weight must be positive",
        ),
    ];
    for (args, needle) in cases {
        let (ok, _, stderr) = run(callmood().args(&args));
        assert!(!ok, "{args:?} should fail");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn stream_to_a_server_that_is_not_there_fails_cleanly() {
    let (clip, _) = librivox("0880");
    let (ok, _, stderr) = run(callmood()
        .arg("stream")
        .arg(&clip)
        .args(["--server", "http://127.0.0.1:9"]));
    assert!(!ok);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// Whether this machine has an audio input, as `callmood listen` sees it.
#[cfg(feature = "listen")]
fn has_input_device() -> bool {
    callmood::client::listen::Microphone::open(None).is_ok()
}

#[cfg(feature = "listen")]
#[test]
fn listen_without_an_input_device_fails_with_one_line() {
    if has_input_device() {
        eprintln!("skipped: this machine has an audio input");
        return;
    }
    // Port 1: nothing listens, but the device is looked for before connecting.
    let (ok, stdout, stderr) = run(callmood().args(["listen", "--server", "http://127.0.0.1:1"]));
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("input device"), "{stderr}");
    assert!(stderr.contains("--list-devices"), "{stderr}");
    // A device asked for by name that is not there.
    let (ok, _, stderr) = run(callmood().args([
        "listen",
        "--server",
        "http://127.0.0.1:1",
        "--device",
        "no such microphone",
    ]));
    assert!(!ok);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no such microphone"), "{stderr}");
}

#[cfg(feature = "listen")]
#[test]
fn listen_list_devices_exits_cleanly() {
    let (ok, stdout, stderr) = run(callmood().args(["listen", "--list-devices"]));
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // One line per device, or one line saying there are none.
    assert!(!stdout.trim().is_empty());
    if !has_input_device() && stdout.starts_with("no audio input") {
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
    }
}

#[test]
fn stereo_is_caller_left_agent_right_and_alaw_reads_like_pcm() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = librivox("0880");
    let (b, _) = librivox("0930");
    let (a, b) = (load_wav(&a), load_wav(&b));
    // Left speaks first; right answers 800 ms after left's clip ends.
    let right_start = a.len() + 12_800;
    let len = right_start + b.len() + 8000;
    let stereo = dir.path().join("stereo.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&stereo, spec).unwrap();
    for i in 0..len {
        let l = a.get(i).copied().unwrap_or(0.0);
        let r = i
            .checked_sub(right_start)
            .and_then(|j| b.get(j))
            .copied()
            .unwrap_or(0.0);
        w.write_sample((l * 32767.0) as i16).unwrap();
        w.write_sample((r * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    let (ok, stdout, stderr) = run(callmood().args(["analyze", "--no-transcript"]).arg(&stereo));
    assert!(ok, "{stderr}");
    let utts: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap()
                .get("utterance")
                .cloned()
        })
        .collect();
    let left: Vec<_> = utts.iter().filter(|u| u["channel_id"] == 0).collect();
    let right: Vec<_> = utts.iter().filter(|u| u["channel_id"] == 1).collect();
    assert!(!left.is_empty() && !right.is_empty(), "{utts:?}");
    assert!(left.iter().all(|u| u["role"] == "CALLER"));
    assert!(right.iter().all(|u| u["role"] == "AGENT"));
    let lat = right[0]["prosody"]["response_latency_ms"]
        .as_i64()
        .expect("the agent's answer has a latency");
    assert!((500..=1500).contains(&lat), "{lat}");
    assert!(utts.iter().all(|u| u["transcript"] == ""));

    // The same speech as A-law: the same utterances, within a frame or two.
    let pcm = dir.path().join("pcm.wav");
    let alaw = dir.path().join("alaw.wav");
    write_wav(&pcm, 16_000, &a);
    let st = Command::new("sox")
        .arg("-D") // no random dither: the same bytes every run
        .arg(&pcm)
        .args(["-r", "8000", "-e", "a-law", "-b", "8"])
        .arg(&alaw)
        .status()
        .unwrap();
    assert!(st.success());
    let bounds = |path: &std::path::Path| -> Vec<(i64, i64)> {
        let (ok, out, err) = run(callmood().args(["analyze", "--no-transcript"]).arg(path));
        assert!(ok, "{err}");
        out.lines()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .unwrap()
                    .get("utterance")
                    .cloned()
            })
            .map(|u| {
                (
                    u["start_ms"].as_i64().unwrap(),
                    u["end_ms"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let (p, q) = (bounds(&pcm), bounds(&alaw));
    assert_eq!(p.len(), q.len(), "{p:?} vs {q:?}");
    for ((s0, e0), (s1, e1)) in p.iter().zip(&q) {
        assert!(
            (s0 - s1).abs() <= 50 && (e0 - e1).abs() <= 50,
            "{p:?} vs {q:?}"
        );
    }
}

#[test]
fn analyze_is_reproducible() {
    // QA replays must give the same result twice: recordings are handed to the
    // recogniser in window-sized packs, independent of worker timing.
    let dir = tempfile::tempdir().unwrap();
    let mut call = Vec::new();
    for id in ["0880", "0930", "0890"] {
        call.extend(load_wav(&librivox(id).0));
        call.extend(std::iter::repeat_n(0.0, 12_000));
    }
    let wav = dir.path().join("replay.wav");
    write_wav(&wav, 16_000, &call);
    let once = || {
        let (ok, out, err) = run(callmood()
            .arg("analyze")
            .arg(&wav)
            .env("CALLMOOD_MODEL", model_path()));
        assert!(ok, "{err}");
        out
    };
    let (a, b) = (once(), once());
    assert!(a.lines().filter(|l| l.contains("\"utterance\"")).count() >= 3);
    assert_eq!(a, b);
}

/// `callmood train` on `dir` (which needs no corpus: these fail on the settings first).
fn train_args(dir: &std::path::Path, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["train".into(), "--corpus".into()];
    args.push(dir.into());
    args.push("--out".into());
    args.push(dir.join("model.json").into());
    args.extend(extra.iter().map(|a| a.into()));
    args
}

/// A small labelled corpus made from the fixtures: two "speakers", labels cycling through
/// the classes, plus a surprise row, an unknown label and a missing file.
fn tiny_corpus(dir: &std::path::Path) {
    let mut rows = vec!["file,speaker,gender,emotion,intensity".to_string()];
    let ids = ["0880", "0890", "0930"];
    let labels = ["neutral", "happy", "angry", "sad", "fearful", "calm"];
    for k in 0..12 {
        let (path, _) = librivox(ids[k % 3]);
        let clip = load_wav(&path);
        // A 1.5 s piece, a different one per row.
        let start = (k / 3) * 4000;
        let piece = &clip[start..start + 24_000];
        let name = format!("clip{k:02}.wav");
        write_wav(&dir.join(&name), 16_000, piece);
        let speaker = if k < 6 { "s1,F" } else { "s2,M" };
        rows.push(format!("{name},{speaker},{},normal", labels[k % 6]));
    }
    rows.push("clip00.wav,s1,F,surprised,strong".into());
    rows.push("clip01.wav,s1,F,bored,normal".into());
    rows.push("missing.flac,s2,M,angry,normal".into());
    std::fs::write(dir.join("manifest.csv"), rows.join("\n") + "\n").unwrap();
}

/// `callmood train` on the tiny corpus in `dir` with few folds and orders, writing
/// `dir/out`: stdout, stderr and the model (its recorded command line, which differs by
/// design, nulled). Fails the test if training fails.
fn train_tiny(
    dir: &std::path::Path,
    out: &str,
    extra: &[&std::ffi::OsStr],
) -> (String, String, serde_json::Value) {
    let (ok, stdout, stderr) = run(callmood()
        .args(["train", "--folds", "2", "--permutations", "1", "--corpus"])
        .arg(dir)
        .arg("--out")
        .arg(dir.join(out))
        .args(extra));
    assert!(ok, "{stderr}");
    let mut model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(out)).unwrap()).unwrap();
    model["provenance"]["command"] = serde_json::Value::Null;
    (stdout, stderr, model)
}

/// `train --features` on what `train --dump-features` wrote gives the same figures and the
/// same model as extracting the features again.
#[test]
fn train_on_a_feature_dump_gives_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    tiny_corpus(dir.path());
    let dump = dir.path().join("features.csv");
    let train = |out: &str, extra: [&std::ffi::OsStr; 2]| train_tiny(dir.path(), out, &extra);
    let (stdout_a, _, model_a) = train("a.json", ["--dump-features".as_ref(), dump.as_ref()]);
    let header = std::fs::read_to_string(&dump).unwrap();
    assert!(
        header.starts_with("condition,file,speaker,gender,class,utterance,encoder,f0_mean_st,"),
        "{}",
        &header[..200]
    );
    let (stdout_b, stderr_b, model_b) = train("b.json", ["--features".as_ref(), dump.as_ref()]);
    assert!(!stderr_b.contains("extracting"), "{stderr_b}");
    assert_eq!(stdout_a, stdout_b);
    assert_eq!(model_a, model_b);

    // A dump that is not one is refused with the file named.
    std::fs::write(&dump, "condition,file\n").unwrap();
    let (ok, _, stderr) = run(callmood()
        .args(["train", "--corpus"])
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("c.json"))
        .arg("--features")
        .arg(&dump));
    assert!(
        !ok && stderr.contains("features.csv") && stderr.contains("column 3"),
        "{stderr}"
    );
}

/// `train --crops` also trains on excerpts of every clip, but scores whole clips only: the
/// clip counts of the figures are those without it, the model is another.
#[test]
fn train_with_excerpts_scores_whole_clips_only() {
    let dir = tempfile::tempdir().unwrap();
    tiny_corpus(dir.path());
    let train = |out: &str, extra: &[&str]| {
        let extra: Vec<&std::ffi::OsStr> = extra.iter().map(|a| a.as_ref()).collect();
        train_tiny(dir.path(), out, &extra)
    };
    let clips = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|l| l.contains("clips "))
            .map(|l| l.rsplit("clips ").next().unwrap().to_string())
            .collect()
    };
    let (stdout_a, _, model_a) = train("a.json", &[]);
    let (stdout_b, stderr_b, model_b) = train("b.json", &["--crops", "1"]);
    assert!(stderr_b.contains("extracting voice features (telephony, excerpts 1)"));
    assert!(
        stderr_b.contains("clean, excerpts 1: ") && stderr_b.contains("clips with utterances"),
        "{stderr_b}"
    );
    assert_eq!(clips(&stdout_a), clips(&stdout_b));
    assert!(!clips(&stdout_a).is_empty(), "{stdout_a}");
    assert_ne!(model_a["softmax"], model_b["softmax"]);
    callmood::emotion::voice::VoiceModel::load(&dir.path().join("b.json")).expect("valid model");

    // Excerpts need the audio, which a feature dump does not hold.
    let (ok, _, stderr) = run(callmood()
        .args(["train", "--crops", "1", "--features", "x.csv", "--corpus"])
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("c.json")));
    assert!(!ok && stderr.contains("--crops"), "{stderr}");
}

/// `train` writes a model that `eval` (and the service) can load, and `eval --format json`
/// reports every figure the contract names, with skipped clips counted by reason.
#[test]
fn train_then_eval_on_a_tiny_corpus() {
    let dir = tempfile::tempdir().unwrap();
    tiny_corpus(dir.path());
    let model = dir.path().join("voice.json");
    let (stdout, stderr, _) = train_tiny(dir.path(), "voice.json", &[]);
    assert!(
        stderr.contains("left out 1 clips labelled surprise"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown label `bored`"), "{stderr}");
    assert!(stderr.contains("missing.flac"), "{stderr}");
    assert!(stdout.contains("clean, running baseline") && stdout.contains("telephony, cold"));
    assert!(
        stdout.contains("clean, running, over 5 orders: UAR mean"),
        "{stdout}"
    );
    assert!(
        stdout.contains("telephony, calm_first baseline"),
        "{stdout}"
    );
    callmood::emotion::voice::VoiceModel::load(&model).expect("valid model");

    let (ok, stdout, stderr) = run(callmood()
        .args(["eval", "--format", "json", "--corpus"])
        .arg(dir.path())
        .arg("--model")
        .arg(&model));
    assert!(ok, "{stderr}");
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for key in [
        "uar",
        "uar_cold",
        "uar_running",
        "uar_calm_first",
        "per_class",
        "per_gender",
        "confusion",
    ] {
        assert!(r.get(key).is_some(), "no {key} in {r}");
    }
    assert_eq!(r["uar"], r["uar_running"]);
    // The calm-first protocol scores the corpus too (as calls, like the running one).
    let calm = r["uar_calm_first"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&calm), "{r}");
    assert!(r["calm_first"]["n"].as_u64().unwrap() <= 12, "{r}");
    assert_eq!(
        r["n_scored"].as_u64().unwrap() + r["skipped"]["no_utterance"].as_u64().unwrap(),
        12
    );
    assert_eq!(r["skipped"]["excluded_label"], 1);
    assert_eq!(r["skipped"]["unknown_label"], 1);
    assert_eq!(r["skipped"]["unreadable"], 1);
    let conf = r["confusion"].as_array().unwrap();
    assert_eq!(conf.len(), 5);
    let total: u64 = conf
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, r["n_scored"].as_u64().unwrap());
    assert_eq!(r["per_gender"].as_object().unwrap().len(), 2);
    let (f, m) = (
        r["per_gender"]["F"].as_f64().unwrap(),
        r["per_gender"]["M"].as_f64().unwrap(),
    );
    assert!(
        (r["gender_gap"].as_f64().unwrap() - (f - m).abs()).abs() < 1e-6,
        "{r}"
    );
    // One speaker a gender: no speaker bootstrap to give.
    assert!(r["running"]["interval"].is_null(), "{r}");

    // A model file that does not fit is refused with the reason.
    std::fs::write(&model, "{\"format\": \"other\"}").unwrap();
    let (ok, _, stderr) = run(callmood()
        .args(["eval", "--corpus"])
        .arg(dir.path())
        .arg("--model")
        .arg(&model));
    assert!(!ok && stderr.contains("voice.json"), "{stderr}");
}

/// `calibrate` maps a line's calm speech onto the training's neutral speech: the model it
/// writes carries both statistics, loads, and is what `eval` then scores with; a model
/// without neutral statistics, an unknown `--onto` and too little calm speech are refused
/// with the reason.
#[test]
fn calibrate_writes_a_model_mapped_to_the_line() {
    let dir = tempfile::tempdir().unwrap();
    tiny_corpus(dir.path());
    let (_, _, trained) = train_tiny(dir.path(), "voice.json", &[]);
    let neutral = trained["neutral"].as_array().expect("neutral statistics");
    let conditions: Vec<&str> = neutral
        .iter()
        .map(|n| n["condition"].as_str().unwrap())
        .collect();
    assert_eq!(conditions, ["clean", "telephony"]);
    // The calm line: three of the clips, as unlabelled speech of two speakers.
    let calm = dir.path().join("calm");
    std::fs::create_dir(&calm).unwrap();
    let mut rows = vec!["file,speaker,gender".to_string()];
    for k in [0, 6, 7] {
        let name = format!("clip{k:02}.wav");
        std::fs::copy(dir.path().join(&name), calm.join(&name)).unwrap();
        rows.push(format!("{name},{},F", if k < 6 { "c1" } else { "c2" }));
    }
    std::fs::write(calm.join("manifest.csv"), rows.join("\n") + "\n").unwrap();
    let model = dir.path().join("voice.json");
    let out = dir.path().join("calibrated.json");
    let calibrate = |extra: &[&str]| {
        run(callmood()
            .arg("calibrate")
            .arg("--model")
            .arg(&model)
            .arg("--calm")
            .arg(&calm)
            .arg("--out")
            .arg(&out)
            .args(extra))
    };
    // A run that succeeded, saying `said`: the model it wrote.
    let written = |(ok, stdout, stderr): (bool, String, String), said: &str| {
        assert!(ok && stdout.contains(said), "{stdout}\n{stderr}");
        let text = std::fs::read_to_string(&out).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let m = written(
        calibrate(&["--min-utterances", "2", "--telephony"]),
        "of 2 speakers (3 clips, telephony (simulated line)) onto the training's telephony neutral speech",
    );
    let c = &m["calibration"];
    assert!(c["calm"]["utterances"].as_u64().unwrap() >= 3, "{c}");
    assert_eq!(c["neutral"]["condition"], "telephony");
    assert_eq!(c["neutral"], neutral[1]);
    assert_eq!(m["softmax"], trained["softmax"]);
    callmood::emotion::voice::VoiceModel::load(&out).expect("valid calibrated model");
    let (ok, stdout, stderr) = run(callmood()
        .args(["eval", "--format", "json", "--corpus"])
        .arg(dir.path())
        .arg("--model")
        .arg(&out));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("\"uar_running\""), "{stdout}");
    // `analyze` says at start when its voice model is not calibrated to the line, and
    // only then.
    for (m, says) in [(&model, true), (&out, false)] {
        let (ok, _, stderr) = run(callmood()
            .args(["analyze", "--no-transcript", "--emotion-model"])
            .arg(m)
            .arg(dir.path().join("clip00.wav")));
        assert!(ok, "{stderr}");
        let note = format!("{} not calibrated to this line", m.display());
        assert_eq!(stderr.contains(&note), says, "{stderr}");
    }

    // Recorded calls instead of a manifest: each channel of each WAV is one speaker.
    let calls = dir.path().join("calls");
    std::fs::create_dir(&calls).unwrap();
    let (left, right) = (
        load_wav(&dir.path().join("clip00.wav")),
        load_wav(&dir.path().join("clip07.wav")),
    );
    let stereo: Vec<f32> = left
        .iter()
        .zip(&right)
        .flat_map(|(l, r)| [*l, *r])
        .collect();
    write_stereo_wav(&calls.join("call-1.wav"), &stereo);
    std::fs::write(calls.join("notes.txt"), "not audio").unwrap();
    let from_calls = |calm_calls: &std::path::Path| {
        run(callmood()
            .args(["calibrate", "--min-utterances", "2", "--model"])
            .arg(&model)
            .arg("--calm-calls")
            .arg(calm_calls)
            .arg("--out")
            .arg(&out))
    };
    let m = written(
        from_calls(&calls),
        "of 2 speakers (2 clips, as recorded) onto the training's telephony",
    );
    assert!(
        m["calibration"]["source"]
            .as_str()
            .unwrap()
            .ends_with("calls"),
        "{}",
        m["calibration"]
    );
    let no_wav = dir.path().join("no-wav");
    std::fs::create_dir(&no_wav).unwrap();
    std::fs::write(no_wav.join("call.txt"), "not a recording").unwrap();
    let (ok, _, stderr) = from_calls(&no_wav);
    assert!(!ok && stderr.contains("no recording (.wav,"), "{stderr}");
    let (ok, _, stderr) = from_calls(&calls.join("notes.txt"));
    assert!(!ok && stderr.contains("notes.txt"), "{stderr}");

    let (ok, _, stderr) = calibrate(&["--onto", "studio"]);
    assert!(
        !ok && stderr.contains("--onto studio") && stderr.contains("`telephony`"),
        "{stderr}"
    );
    let (ok, _, stderr) = calibrate(&["--min-utterances", "100000"]);
    assert!(
        !ok && stderr.contains("calm speech found in 3 clips"),
        "{stderr}"
    );
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&model).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("neutral");
    std::fs::write(&model, serde_json::to_string(&old).unwrap()).unwrap();
    let (ok, _, stderr) = calibrate(&[]);
    assert!(
        !ok && stderr.contains("no neutral statistics") && stderr.contains("voice.json"),
        "{stderr}"
    );
}

/// Transcripts are customer data: even at the most verbose log level, no
/// transcript text reaches the log (stderr); the events carry it.
#[test]
fn transcripts_never_reach_the_log() {
    let (clip, _) = librivox("0880");
    let (ok, stdout, stderr) = run(callmood()
        .arg("analyze")
        .arg(&clip)
        .env("RUST_LOG", "trace")
        .current_dir(repo()));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("young man"), "{stdout}");
    for word in ["young", "man", "was not"] {
        assert!(!stderr.contains(word), "log has {word:?}: {stderr}");
    }
}

/// `score wer` and `score uar` (the metrics tools/ scripts call) print one JSON object.
#[test]
fn score_prints_the_crate_metrics_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let (r, h, p) = (
        dir.path().join("r"),
        dir.path().join("h"),
        dir.path().join("p.csv"),
    );
    std::fs::write(&r, "Ask not, what 10 cats\n").unwrap();
    std::fs::write(&h, "ask what ten cats\n").unwrap();
    std::fs::write(&p, "label,predicted\ncalm,neutral\nangry,sad\n").unwrap();
    let (ok, stdout, stderr) = run(callmood()
        .args(["score", "wer", "--ref"])
        .arg(&r)
        .arg("--hyp")
        .arg(&h));
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (v["total"]["errors"].as_u64(), v["total"]["words"].as_u64()),
        (Some(1), Some(5))
    );
    let (ok, stdout, stderr) = run(callmood().args(["score", "uar", "--pairs"]).arg(&p));
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["uar"].as_f64(), Some(0.5), "{v}");
}

/// `audit` scores a corpus with the shipped model and writes the page and the verdicts:
/// one speaker a gender, so the gender verdicts cannot be settled.
#[test]
fn audit_writes_a_self_contained_page_and_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    tiny_corpus(dir.path());
    let page = dir.path().join("audit.html");
    let (ok, stdout, stderr) = run(callmood()
        .args(["audit", "--format", "html", "--age", "s1=64", "--corpus"])
        .arg(dir.path())
        .arg("--model")
        .arg("models/emotion-voice.json")
        .arg("--out")
        .arg(&page));
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Running (each speaker as one call"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not settled (one speaker in a group"),
        "{stdout}"
    );
    // Only s1 has an age: one age group, nothing to compare.
    assert!(
        stdout.contains("age group: one group only (60 and over)"),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<style>"));
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "{html}"
    );
}

/// Whisper repeats the agent's question over the caller's digits when both are packed in
/// one window (`tests/fixtures/asr/repeat-dialogue.wav`): the repeated piece and the ones
/// after it are decoded again alone, so the caller's utterance is not the agent's words.
#[test]
fn a_piece_that_repeats_another_partys_words_is_decoded_again() {
    let clip = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/asr/repeat-dialogue.wav");
    let (ok, stdout, stderr) = run(callmood()
        .args(["analyze", "--no-emotion", "--no-redaction", "-v"])
        .arg(&clip)
        .env("CALLMOOD_MODEL", model_path()));
    assert!(ok, "{stderr}");
    let norm = |t: &str| -> String {
        t.to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ')
            .collect()
    };
    let mut agent = Vec::new();
    let mut caller = Vec::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(u) = v.get("utterance") {
            let t = norm(u["transcript"].as_str().unwrap_or(""));
            match u["role"].as_str() {
                Some("AGENT") => agent.push(t),
                _ => caller.push(t),
            }
        }
    }
    assert!(agent[0].contains("read me the"), "{agent:?}");
    assert!(
        caller.iter().all(|c| !agent.contains(c) || c.is_empty()),
        "a caller utterance holds the agent's words: {caller:?} / {agent:?}"
    );
    assert!(
        caller[0].chars().filter(|c| c.is_ascii_digit()).count() >= 8,
        "the caller's digits are heard: {caller:?}"
    );
    assert!(
        stderr.contains("pieces decoded again alone") && !stderr.contains("(0 pieces"),
        "{stderr}"
    );
}

/// `bench-packing --profile` packs the files into windows and times each window's parts: it
/// prints one row per window and the shares in all, which add up to the whole run.
#[test]
fn bench_packing_profiles_a_packed_window() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asr");
    let clips: Vec<_> = ["cards-005.wav", "cards-005.wav"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let (ok, stdout, stderr) = run(callmood()
        .args([
            "bench-packing",
            "--profile",
            "--rounds",
            "1",
            "--threads",
            "1",
        ])
        .args(&clips)
        .env("CALLMOOD_MODEL", model_path()));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("in 1 windows"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("1      1"))
        .unwrap_or_else(|| panic!("no window row: {stdout}"));
    let secs: Vec<f64> = row
        .split_whitespace()
        .skip(3)
        .take(4)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(secs.iter().all(|s| *s > 0.0), "{row}");
    let total = stdout.lines().last().unwrap();
    assert!(total.starts_with("in all: run"), "{total}");
    assert!(
        total.contains("mel+encoder") && total.contains("DTW"),
        "{total}"
    );
}

/// Every number is redacted by default (fail closed: a misheard cue lets the other rules
/// miss a card digit): `analyze` of spoken card names ("eight of spades, four of clubs,
/// seven of hearts") leaves `[NUMBER]` and no digit or number word, and
/// `--redact-all-numbers=false` keeps them (no cue, short: no secret to the rules alone).
#[test]
fn analyze_redacts_every_number_unless_told_otherwise() {
    let clip =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asr/cards-005.wav");
    const NUMBER_WORDS: [&str; 10] = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    let transcript = |extra: &[&str]| -> String {
        let (ok, stdout, stderr) = run(callmood()
            .args(["analyze", "--no-emotion"])
            .args(extra)
            .arg(&clip)
            .env("CALLMOOD_MODEL", model_path()));
        assert!(ok, "{stderr}");
        stdout
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.get("utterance")
                    .map(|u| u["transcript"].as_str().unwrap_or("").to_string())
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let numbers = |t: &str| -> usize {
        t.to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(w))
            .count()
    };
    let default = transcript(&[]);
    assert!(default.matches("[NUMBER]").count() >= 2, "{default}");
    assert_eq!(numbers(&default), 0, "{default}");
    let kept = transcript(&["--redact-all-numbers=false"]);
    assert!(numbers(&kept) >= 2, "{kept}");
    assert!(!kept.contains("[NUMBER]"), "{kept}");
}
