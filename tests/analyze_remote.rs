//! `callmood analyze --server`: a QA batch sent to a real `callmood serve` process (over
//! TLS, with a token) through `AnalyzeRecording`, `--jobs` at a time. The same directory
//! analysed here and there gives the same per-call files and the same table; a broken
//! file fails alone; a second run resumes; a client without the token is refused.
mod common;
mod ops;

use std::path::Path;

use common::*;
use ops::Server;

/// The CSV's rows, without the `error` column (its wording says where the error
/// came from: the server's refusal or the local decoder).
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let head = r.headers().unwrap().clone();
    let error = head.iter().position(|h| h == "error").unwrap();
    r.records()
        .map(|x| {
            let x = x.unwrap();
            x.iter()
                .enumerate()
                .filter(|(i, _)| *i != error)
                .map(|(_, v)| v.to_string())
                .collect()
        })
        .collect()
}

/// The names and contents of a results directory's per-call files.
fn calls(out: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(out.join("calls"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_batch_analysed_on_a_server_gives_what_a_local_run_gives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A directory as a QA team has it: telephone μ-law WAV, a stereo FLAC, an Opus file,
    // and a file that is no recording.
    let input = d.join("day");
    std::fs::create_dir_all(input.join("queue")).unwrap();
    to_mulaw_8k(&librivox("0880").0, &input.join("a.wav"));
    let stereo = d.join("stereo.wav");
    let st = std::process::Command::new("sox")
        .arg("-M")
        .arg(librivox("0890").0)
        .arg(librivox("0930").0)
        .args(["-r", "8000"])
        .arg(&stereo)
        .status()
        .expect("sox runs");
    assert!(st.success());
    let ffmpeg = |to: &Path, codec: &[&str]| {
        let st = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
            .arg(&stereo)
            .args(codec)
            .arg(to)
            .status()
            .expect("ffmpeg runs");
        assert!(st.success());
    };
    ffmpeg(&input.join("queue/b.flac"), &["-c:a", "flac"]);
    ffmpeg(&input.join("c.opus"), &["-c:a", "libopus", "-b:a", "32k"]);
    std::fs::write(input.join("broken.wav"), "this is not audio").unwrap();

    // The server: TLS with a self-signed certificate, and a token.
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem, tokens) = (d.join("cert.pem"), d.join("key.pem"), d.join("tokens"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(&tokens, "qa-batch-token-0123456789 qa\n").unwrap();
    let server = Server::start(
        false,
        &[
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
            "--auth-tokens",
            tokens.to_str().unwrap(),
        ],
    );
    let url = format!("https://{}", server.grpc);

    let analyze = |out: &Path, remote: bool, token: Option<&str>| {
        let mut c = callmood();
        c.args(["analyze", "--no-transcript", "--verbose", "--jobs", "2"]);
        if remote {
            c.args(["--server", &url, "--tls-ca"]).arg(&cert_pem);
        }
        match token {
            Some(t) => c.env("CALLMOOD_TOKEN", t),
            None => c.env_remove("CALLMOOD_TOKEN"),
        };
        c.arg("--out").arg(out).arg(&input);
        run(&mut c)
    };

    let (remote, local) = (d.join("remote"), d.join("local"));
    let (ok, stdout, stderr) = analyze(&remote, true, Some("qa-batch-token-0123456789"));
    assert!(!ok, "the broken file makes the exit status non-zero");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("broken.wav: server refused the call"),
        "{stderr}"
    );
    assert!(stderr.contains("audio: not a RIFF file"), "{stderr}");
    assert!(
        stderr.contains("4 files: 3 analysed, 0 already done, 1 failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let (ok, _, local_err) = analyze(&local, false, None);
    assert!(!ok);
    assert!(
        local_err.contains("broken.wav: not a RIFF file"),
        "{local_err}"
    );

    // The same calls, event for event, and the same table.
    let (r, l) = (calls(&remote), calls(&local));
    let names: Vec<&str> = r.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a.jsonl", "c.jsonl", "queue__b.jsonl"]);
    assert_eq!(r, l, "remote and local per-call files differ");
    for (name, events) in &r {
        assert!(callmood::replay::is_finished(
            &remote.join("calls").join(name)
        ));
        assert!(events.contains("\"utterance\""), "{name}: no utterance");
    }
    assert!(
        r[2].1.contains("AGENT"),
        "the FLAC's right channel is the agent"
    );
    assert_eq!(
        csv_rows(&remote.join("calls.csv")),
        csv_rows(&local.join("calls.csv"))
    );
    let html = std::fs::read_to_string(remote.join("report.html")).unwrap();
    assert!(html.contains("data-name=\"queue__b\""));
    assert!(html.contains("data-name=\"broken\" data-status=\"failed\""));

    // Resume: one call's file gone, only it is redone, the same as before.
    let a = remote.join("calls/a.jsonl");
    let first_a = std::fs::read_to_string(&a).unwrap();
    std::fs::remove_file(&a).unwrap();
    let (_, _, stderr) = analyze(&remote, true, Some("qa-batch-token-0123456789"));
    assert!(
        stderr.contains("4 files: 1 analysed, 2 already done, 1 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("b.flac: already analysed"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), first_a);

    // With transcripts, to stdout: the server's recogniser hears what the local one does.
    let one = |remote: bool| {
        let mut c = callmood();
        c.arg("analyze");
        if remote {
            c.args(["--server", &url, "--tls-ca"]).arg(&cert_pem);
            c.env("CALLMOOD_TOKEN", "qa-batch-token-0123456789");
        }
        run(c.arg(input.join("a.wav")))
    };
    let ((ok_r, out_r, err_r), (ok_l, out_l, err_l)) = (one(true), one(false));
    assert!(ok_r && ok_l, "{err_r}\n{err_l}");
    assert_eq!(out_r, out_l, "remote and local events differ");
    let events = callmood::report::read_jsonl(out_r.as_bytes()).unwrap();
    let heard = wer(&librivox("0880").1, &transcript(&events));
    assert!(heard < 0.3, "WER {heard}: {}", transcript(&events));

    // Without the token every file is refused, and says why.
    let (ok, _, stderr) = analyze(&d.join("no-token"), true, None);
    assert!(!ok);
    assert!(stderr.contains("4 files: 0 analysed"), "{stderr}");
    assert!(
        stderr.contains("a.wav: server refused the call"),
        "{stderr}"
    );
    assert!(stderr.contains("Bearer"), "{stderr}");
}

#[test]
fn a_server_that_is_not_there_fails_before_any_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(librivox("0880").0, dir.path().join("a.wav")).unwrap();
    let out = dir.path().join("out");
    let (ok, _, stderr) = run(callmood()
        .args(["analyze", "--server", "http://127.0.0.1:9", "--out"])
        .arg(&out)
        .arg(dir.path().join("a.wav")));
    assert!(!ok);
    assert!(
        stderr.contains("cannot connect to http://127.0.0.1:9"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written");
}
