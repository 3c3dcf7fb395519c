//! End to end over a real socket: the real server on a loopback port, the real
//! Whisper model, real speech sent as 8 kHz μ-law telephone audio.
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callmood::proto::{
    self, call_event::Event, stream_call_request::Request, CallEvent, StreamCallRequest,
};
use common::*;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn config(
    call_id: &str,
    channels: &[(u32, proto::Role, proto::Encoding, u32)],
) -> StreamCallRequest {
    StreamCallRequest {
        request: Some(Request::Config(proto::CallConfig {
            call_id: call_id.into(),
            channels: channels
                .iter()
                .map(|(id, role, enc, rate)| proto::ChannelConfig {
                    channel_id: *id,
                    role: *role as i32,
                    encoding: *enc as i32,
                    sample_rate_hz: *rate,
                    ..Default::default()
                })
                .collect(),
            language: "en".into(),
            options: None,
        })),
    }
}

fn audio(channel_id: u32, data: Vec<u8>) -> StreamCallRequest {
    StreamCallRequest {
        request: Some(Request::Audio(proto::AudioChunk { channel_id, data })),
    }
}

fn pcm16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mulaw_call_is_transcribed_with_events_in_order() {
    let (addr, _stop) = start_server(8, true).await;
    // A "call": three real utterances with 1.2 s of silence between them.
    let mut call = Vec::new();
    let mut reference = Vec::new();
    let mut spans = Vec::new();
    for id in ["0890", "0880", "0930"] {
        let (path, text) = librivox(id);
        let s = load_wav(&path);
        let start = call.len() as u32 * 1000 / 16_000;
        call.extend_from_slice(&s);
        spans.push((start, call.len() as u32 * 1000 / 16_000));
        call.extend(std::iter::repeat_n(0.0, 19_200));
        reference.push(text);
    }
    let dir = tempfile::tempdir().unwrap();
    let wav16 = dir.path().join("call16.wav");
    let wav8 = dir.path().join("call8.wav");
    write_wav(&wav16, 16_000, &call);
    to_mulaw_8k(&wav16, &wav8);
    let ulaw = callmood::core::codec::wav::read_wav_file(&wav8).unwrap();
    assert_eq!(ulaw.sample_rate, 8000);
    let bytes: Vec<u8> = ulaw.samples[0]
        .iter()
        .map(|s| {
            callmood::core::codec::g711::ulaw_encode(
                (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16
            )
        })
        .collect();

    let (tx, rx) = tokio::sync::mpsc::channel(32);
    tx.send(config(
        "call-e2e",
        &[(7, proto::Role::Caller, proto::Encoding::Mulaw, 8000)],
    ))
    .await
    .unwrap();
    let all_sent = Arc::new(AtomicBool::new(false));
    let all_sent2 = all_sent.clone();
    tokio::spawn(async move {
        // 20 ms packets at 4x real time.
        for chunk in bytes.chunks(160) {
            tx.send(audio(7, chunk.to_vec())).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        all_sent2.store(true, Ordering::SeqCst);
    });
    let mut stream = client(addr)
        .await
        .stream_call(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    let mut first_prosody_before_end = None;
    while let Some(ev) = stream.message().await.unwrap() {
        if matches!(ev.event, Some(Event::UtteranceProsody(_)))
            && first_prosody_before_end.is_none()
        {
            first_prosody_before_end = Some(!all_sent.load(Ordering::SeqCst));
        }
        events.push(ev);
    }
    assert!(events.iter().all(|e| e.call_id == "call-e2e"));
    // The fast path is live: the first prosody event came while audio was still flowing.
    assert_eq!(
        first_prosody_before_end,
        Some(true),
        "prosody events must not wait for the call to end"
    );

    // Order: each utterance's prosody event before its full result; the summary last.
    let pos = |id: &str, prosody: bool| {
        events.iter().position(|e| match &e.event {
            Some(Event::UtteranceProsody(p)) => prosody && p.utterance_id == id,
            Some(Event::Utterance(u)) => !prosody && u.utterance_id == id,
            _ => false,
        })
    };
    let us = utterances(&events);
    assert!(
        us.len() >= 3,
        "expected at least one utterance per clip, got {}",
        us.len()
    );
    for u in &us {
        let p = pos(&u.utterance_id, true).expect("prosody event for every utterance");
        assert!(p < pos(&u.utterance_id, false).unwrap());
        assert_eq!(u.role, proto::Role::Caller as i32);
        assert_eq!(u.channel_id, 7);
        // Timing: each utterance lies within a clip (150 ms of slack for the endpointer).
        assert!(
            spans
                .iter()
                .any(|(s, e)| u.start_ms + 150 >= *s && u.end_ms <= e + 150),
            "utterance {}..{} ms outside the speech {spans:?}",
            u.start_ms,
            u.end_ms
        );
        for w in &u.words {
            assert!(
                w.start_ms + 300 >= u.start_ms && w.end_ms <= u.end_ms + 400,
                "word {w:?} outside {u:?}"
            );
            assert!((0.0..=1.0).contains(&w.confidence));
        }
        // Emotion: the voice estimate first, then the fused one with its cues.
        let Some(Event::UtteranceProsody(fast)) =
            &events[pos(&u.utterance_id, true).unwrap()].event
        else {
            unreachable!()
        };
        for e in [fast.emotion.as_ref(), u.emotion.as_ref()] {
            let e = e.expect("emotion scored");
            let sum = e.neutral + e.happy + e.angry + e.sad + e.fearful;
            assert!((sum - 1.0).abs() < 1e-4, "{e:?}");
            assert!((-1.0..=1.0).contains(&e.valence) && (-1.0..=1.0).contains(&e.arousal));
            assert!(e.top_confidence >= 0.2 && !e.top_label.is_empty());
        }
        // Cues are the features that pushed the label: a calm voice at its baseline, read
        // as neutral, may have none; any other label was pushed by something.
        let e = u.emotion.as_ref().unwrap();
        assert!(
            (e.top_label == "neutral" || !u.cues.is_empty())
                && u.cues.iter().all(|c| {
                    !c.description.is_empty()
                        && c.weight >= callmood::emotion::fusion::MIN_CUE_WEIGHT
                }),
            "{e:?} {:?}",
            u.cues
        );
        let p = u.prosody.as_ref().unwrap();
        assert!(p.f0_mean_hz > 60.0 && p.f0_mean_hz < 300.0, "{p:?}");
        assert!(
            p.voiced_ratio > 0.2 && p.speaking_rate_sps > 1.0 && p.speaking_rate_sps < 10.0,
            "{p:?}"
        );
    }
    // Each clip starts an utterance near its start.
    for (s, _) in &spans {
        assert!(
            us.iter().any(|u| u.start_ms.abs_diff(*s) < 400),
            "no utterance starts near {s} ms"
        );
    }
    let Some(Event::Summary(summary)) = &events.last().unwrap().event else {
        panic!("the last event must be the summary");
    };
    assert_eq!(summary.utterances as usize, us.len());
    assert_eq!(summary.transcripts_dropped, 0);
    assert!(summary.duration_ms.abs_diff(call.len() as u32 / 16) < 100);

    let hyp = transcript(&events);
    let w = wer(&reference.join(" "), &hyp);
    eprintln!("WER {w:.3}: {hyp}");
    assert!(w < 0.15, "WER {w} over the 15% bound: {hyp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_legs_give_response_latency_and_summary_per_role() {
    let (addr, _stop) = start_server(8, false).await;
    let (p1, _) = librivox("0880");
    let (p2, _) = librivox("0930");
    let a = load_wav(&p1);
    let b = load_wav(&p2);
    // Caller speaks from 0.5 s; the agent answers 700 ms after the caller's clip ends.
    let gap = 11_200;
    let mut caller = vec![0.0; 8000];
    caller.extend_from_slice(&a);
    let agent_start = caller.len() + gap;
    caller.resize(agent_start + b.len() + 16_000, 0.0);
    let mut agent = vec![0.0; agent_start];
    agent.extend_from_slice(&b);
    agent.resize(caller.len(), 0.0);

    let (tx, rx) = tokio::sync::mpsc::channel(32);
    tx.send(config(
        "two-legs",
        &[
            (1, proto::Role::Caller, proto::Encoding::Linear16, 16_000),
            (2, proto::Role::Agent, proto::Encoding::Linear16, 16_000),
        ],
    ))
    .await
    .unwrap();
    tokio::spawn(async move {
        for (ca, ag) in caller.chunks(320).zip(agent.chunks(320)) {
            tx.send(audio(1, pcm16(ca))).await.unwrap();
            tx.send(audio(2, pcm16(ag))).await.unwrap();
        }
    });
    let events = collect(
        client(addr)
            .await
            .stream_call(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();
    let us = utterances(&events);
    let first_agent = us
        .iter()
        .filter(|u| u.channel_id == 2)
        .min_by_key(|u| u.start_ms)
        .expect("agent speaks");
    let lat = first_agent
        .prosody
        .as_ref()
        .unwrap()
        .response_latency_ms
        .expect("a response latency");
    // The clips have their own leading/trailing silence, so allow for it.
    assert!((300..=1400).contains(&lat), "latency {lat} ms");
    assert!(us.iter().filter(|u| u.channel_id == 1).all(|u| u
        .prosody
        .as_ref()
        .unwrap()
        .response_latency_ms
        .is_none()));
    let Some(Event::Summary(s)) = &events.last().unwrap().event else {
        panic!("summary last")
    };
    assert_eq!(s.roles.len(), 2);
    for r in &s.roles {
        assert!(r.talk_ms > 1000, "{r:?}");
    }
    let agent_sum = s
        .roles
        .iter()
        .find(|r| r.role == proto::Role::Agent as i32)
        .unwrap();
    assert_eq!(agent_sum.mean_response_latency_ms, Some(lat));
    assert!(s.silence_ms > 500 && s.overlap_ms < 200, "{s:?}");
    // Words are off without a recogniser, prosody is not.
    assert!(us
        .iter()
        .all(|u| u.transcript.is_empty() && u.prosody.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_of_silence_or_line_noise_give_no_words() {
    let (addr, _stop) = start_server(8, true).await;
    let mut c = client(addr).await;
    // Fixed-seed white noise at about -30 dBFS, a low mains hum, and digital silence.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut noise = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let n = 30 * 8000;
    let white: Vec<f32> = (0..n).map(|_| 0.055 * noise()).collect();
    let hum: Vec<f32> = (0..n)
        .map(|i| {
            0.02 * (2.0 * std::f32::consts::PI * 50.0 * i as f32 / 8000.0).sin() + 0.003 * noise()
        })
        .collect();
    let silence = vec![0.0f32; n];
    for (name, signal) in [("white", white), ("hum", hum), ("silence", silence)] {
        let data: Vec<u8> = signal
            .iter()
            .map(|s| callmood::core::codec::g711::ulaw_encode((s * 32768.0) as i16))
            .collect();
        let req = proto::AnalyzeRecordingRequest {
            call_id: name.into(),
            audio: Some(proto::analyze_recording_request::Audio::Raw(
                proto::RawAudio {
                    encoding: proto::Encoding::Mulaw as i32,
                    sample_rate_hz: 8000,
                    channels: 1,
                    data,
                },
            )),
            ..Default::default()
        };
        let events = collect(c.analyze_recording(req).await.unwrap().into_inner())
            .await
            .unwrap();
        let words: Vec<String> = utterances(&events)
            .iter()
            .flat_map(|u| u.words.iter().map(|w| w.text.clone()))
            .collect();
        assert!(words.is_empty(), "{name}: words on no speech: {words:?}");
        let Some(Event::Summary(s)) = &events.last().unwrap().event else {
            panic!("summary last")
        };
        assert!(s.duration_ms.abs_diff(30_000) < 50, "{name}: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_clients_get_a_status_and_leave_the_server_serving() {
    let (addr, _stop) = start_server(3, false).await;
    let mut c = client(addr).await;

    // Audio before config.
    let first_audio = tokio_stream::iter(vec![audio(1, vec![0; 320])]);
    let st = c.stream_call(first_audio).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument, "{st:?}");

    // A wrong sample rate is refused, naming the field.
    let bad_rate = tokio_stream::iter(vec![config(
        "x",
        &[(1, proto::Role::Caller, proto::Encoding::Linear16, 96_000)],
    )]);
    let st = c.stream_call(bad_rate).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("sample_rate_hz"), "{}", st.message());

    // No channels; unspecified encoding.
    let st = c
        .stream_call(tokio_stream::iter(vec![config("x", &[])]))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    let st = c
        .stream_call(tokio_stream::iter(vec![config(
            "x",
            &[(1, proto::Role::Caller, proto::Encoding::Unspecified, 8000)],
        )]))
        .await
        .unwrap_err();
    assert!(st.message().contains("encoding"), "{}", st.message());

    // Audio for a channel nobody declared: the call ends with INVALID_ARGUMENT.
    let msgs = vec![
        config(
            "x",
            &[(1, proto::Role::Caller, proto::Encoding::Mulaw, 8000)],
        ),
        audio(1, vec![0xff; 160]),
        audio(9, vec![0xff; 160]),
    ];
    let st = collect(
        c.stream_call(tokio_stream::iter(msgs))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("channel_id 9"), "{}", st.message());

    // Garbage WAV bytes.
    let st = c
        .analyze_recording(proto::AnalyzeRecordingRequest {
            audio: Some(proto::analyze_recording_request::Audio::Wav(
                b"RIFF\x10\x00\x00\x00garbage!".to_vec(),
            )),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);

    // Clients that vanish mid-call: their calls are freed (the cap is 3 calls).
    for _ in 0..5 {
        let mut c2 = client(addr).await;
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tx.send(config(
            "vanish",
            &[(1, proto::Role::Caller, proto::Encoding::Mulaw, 8000)],
        ))
        .await
        .unwrap();
        tx.send(audio(1, vec![0x7f; 8000])).await.unwrap();
        let resp = c2.stream_call(ReceiverStream::new(rx)).await.unwrap();
        drop(resp);
        drop(tx);
        drop(c2);
    }
    // Give the server a moment to notice the drops, then a healthy call still completes.
    let mut ok = false;
    for _ in 0..50 {
        let (p, _) = librivox("0880");
        let s = load_wav(&p);
        let msgs = std::iter::once(config(
            "healthy",
            &[(1, proto::Role::Caller, proto::Encoding::Linear16, 16_000)],
        ))
        .chain(s.chunks(320).map(|ch| audio(1, pcm16(ch))))
        .collect::<Vec<_>>();
        match c.stream_call(tokio_stream::iter(msgs)).await {
            Ok(resp) => {
                let events = collect(resp.into_inner()).await.unwrap();
                assert!(!utterances(&events).is_empty());
                ok = true;
                break;
            }
            Err(st) if st.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(st) => panic!("{st:?}"),
        }
    }
    assert!(ok, "vanished clients kept their call slots");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_cap_are_refused_with_resource_exhausted() {
    let (addr, _stop) = start_server(1, false).await;
    let mut c = client(addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(config(
        "a",
        &[(1, proto::Role::Caller, proto::Encoding::Mulaw, 8000)],
    ))
    .await
    .unwrap();
    let _held = c.stream_call(ReceiverStream::new(rx)).await.unwrap();
    let st = c
        .stream_call(tokio_stream::iter(vec![config(
            "b",
            &[(1, proto::Role::Caller, proto::Encoding::Mulaw, 8000)],
        )]))
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::ResourceExhausted);
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    let (addr, _stop) = start_server(2, false).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "callmood.v1.CallAnalyzer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let mut refl = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("{msg:?}")
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"callmood.v1.CallAnalyzer"), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_timed_out_and_frees_its_slot() {
    // The test server's idle timeout is 2 s; the cap is one call.
    let (addr, _stop) = start_server(1, false).await;
    let mut c = client(addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(config(
        "stalled",
        &[(1, proto::Role::Caller, proto::Encoding::Mulaw, 8000)],
    ))
    .await
    .unwrap();
    tx.send(audio(1, vec![0xff; 160])).await.unwrap();
    let stream = c
        .stream_call(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // The sender stays open and silent.
    let st = collect(stream).await.unwrap_err();
    assert_eq!(st.code(), Code::DeadlineExceeded, "{st:?}");
    drop(tx);
    let msgs = vec![
        config(
            "next",
            &[(1, proto::Role::Caller, proto::Encoding::Mulaw, 8000)],
        ),
        audio(1, vec![0xff; 8000]),
    ];
    let events = collect(
        c.stream_call(tokio_stream::iter(msgs))
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();
    assert!(matches!(
        events.last().unwrap().event,
        Some(Event::Summary(_))
    ));
}

/// `AnalyzeRecording` over gRPC and `callmood analyze` on the same file give
/// the same events (as sets: prosody and full results of a recording may
/// interleave differently), with the summary last in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_recording_gives_the_same_events_as_the_cli() {
    let (addr, _stop) = start_server(8, true).await;
    // A stereo call: the caller on the left, the agent answering on the right.
    let (caller, _, _) = speech_call(&["0890", "0930"], 900);
    let (agent, _, _) = speech_call(&["0880"], 0);
    let n = caller.len().max(agent.len() + 16_000 * 5);
    let mut interleaved = Vec::with_capacity(2 * n);
    for i in 0..n {
        let a = if i >= 16_000 * 5 {
            agent.get(i - 16_000 * 5)
        } else {
            None
        };
        interleaved.push(caller.get(i).copied().unwrap_or(0.0));
        interleaved.push(a.copied().unwrap_or(0.0));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("parity.wav");
    write_stereo_wav(&path, &interleaved);

    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_callmood"))
        .arg("analyze")
        .arg(&path)
        .args(["--workers", "1", "--threads", "2"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli_events: Vec<CallEvent> = String::from_utf8(cli.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let req = proto::AnalyzeRecordingRequest {
        call_id: "parity".into(),
        audio: Some(proto::analyze_recording_request::Audio::Wav(
            std::fs::read(&path).unwrap(),
        )),
        ..Default::default()
    };
    let grpc_events = collect(
        client(addr)
            .await
            .analyze_recording(req)
            .await
            .unwrap()
            .into_inner(),
    )
    .await
    .unwrap();

    for evs in [&cli_events, &grpc_events] {
        assert!(matches!(evs.last().unwrap().event, Some(Event::Summary(_))));
        assert!(utterances(evs).len() >= 3);
    }
    let key = |e: &CallEvent| serde_json::to_string(e).unwrap();
    let mut a: Vec<String> = cli_events.iter().map(key).collect();
    let mut b: Vec<String> = grpc_events.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
}

/// `callmood loadtest` runs its calls at once against a real server: every utterance of
/// every admitted call is timed (the prosody event can only come after the endpointer has
/// heard 500 ms of silence, sent at real-time pace), a call over the server's cap is
/// reported as failed, and the verdict says why the server did not keep up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadtest_times_every_utterance_and_reports_refused_calls() {
    let (addr, _stop) = start_server(2, true).await;
    let (call, spans, _) = speech_call(&["0880", "0930"], 900);
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("call.wav");
    write_wav(&wav, 16_000, &call);
    let mulaw = dir.path().join("call-ulaw.wav");
    to_mulaw_8k(&wav, &mulaw);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_callmood"))
            .args(["loadtest", "--calls", "3", "--format", "json", "--server"])
            .arg(format!("http://{addr}"))
            .arg(&mulaw)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("3 calls at once"), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["calls"], 3, "{r}");
    assert_eq!(r["completed"], 2, "{r}");
    let failures = r["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{r}");
    assert!(
        failures[0].as_str().unwrap().contains("ResourceExhausted"),
        "{r}"
    );
    assert_eq!(r["kept_up"], false, "{r}");
    // Each admitted call's utterances (at least one per clip), each with both events.
    let n = r["prosody"]["n"].as_u64().unwrap();
    assert!(n >= 2 * spans.len() as u64, "{r}");
    assert_eq!(r["full"]["n"].as_u64().unwrap(), n, "{r}");
    assert_eq!(r["summary"]["n"], 2, "{r}");
    let p = &r["prosody"];
    assert!(p["p50_ms"].as_f64().unwrap() >= 400.0, "{r}");
    assert!(p["p50_ms"].as_f64() <= p["p95_ms"].as_f64(), "{r}");
    assert!(p["p95_ms"].as_f64() <= p["max_ms"].as_f64(), "{r}");
    assert!(r["full"]["p50_ms"].as_f64() >= p["p50_ms"].as_f64(), "{r}");
    assert_eq!(r["transcripts_dropped"], 0, "{r}");
    let audio = r["audio_s"].as_f64().unwrap();
    let expected = 2.0 * call.len() as f64 / 16_000.0;
    assert!((audio - expected).abs() < 0.1, "{audio} vs {expected}");
}

/// A live call whose utterances wait longer for the recogniser than the server allows
/// (here 1 ms, behind a busy worker) still gets every utterance, sent without words and
/// counted in the summary's `transcripts_dropped`; nothing is lost or late beyond the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utterances_that_wait_too_long_for_the_recogniser_go_without_words() {
    let cfg = callmood::asr::AsrConfig {
        workers: 1,
        threads_per_worker: 1,
        max_queue_wait_s: 0.001,
        ..callmood::asr::AsrConfig::default()
    };
    let pool = Arc::new(callmood::asr::AsrPool::new(&model_path(), cfg).unwrap());
    // Keep the only worker busy with a window of a recording's speech.
    let busy: Vec<f32> = clips()
        .iter()
        .flat_map(|c| c.audio.clone())
        .take(25 * 16000)
        .collect();
    let (job, busy_reply) = callmood::asr::AsrJob::with_channel(busy);
    pool.submit_blocking(job).unwrap();
    let (addr, _, _stop) = start_server_with(2, Some(pool)).await;
    let (call, spans, _) = speech_call(&["0880", "0930", "0890"], 900);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tx.send(config(
        "late",
        &[(1, proto::Role::Caller, proto::Encoding::Mulaw, 8000)],
    ))
    .await
    .unwrap();
    // The whole call at once, in chunks of the longest a chunk may be (10 s): its
    // utterances end together and queue behind the busy worker.
    for chunk in mulaw_8k_bytes(&call).chunks(80_000) {
        tx.send(audio(1, chunk.to_vec())).await.unwrap();
    }
    drop(tx);
    let stream = client(addr)
        .await
        .stream_call(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let events = collect(stream).await.unwrap();
    let utterances = utterances(&events);
    assert_eq!(utterances.len(), spans.len(), "{events:?}");
    let without_words = utterances.iter().filter(|u| u.words.is_empty()).count();
    let summary = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Summary(s)) => Some(s),
            _ => None,
        })
        .expect("summary");
    assert!(summary.transcripts_dropped >= 1, "{summary:?}");
    assert_eq!(summary.transcripts_dropped as usize, without_words);
    assert!(utterances.iter().all(|u| u.emotion.is_some()));
    assert!(busy_reply.recv().unwrap().is_ok());
}
