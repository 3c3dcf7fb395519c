//! The contact-centre layer end to end: real emotional speech (RAVDESS clips,
//! tests/fixtures/ravdess) stitched into a stereo call goes through the whole
//! service path, and the caller who turns angry raises an `escalate` alert
//! that the summary repeats, with its profile and peaks.
mod common;

use callmood::proto::{self, call_event::Event, CallEvent};
use common::*;

/// A RAVDESS fixture clip as 16 kHz samples.
fn ravdess(name: &str) -> Vec<f32> {
    let path = repo()
        .join("tests/fixtures/ravdess")
        .join(format!("{name}.flac"));
    let audio = callmood::train::corpus::load_audio(&path).expect("fixture clip");
    callmood::train::corpus::to_16k(&audio).expect("resampled")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_turning_angry_raises_one_escalate_alert() {
    // Caller (left): calm twice, then four strongly angry lines. Agent
    // (right): calm answers in the pauses.
    let caller_clips = [
        "03-01-01-01-01-01-03",
        "03-01-01-01-02-01-03",
        "03-01-05-02-01-01-03",
        "03-01-05-02-01-02-03",
        "03-01-05-02-02-01-03",
        "03-01-05-02-02-02-03",
    ];
    let agent_clips = ["03-01-01-01-01-01-01", "03-01-01-01-02-01-01"];
    let mut left = Vec::new();
    let mut right = Vec::new();
    for (i, c) in caller_clips.iter().enumerate() {
        let x = ravdess(c);
        left.extend_from_slice(&x);
        right.extend(std::iter::repeat_n(0.0, x.len()));
        if let Some(a) = agent_clips.get(i) {
            let y = ravdess(a);
            right.extend_from_slice(&y);
            left.extend(std::iter::repeat_n(0.0, y.len()));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("escalating.wav");
    let interleaved: Vec<f32> = left
        .iter()
        .zip(&right)
        .flat_map(|(l, r)| [*l, *r])
        .collect();
    write_stereo_wav(&path, &interleaved);

    let (addr, _stop) = start_server(4, true).await;
    let req = proto::AnalyzeRecordingRequest {
        call_id: "escalating".into(),
        audio: Some(proto::analyze_recording_request::Audio::Wav(
            std::fs::read(&path).unwrap(),
        )),
        ..Default::default()
    };
    let events: Vec<CallEvent> = collect(
        client(addr)
            .await
            .analyze_recording(req)
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();
    let us = utterances(&events);
    for u in &us {
        let e = u.emotion.as_ref().unwrap();
        eprintln!(
            "{} {:?} {}..{} angry {:.2} top {}",
            u.utterance_id, u.role, u.start_ms, u.end_ms, e.angry, e.top_label
        );
    }
    let alerts: Vec<&proto::Alert> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Alert(a)) => Some(a),
            _ => None,
        })
        .collect();
    eprintln!("{alerts:#?}");
    let escalate: Vec<_> = alerts.iter().filter(|a| a.kind == "escalate").collect();
    assert_eq!(
        escalate.len(),
        1,
        "one escalate alert, no storm: {alerts:?}"
    );
    let a = escalate[0];
    assert_eq!(a.role, proto::Role::Caller as i32);
    assert!(!a.reason.is_empty() && a.severity > 0.0 && a.severity <= 1.0);
    // It points at angry caller utterances, after the calm start.
    let calm_end = us
        .iter()
        .filter(|u| u.role == proto::Role::Caller as i32)
        .nth(1)
        .unwrap()
        .end_ms;
    for id in &a.utterance_ids {
        let u = us.iter().find(|u| &u.utterance_id == id).expect("known id");
        assert_eq!(u.role, proto::Role::Caller as i32);
        assert!(u.start_ms > calm_end, "{id} is one of the angry lines");
    }
    // The alert comes right after the utterance that raised it.
    let pos_alert = events
        .iter()
        .position(|e| matches!(&e.event, Some(Event::Alert(x)) if x.kind == "escalate"))
        .unwrap();
    let last_id = a.utterance_ids.last().unwrap();
    let pos_utt = events
        .iter()
        .position(|e| matches!(&e.event, Some(Event::Utterance(u)) if &u.utterance_id == last_id))
        .unwrap();
    assert!(pos_alert > pos_utt);
    // No anxious-caller alert for anger; the agent raises nothing.
    assert!(alerts.iter().all(|a| a.role != proto::Role::Agent as i32));

    let Some(Event::Summary(s)) = &events.last().unwrap().event else {
        panic!("summary last")
    };
    assert_eq!(s.alerts.len(), alerts.len());
    assert_eq!(s.emotion_profile.len(), us.len());
    assert!(
        !s.peaks.is_empty() && s.peaks[0].label == "angry",
        "{:?}",
        s.peaks
    );
    let caller = s
        .roles
        .iter()
        .find(|r| r.role == proto::Role::Caller as i32)
        .unwrap();
    let agent = s
        .roles
        .iter()
        .find(|r| r.role == proto::Role::Agent as i32)
        .unwrap();
    let (ca, aa) = (
        caller.emotion_mean.as_ref().unwrap().angry,
        agent.emotion_mean.as_ref().unwrap().angry,
    );
    assert!(ca > aa + 0.2, "caller angrier than agent: {ca} vs {aa}");
    assert!(agent.mean_response_latency_ms.is_some());
}
