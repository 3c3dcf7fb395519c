//! Bulk `callmood analyze` as a QA team runs it: a directory of recordings,
//! results in `--out`, a second run that resumes, a broken file among good ones,
//! and parallel calls on one recogniser pool.
mod common;

use std::path::Path;

use common::*;

/// The CSV's rows as (file, status) pairs, header checked.
fn csv_rows(path: &Path) -> Vec<(String, String)> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let head = r.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (file, status) = (col("file"), col("status"));
    assert!(head.iter().any(|h| h == "risk"));
    r.records()
        .map(|x| {
            let x = x.unwrap();
            (x[file].to_string(), x[status].to_string())
        })
        .collect()
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn second_run_redoes_only_what_is_missing_and_a_broken_file_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("day");
    std::fs::create_dir_all(input.join("queue")).unwrap();
    std::fs::copy(librivox("0880").0, input.join("a.wav")).unwrap();
    std::fs::copy(librivox("0890").0, input.join("queue/b.wav")).unwrap();
    std::fs::write(input.join("broken.wav"), "this is not audio").unwrap();
    let out = dir.path().join("out");
    let analyze = || {
        let mut c = callmood();
        c.args([
            "analyze",
            "--no-transcript",
            "--verbose",
            "--jobs",
            "2",
            "--out",
        ])
        .arg(&out)
        .arg(&input);
        run(&mut c)
    };
    let (a, b) = (out.join("calls/a.jsonl"), out.join("calls/queue__b.jsonl"));

    let (ok, stdout, stderr) = analyze();
    assert!(!ok, "a broken file makes the exit status non-zero");
    assert!(
        stdout.is_empty(),
        "--out writes nothing to stdout: {stdout}"
    );
    assert!(stderr.contains("broken.wav: not a RIFF file"), "{stderr}");
    assert!(stderr.contains("1 of 3 files failed"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for f in [&a, &b] {
        assert!(callmood::replay::is_finished(f), "{}", f.display());
    }
    let first_a = std::fs::read_to_string(&a).unwrap();
    let rows = csv_rows(&out.join("calls.csv"));
    assert_eq!(rows.len(), 3, "{rows:?}");
    let status = |rows: &[(String, String)], file: &str| {
        rows.iter()
            .find(|(f, _)| f.ends_with(file))
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    assert_eq!(status(&rows, "broken.wav"), "failed");
    assert_eq!(status(&rows, "a.wav"), "ok");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("data-name=\"broken\" data-status=\"failed\""));
    assert!(html.contains("data-name=\"queue__b\""));

    // Resume: one call's results gone, the other's kept.
    std::fs::remove_file(&a).unwrap();
    let b_time = mtime(&b);
    let (ok, _, stderr) = analyze();
    assert!(!ok);
    assert!(stderr.contains("b.wav: already analysed"), "{stderr}");
    assert!(stderr.contains("a.wav: analysed"), "{stderr}");
    assert!(stderr.contains("broken.wav: not a RIFF file"), "{stderr}");
    assert!(
        stderr.contains("3 files: 1 analysed, 1 already done, 1 failed"),
        "{stderr}"
    );
    assert_eq!(mtime(&b), b_time, "a finished call is not redone");
    // Redone the same way.
    assert_eq!(std::fs::read_to_string(&a).unwrap(), first_a);
    assert_eq!(csv_rows(&out.join("calls.csv")).len(), 3);

    // A file cut short (as by a killed writer) is not finished: it is redone.
    let first_line = first_a.lines().next().unwrap();
    std::fs::write(&a, format!("{first_line}\n")).unwrap();
    let (_, _, stderr) = analyze();
    assert!(stderr.contains("a.wav: analysed"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&a).unwrap(), first_a);
    // No temporary files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(out.join("calls"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".jsonl"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn parallel_calls_on_one_recogniser_pool_print_what_one_at_a_time_prints() {
    let dir = tempfile::tempdir().unwrap();
    for id in ["0880", "0890"] {
        to_mulaw_8k(&librivox(id).0, &dir.path().join(format!("call-{id}.wav")));
    }
    let analyze = |jobs: &str| {
        let (ok, stdout, stderr) = run(callmood()
            .args(["analyze", "--jobs", jobs])
            .arg(dir.path())
            .env("CALLMOOD_MODEL", model_path()));
        assert!(ok, "{stderr}");
        stdout
    };
    let parallel = analyze("2");
    let calls: Vec<String> = parallel
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["call_id"].to_string())
        .collect();
    // Each call's lines together, the calls in file order.
    let mut order = calls.clone();
    order.dedup();
    assert_eq!(order, ["\"call-0880\"", "\"call-0890\""]);
    assert!(parallel.contains("\"transcript\""));
    assert_eq!(parallel, analyze("1"));
}
