//! A Python client generated from the proto by grpcio-tools (installed into
//! .venv by scripts/setup) streams a clip and receives the same events as a
//! Rust client: the proto serves non-Rust callers.
mod common;

use std::path::Path;
use std::process::Command;

use callmood::proto::call_analyzer_client::CallAnalyzerClient;
use callmood::proto::{self, stream_call_request::Request, StreamCallRequest};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_gets_the_same_events_as_a_rust_client() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup",
        python.display()
    );
    let (addr, _stop) = start_server(4, true).await;
    let (clip, reference) = librivox("0890");

    let py = tokio::process::Command::from(Command::new(&python))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py"))
        .args(["--server", &addr.to_string(), "--wav"])
        .arg(&clip)
        .output()
        .await
        .unwrap();
    assert!(
        py.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let py_events: Vec<serde_json::Value> = String::from_utf8(py.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    // The same audio from Rust, serialised with the same JSON mapping.
    let (rate, samples) = (callmood::SAMPLE_RATE, load_wav(&clip));
    let mut msgs = vec![StreamCallRequest {
        request: Some(Request::Config(proto::CallConfig {
            call_id: "python-client".into(),
            channels: vec![proto::ChannelConfig {
                channel_id: 1,
                role: proto::Role::Caller as i32,
                encoding: proto::Encoding::Linear16 as i32,
                sample_rate_hz: rate,
                ..Default::default()
            }],
            language: "en".into(),
            options: None,
        })),
    }];
    for ch in samples.chunks(rate as usize / 50) {
        let data = ch
            .iter()
            .flat_map(|s| ((s * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
            .collect();
        msgs.push(StreamCallRequest {
            request: Some(Request::Audio(proto::AudioChunk {
                channel_id: 1,
                data,
            })),
        });
    }
    let mut c = CallAnalyzerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut s = c
        .stream_call(tokio_stream::iter(msgs))
        .await
        .unwrap()
        .into_inner();
    let mut rust_events = Vec::new();
    while let Some(ev) = s.message().await.unwrap() {
        rust_events.push(serde_json::to_value(&ev).unwrap());
    }

    // Same kinds of event in the same order, same utterance boundaries.
    let kind = |v: &serde_json::Value| {
        ["utterance_prosody", "utterance", "summary", "alert"]
            .into_iter()
            .find(|k| v.get(*k).is_some())
            .unwrap_or("none")
    };
    let bounds = |evs: &[serde_json::Value]| -> Vec<(String, String, i64, i64)> {
        evs.iter()
            .filter_map(|v| {
                let k = kind(v);
                let u = v.get(k)?;
                Some((
                    k.to_string(),
                    u.get("utterance_id")?.as_str()?.to_string(),
                    u.get("start_ms")?.as_i64()?,
                    u.get("end_ms")?.as_i64()?,
                ))
            })
            .collect()
    };
    assert_eq!(py_events.len(), rust_events.len());
    assert_eq!(bounds(&py_events), bounds(&rust_events));
    assert_eq!(
        py_events.iter().map(kind).collect::<Vec<_>>(),
        rust_events.iter().map(kind).collect::<Vec<_>>()
    );
    assert_eq!(kind(py_events.last().unwrap()), "summary");
    let text = |evs: &[serde_json::Value]| {
        evs.iter()
            .filter_map(|v| {
                v.get("utterance")?
                    .get("transcript")?
                    .as_str()
                    .map(str::to_string)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (py_text, rust_text) = (text(&py_events), text(&rust_events));
    assert!(
        wer(&reference, &py_text) < 0.15,
        "python transcript: {py_text}"
    );
    assert!(
        wer(&reference, &rust_text) < 0.15,
        "rust transcript: {rust_text}"
    );
}
