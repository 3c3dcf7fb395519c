//! `callmood loadtest --duration`: the soak, against the real `callmood serve` process.
//! Two slots run short calls back to back for 20 s; the report has an interval per 5 s,
//! each with the server's resident memory (read from /proc by its pid), and the slope.
mod common;
mod ops;

use std::process::Command;

use common::*;
use ops::*;

#[test]
fn soak_runs_calls_back_to_back_and_reports_memory_per_interval() {
    let server = Server::start(false, &[]);
    // One 3 s sentence with silence either side (the endpointer closes the utterance):
    // about 4.5 s of telephone audio. No dither (`-D`): with sox's random dither the
    // quietest 20 ms, where the second call starts, fell in the trailing pad on some runs,
    // and that call's utterance was then closed by the end of the call, not the endpointer.
    let dir = tempfile::tempdir().unwrap();
    let call = dir.path().join("call.wav");
    let (clip, _) = librivox("0880");
    let st = Command::new("sox")
        .arg("-D")
        .arg(&clip)
        .args(["-r", "8000", "-e", "u-law", "-b", "8", "-c", "1"])
        .arg(&call)
        .args(["pad", "0.3", "1.2"])
        .status()
        .expect("sox runs");
    assert!(st.success());
    let out = Command::new(env!("CARGO_BIN_EXE_callmood"))
        .args([
            "loadtest",
            "--calls",
            "2",
            "--no-transcript",
            "--format",
            "json",
        ])
        .args(["--duration", "20s", "--report-every", "5s"])
        .args(["--server-pid", &server.proc.child.id().to_string()])
        .args(["--server", &format!("http://{}", server.grpc)])
        .arg(&call)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("soak of 20 s, 2 calls at once"), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["calls_at_once"], 2, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    // Back to back: each slot played its 4.5 s call about four times in 20 s.
    let completed = r["completed"].as_u64().unwrap();
    assert!(completed >= 6, "{r}");
    assert!(r["utterances"].as_u64().unwrap() >= completed, "{r}");
    let intervals = r["intervals"].as_array().unwrap();
    // Four of 5 s, and the calls in flight at 20 s in a short last one.
    assert!((4..=5).contains(&intervals.len()), "{r}");
    let mut start = 0.0;
    for i in intervals {
        assert_eq!(i["start_s"].as_f64().unwrap(), start, "{r}");
        start = i["end_s"].as_f64().unwrap();
        assert!(i["rss_mib"].as_f64().unwrap() > 10.0, "{r}");
    }
    assert!(start >= 20.0, "{r}");
    // Calls ended all along, not only at the start or the end.
    let busy = intervals
        .iter()
        .filter(|i| i["completed"].as_u64().unwrap() > 0)
        .count();
    assert!(busy >= 3, "{r}");
    for i in intervals
        .iter()
        .filter(|i| i["utterances"].as_u64() > Some(0))
    {
        let p = &i["prosody"];
        assert!(p["p50_ms"].as_f64() <= p["p95_ms"].as_f64(), "{r}");
        assert!(p["p50_ms"].as_f64().unwrap() >= 400.0, "{r}");
    }
    assert!(r["rss_start_mib"].as_f64().unwrap() > 10.0, "{r}");
    assert!(r["rss_slope_mib_per_h"].as_f64().is_some(), "{r}");
    assert!(
        r["rss_slope_second_half_mib_per_h"].as_f64().is_some(),
        "{r}"
    );
}

/// Without `--duration` the soak's flags are refused, not silently ignored.
#[test]
fn soak_flags_need_a_duration() {
    let out = Command::new(env!("CARGO_BIN_EXE_callmood"))
        .args(["loadtest", "--server-pid", "1", "x.wav"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--duration"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `serve` runs itself again with glibc's malloc arenas capped (`server.malloc_arena_max`,
/// 2 by default): the same process (pid) with `MALLOC_ARENA_MAX` in its environment; 0
/// leaves glibc's default (no variable), and a variable already set is kept as it is.
#[test]
fn serve_caps_glibc_malloc_arenas() {
    let arenas = |server: &Server| -> Option<String> {
        let env = std::fs::read(format!("/proc/{}/environ", server.proc.child.id())).unwrap();
        env.split(|b| *b == 0)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| v.strip_prefix("MALLOC_ARENA_MAX=").map(str::to_string))
    };
    let outer = std::env::var("MALLOC_ARENA_MAX").ok();
    let server = Server::start(false, &[]);
    assert_eq!(arenas(&server), outer.clone().or(Some("2".into())));
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("callmood.toml");
    std::fs::write(&file, "[server]\nmalloc_arena_max = 0\n").unwrap();
    let server = Server::start(false, &["--config", file.to_str().unwrap()]);
    assert_eq!(arenas(&server), outer);
}
