//! The HTML report in a real browser: Debian's Chromium, headless, driven by
//! Playwright from the project's .venv (both installed by scripts/setup; no
//! network at test time). tests/python/report_check.py opens the page, clicks
//! through it and reports what it saw; the checks are here.
use std::path::{Path, PathBuf};
use std::process::Command;

use callmood::emotion::voice_emotion;
use callmood::proto::{self, call_event::Event, CallEvent, Role};
use callmood::report::{html, CallDigest, ReportCall};

/// Chromium, or the one `CALLMOOD_CHROMIUM` names.
fn chromium() -> PathBuf {
    let p = std::env::var_os("CALLMOOD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup (it installs Debian's chromium)",
        p.display()
    );
    p
}

/// Runs report_check.py on a report and returns what the browser saw.
fn browse(report: &Path) -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    let has_playwright = Command::new(&python)
        .args(["-c", "import playwright"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_playwright,
        "{} with playwright is missing: run scripts/setup",
        python.display()
    );
    let out = Command::new(&python)
        .arg(root.join("tests/python/report_check.py"))
        .arg(report)
        .arg("--chromium")
        .arg(chromium())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["errors"], serde_json::json!([]), "JavaScript errors");
    assert_eq!(seen["dialogs"], serde_json::json!([]), "a dialog opened");
    assert_eq!(seen["requests"], serde_json::json!([]), "the page fetched");
    seen
}

fn ev(call: &str, e: Event) -> CallEvent {
    CallEvent {
        call_id: call.into(),
        event: Some(e),
    }
}

/// A call of alternating agent and caller utterances, 4 s apart; the caller's
/// `negative` probability (split between angry and fearful) per utterance.
fn call(
    name: &str,
    caller: &[(f32, f32)],
    texts: &[&str],
    alerts: Vec<proto::Alert>,
    interruptions: u32,
) -> ReportCall {
    let mut events = Vec::new();
    for (i, &(angry, fearful)) in caller.iter().enumerate() {
        for (k, role) in [Role::Agent, Role::Caller].into_iter().enumerate() {
            let n = 2 * i + k;
            let p = if role == Role::Caller {
                [1.0 - angry - fearful, 0.0, angry, 0.0, fearful]
            } else {
                [0.8, 0.1, 0.04, 0.03, 0.03]
            };
            events.push(ev(
                name,
                Event::Utterance(proto::Utterance {
                    utterance_id: format!("u{n:04}"),
                    channel_id: k as u32,
                    role: role as i32,
                    start_ms: 1000 + 4000 * n as u32,
                    end_ms: 3500 + 4000 * n as u32,
                    transcript: texts[n % texts.len()].to_string(),
                    emotion: Some(voice_emotion(&p)),
                    cues: vec![proto::Cue {
                        feature: "f0_mean_st".into(),
                        description: "pitch +3.0 semitones above this caller's baseline".into(),
                        weight: 0.4,
                        value: 3.0,
                    }],
                    ..Default::default()
                }),
            ));
        }
    }
    for a in &alerts {
        events.push(ev(name, Event::Alert(a.clone())));
    }
    events.push(ev(
        name,
        Event::Summary(proto::CallSummary {
            duration_ms: 4000 * 2 * caller.len() as u32 + 1000,
            alerts,
            interruptions,
            ..Default::default()
        }),
    ));
    ReportCall {
        file: format!("day/{name}.wav"),
        name: name.into(),
        result: Ok(CallDigest::from_events(&events).unwrap()),
    }
}

const EVIL: &str =
    "</script><script>alert('pwned')</script><img src=x onerror=\"alert(1)\"> & \"quoted\"";

#[test]
fn report_in_chromium_lists_calls_by_risk_and_shows_the_clicked_utterance() {
    let texts = [
        "Thank you for calling, how can I help?",
        "I was charged twice this month.",
        EVIL,
        "I want to speak to a supervisor.",
    ];
    let escalate = proto::Alert {
        kind: "escalate".into(),
        severity: 0.9,
        reason: "angry 0.85 over 3 utterances <rising>".into(),
        utterance_ids: vec!["u0005".into()],
        role: Role::Caller as i32,
        at_ms: 23_500,
    };
    // Input order is not risk order.
    let calls = vec![
        call(
            "calm",
            &[(0.05, 0.05), (0.1, 0.05)],
            &["Hello.", "Fine, thanks."],
            vec![],
            0,
        ),
        call(
            "escalated",
            &[(0.3, 0.1), (0.6, 0.1), (0.85, 0.05), (0.7, 0.1)],
            &texts,
            vec![escalate],
            3,
        ),
        ReportCall {
            file: "day/broken.wav".into(),
            name: "broken".into(),
            result: Err("not a RIFF file <b>".into()),
        },
        call(
            "anxious",
            &[(0.1, 0.5), (0.1, 0.7)],
            &["Hi.", "I'm really worried about the fee."],
            vec![],
            1,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let mut f = std::fs::File::create(&report).unwrap();
    html::write_html(&mut f, &calls).unwrap();
    drop(f);

    let seen = browse(&report);
    assert_eq!(
        seen["index"],
        serde_json::json!(["escalated", "anxious", "calm"])
    );
    assert_eq!(seen["failed"], serde_json::json!(["broken"]));
    for c in &calls {
        let Ok(d) = &c.result else { continue };
        let shown = &seen["calls"][&c.name];
        assert_eq!(shown["points"], d.utterances.len(), "{}", c.name);
        assert_eq!(shown["transcript_rows"], d.utterances.len(), "{}", c.name);
        // 60 % negative is chance (3 of 5 classes), drawn so an unsure utterance near it
        // does not read as a warning.
        assert_eq!(shown["chance_lines"], 1, "{}", c.name);
        assert_eq!(
            shown["timeline_label"],
            "Emotion over time: P(angry) + P(fearful) + P(sad); 60 % is chance (3 of 5 classes)",
            "{}",
            c.name
        );
        let clicked = shown["clicked"].as_array().unwrap();
        assert_eq!(clicked.len(), d.utterances.len());
        for click in clicked {
            let u = d
                .utterances
                .iter()
                .find(|u| u.utterance_id == click["id"])
                .unwrap();
            // The text as written: the markup in it shown, not run.
            assert_eq!(click["text"], u.transcript.as_str(), "{}", c.name);
        }
    }
    assert!(seen["calls"]["escalated"]["clicked"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["text"] == EVIL));
}

#[test]
fn report_of_a_real_analyze_run_loads_with_a_point_per_utterance() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asr");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for clip in ["librivox-0880.wav", "cards-005.wav"] {
        std::fs::copy(fixtures.join(clip), input.join(clip)).unwrap();
    }
    let out = dir.path().join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_callmood"))
        .args(["analyze", "--no-transcript", "--out"])
        .arg(&out)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let seen = browse(&out.join("report.html"));
    let index = seen["index"].as_array().unwrap();
    assert_eq!(index.len(), 2);
    for name in ["librivox-0880", "cards-005"] {
        let events = callmood::report::read_jsonl(std::io::BufReader::new(
            std::fs::File::open(out.join(format!("calls/{name}.jsonl"))).unwrap(),
        ))
        .unwrap();
        let utterances = events
            .iter()
            .filter(|e| matches!(e.event, Some(Event::Utterance(_))))
            .count();
        assert!(utterances > 0, "{name}");
        assert_eq!(seen["calls"][name]["points"], utterances, "{name}");
        for click in seen["calls"][name]["clicked"].as_array().unwrap() {
            // Analysed without words: the panel says so.
            assert!(
                click["text"].as_str().unwrap().starts_with("No transcript"),
                "{click}"
            );
        }
    }
}
