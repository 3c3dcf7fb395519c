//! SIGTERM in the middle of live calls: the real `callmood serve` process drains. Health
//! turns NOT_SERVING, a new call is refused with UNAVAILABLE, every call in flight (two
//! `StreamCall`s and an RTP/UDP leg watched with `WatchCall`) ends where its audio has
//! come to and gets each utterance whose prosody event it saw in full, and its summary;
//! then the process exits 0, well before the drain timeout.
mod common;
mod ops;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use callmood::core::rtp;
use callmood::proto::{self, call_event::Event, CallEvent};
use common::*;
use ops::*;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

/// A live μ-law call over `StreamCall`, at real-time pace, with its events as they come.
async fn stream_call(
    c: &mut Client,
    call_id: &str,
    bytes: Vec<u8>,
    options: Option<proto::CallOptions>,
) -> tokio::sync::mpsc::Receiver<Result<CallEvent, tonic::Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut config = rtp_call_config(call_id);
    if let Some(proto::stream_call_request::Request::Config(c)) = &mut config.request {
        c.options = options;
    }
    tx.send(config).await.unwrap();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        for m in rtp_messages(&bytes, 0) {
            ticks.tick().await;
            // Once the server has ended the call, sends may fail: that is expected.
            if tx.send(m).await.is_err() {
                return;
            }
        }
    });
    let s = c
        .stream_call(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    events_of(s)
}

/// Forwards a stream's events to a channel (so the test can look at them live).
fn events_of(
    mut s: tonic::Streaming<CallEvent>,
) -> tokio::sync::mpsc::Receiver<Result<CallEvent, tonic::Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let r = s.message().await.transpose();
            let end = !matches!(r, Some(Ok(_)));
            if let Some(r) = r {
                if tx.send(r).await.is_err() {
                    return;
                }
            }
            if end {
                return;
            }
        }
    });
    rx
}

/// Every event until the stream ends; panics on an error status.
async fn rest(
    mut rx: tokio::sync::mpsc::Receiver<Result<CallEvent, tonic::Status>>,
    mut events: Vec<CallEvent>,
    what: &str,
    server: &Server,
) -> Vec<CallEvent> {
    while let Some(r) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: no end within 60 s"))
    {
        events.push(r.unwrap_or_else(|s| {
            panic!(
                "{what} ended with {s:?} after {} events; server:\n{}",
                events.len(),
                server.proc.stderr()
            )
        }));
    }
    events
}

/// The call lost nothing: each utterance whose prosody event came has its full result,
/// and the summary is last and counts them.
fn assert_complete(events: &[CallEvent], what: &str) -> usize {
    let ids = |prosody: bool| -> BTreeSet<String> {
        events
            .iter()
            .filter_map(|e| match &e.event {
                Some(Event::UtteranceProsody(p)) if prosody => Some(p.utterance_id.clone()),
                Some(Event::Utterance(u)) if !prosody => Some(u.utterance_id.clone()),
                _ => None,
            })
            .collect()
    };
    let (fast, full) = (ids(true), ids(false));
    assert_eq!(fast, full, "{what}: an utterance lost its full result");
    let Some(Event::Summary(s)) = &events.last().expect("events").event else {
        panic!("{what}: the last event is not the summary: {events:?}");
    };
    assert_eq!(s.utterances as usize, full.len(), "{what}: {s:?}");
    full.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_call_loses_no_finished_utterance_and_no_summary() {
    let t0 = Instant::now();
    // A generous drain timeout: this machine may be slow to transcribe, and the test
    // shows the drain ends when the calls are done, not at the timeout.
    let mut server = Server::start(
        false,
        &["--drain-timeout", "90", "--rtp-ports", "42100-42199"],
    );
    let mut c = client(server.grpc).await;
    // About 15 s of speech per call: the drain comes in its middle.
    let (call, spans, _) = speech_call(&["0890", "0880", "0930"], 800);
    let bytes = mulaw_8k_bytes(&call);
    // Call A is transcribed; B and the RTP leg go without words, to spare the one
    // recogniser worker of a test machine (their drain is the same).
    let no_words = proto::CallOptions {
        disable_transcript: true,
        ..Default::default()
    };
    let mut a = stream_call(&mut c, "drain-a", bytes.clone(), None).await;
    let b = stream_call(&mut c, "drain-b", bytes[1600..].to_vec(), Some(no_words)).await;
    // An RTP/UDP leg, watched.
    let leg = c
        .open_rtp_leg(proto::OpenRtpLegRequest {
            call_id: "drain-rtp".into(),
            role: proto::Role::Caller as i32,
            encoding: proto::Encoding::Mulaw as i32,
            options: Some(no_words),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to: std::net::SocketAddr = ([127, 0, 0, 1], leg.port as u16).into();
    let rtp_bytes = bytes.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        for (i, chunk) in rtp_bytes.chunks(160).enumerate() {
            ticks.tick().await;
            let p = rtp::build(i == 0, 0, i as u16, (i * 160) as u32, 99, chunk);
            let _ = udp.send_to(&p, to).await;
        }
    });
    let w = c
        .watch_call(proto::WatchCallRequest {
            call_id: "drain-rtp".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let watched = events_of(w);

    // Wait until the first utterance of call A has ended (its prosody event), then
    // stop the server while all three calls are still talking.
    let mut a_events = Vec::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), a.recv())
            .await
            .expect("a prosody event within 30 s")
            .expect("call A goes on")
            .unwrap();
        let prosody = matches!(ev.event, Some(Event::UtteranceProsody(_)));
        a_events.push(ev);
        if prosody {
            break;
        }
    }
    // 1.5 s on, call A is in the middle of its second clip: that utterance is open.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let at = t0.elapsed();
    server.proc.signal("TERM");
    let term = Instant::now();

    // A new call while draining: health says NOT_SERVING, the call gets UNAVAILABLE.
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        tonic::transport::Channel::from_shared(format!("http://{}", server.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let st = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "callmood.v1.CallAnalyzer".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if st == not_serving {
            break;
        }
        assert!(Instant::now() < end, "health still {st} after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = c
        .stream_call(tokio_stream::iter(vec![rtp_call_config("too-late")]))
        .await
        .expect_err("a new call while draining is refused");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let refused = c
        .open_rtp_leg(proto::OpenRtpLegRequest {
            call_id: "too-late-rtp".into(),
            ..Default::default()
        })
        .await
        .expect_err("a new leg while draining is refused");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    // Every call finishes: all its utterances in full, then its summary.
    let a_events = rest(a, a_events, "call A", &server).await;
    let b_events = rest(b, Vec::new(), "call B", &server).await;
    let w_events = rest(watched, Vec::new(), "RTP leg", &server).await;
    let counts = [
        assert_complete(&a_events, "call A"),
        assert_complete(&b_events, "call B"),
        assert_complete(&w_events, "RTP leg"),
    ];
    // The calls were cut in their middle: none had all its speech.
    let Some(Event::Summary(s)) = &a_events.last().unwrap().event else {
        unreachable!()
    };
    assert!(
        (s.duration_ms as u64) < spans.last().unwrap().1 as u64,
        "call A was not cut: {s:?}"
    );
    // The utterance open at SIGTERM was closed there and finished too.
    assert!(counts.iter().all(|&n| n >= 2), "{counts:?}");
    let code = server.proc.wait_exit(Duration::from_secs(30));
    let stopped = term.elapsed();
    let log = server.proc.stderr();
    assert_eq!(code, Some(0), "exit code; stderr:\n{log}");
    assert!(log.contains("drained: every call finished"), "{log}");
    eprintln!(
        "drain: SIGTERM at {:.1} s; utterances A/B/RTP {counts:?}; exited 0 {:.1} s after \
         SIGTERM (drain timeout 90 s); test {:.1} s",
        at.as_secs_f32(),
        stopped.as_secs_f32(),
        t0.elapsed().as_secs_f32()
    );
    assert!(stopped < Duration::from_secs(90), "{stopped:?}");
}
