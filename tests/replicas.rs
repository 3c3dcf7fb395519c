//! Two real `callmood serve` replicas behind a real HAProxy (deploy/haproxy.cfg, gRPC over
//! h2c, a consistent hash of `x-call-id`) on loopback, driven by the crate's own client, which
//! sets `x-call-id` on every request about a call:
//!
//! - `StreamCall`s with different ids spread over both replicas (each replica's
//!   `callmood_calls_total` tells which one served a call), and `AnalyzeRecording`s
//!   with those ids reach the same replicas;
//! - `OpenRtpLeg` of an id reaches the replica its `StreamCall` reached (each replica
//!   hands out ports from its own range), RTP goes straight to the advertised address,
//!   and `WatchCall` and `CloseLeg` of that id through the balancer find the leg there;
//! - AudioSocket connections through the balancer's TCP frontend reach the replica the
//!   hash of their call UUID picks, the same that `x-call-id` picks: a `WatchCall` of the
//!   UUID through the balancer finds each call and gets its summary;
//! - Twilio Media Streams through the balancer's WebSocket frontend, the call id in the
//!   URL path (`/twilio/ID`): the same, with the hash of that id;
//! - SIGTERM to one replica in the middle of a call: HAProxy's check sees it draining and
//!   takes it out, the ids it served now go to the other replica, and the call in flight
//!   on the drained one still ends with its summary, then that replica exits 0.
//!
//! Needs the `haproxy` binary (Debian package `haproxy`, installed by scripts/setup);
//! without it the test says so and passes without running.
mod common;
mod ops;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use callmood::client::stream::{self, Access};
use callmood::core::audiosocket::{self, Message};
use callmood::core::rtp;
use callmood::proto::{self, call_event::Event, CallEvent};
use common::*;
use ops::*;

/// Where each replica hands out RTP ports: the port of a leg says which replica holds it.
const RTP_PORTS: [(u16, u16); 2] = [(42600, 42649), (42650, 42699)];
/// Call ids of the short `StreamCall`s: enough that both replicas get some.
const IDS: [&str; 8] = [
    "rep-a1", "rep-b2", "rep-c3", "rep-d4", "rep-e5", "rep-f6", "rep-g7", "rep-h8",
];

fn haproxy_missing() -> bool {
    Command::new("haproxy").arg("-v").output().is_err()
}

/// The μ-law channel every call of this test has, words off (the recogniser is not what
/// is tested, and one test machine's worker is spared).
fn channel() -> proto::ChannelConfig {
    proto::ChannelConfig {
        channel_id: 0,
        role: proto::Role::Caller as i32,
        encoding: proto::Encoding::Mulaw as i32,
        ..Default::default()
    }
}

fn no_words() -> Option<proto::CallOptions> {
    Some(proto::CallOptions {
        disable_transcript: true,
        ..Default::default()
    })
}

/// `callmood_calls_total{transport="grpc"}` of a replica: the `StreamCall`s it took.
fn grpc_calls(server: &Server) -> u64 {
    calls_total(server, "grpc")
}

/// `callmood_calls_total{transport=...}` of a replica.
fn calls_total(server: &Server, transport: &str) -> u64 {
    let (code, body) = http_get(server.metrics.unwrap(), "/metrics").unwrap();
    assert_eq!(code, 200);
    let key = format!("callmood_calls_total{{transport=\"{transport}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// An `AnalyzeRecording` of `bytes` (8 kHz μ-law) through the balancer with the crate's
/// client; its events.
async fn analyze_recording(lb: &str, call_id: &str, bytes: Vec<u8>) -> Vec<CallEvent> {
    let mut client = stream::connect(lb, &Access::default()).await.unwrap();
    let request = proto::AnalyzeRecordingRequest {
        call_id: call_id.into(),
        audio: Some(proto::analyze_recording_request::Audio::Raw(
            proto::RawAudio {
                encoding: proto::Encoding::Mulaw as i32,
                sample_rate_hz: 8000,
                channels: 1,
                data: bytes,
            },
        )),
        options: no_words(),
        ..Default::default()
    };
    let mut events = Vec::new();
    stream::run_recording(&mut client, request, |ev| {
        events.push(ev);
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{call_id}: {e}"));
    events
}

/// A `StreamCall` through the balancer with the crate's client: `bytes` (8 kHz μ-law) as
/// 20 ms chunks, paced at real time or all at once; its events.
async fn stream_call(lb: &str, call_id: &str, bytes: Vec<u8>, paced: bool) -> Vec<CallEvent> {
    let mut client = stream::connect(lb, &Access::default()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let mut config = stream::config_request(call_id.into(), vec![channel()], None);
    if let Some(proto::stream_call_request::Request::Config(c)) = &mut config.request {
        c.options = no_words();
    }
    tx.send(config).await.unwrap();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        for chunk in bytes.chunks(160) {
            if paced {
                ticks.tick().await;
            }
            if tx
                .send(stream::audio_request(0, chunk.to_vec()))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut events = Vec::new();
    stream::run_call(&mut client, call_id, rx, |ev| {
        events.push(ev);
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{call_id}: {e}"));
    events
}

/// An RTP leg of `call_id` opened, watched and closed through the balancer, its RTP sent
/// straight to the address it names: (the replica that held it, its events).
async fn rtp_leg(lb: &str, call_id: &str, bytes: &[u8]) -> (usize, Vec<CallEvent>) {
    let mut client = stream::connect(lb, &Access::default()).await.unwrap();
    let opened = client
        .open_rtp_leg(stream::call_request(
            call_id,
            proto::OpenRtpLegRequest {
                call_id: call_id.into(),
                encoding: proto::Encoding::Mulaw as i32,
                options: no_words(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_or_else(|s| panic!("{call_id}: OpenRtpLeg: {s:?}"))
        .into_inner();
    let port = opened.port as u16;
    let replica = RTP_PORTS
        .iter()
        .position(|(lo, hi)| (*lo..=*hi).contains(&port))
        .unwrap_or_else(|| panic!("{call_id}: port {port} is no replica's"));
    assert_eq!(opened.address, "127.0.0.1", "the advertised address");
    let watched = watch_through(lb, call_id).await;
    let to: std::net::SocketAddr =
        (opened.address.parse::<std::net::IpAddr>().unwrap(), port).into();
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for (i, chunk) in bytes.chunks(160).enumerate() {
        ticks.tick().await;
        let p = rtp::build(i == 0, 0, i as u16, (i * 160) as u32, 0x5EB, chunk);
        udp.send_to(&p, to).await.unwrap();
    }
    // What is still in the socket when the leg closes is not counted: give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .close_leg(stream::call_request(
            call_id,
            proto::CloseLegRequest {
                call_id: call_id.into(),
                channel_id: opened.channel_id,
            },
        ))
        .await
        .unwrap_or_else(|s| panic!("{call_id}: CloseLeg: {s:?}"));
    let events = watched_events(watched, call_id).await;
    let received = leg(summary(&events), opened.channel_id).packets_received;
    assert_eq!(received, bytes.chunks(160).len() as u64, "{call_id}");
    (replica, events)
}

/// A `WatchCall` of `call_id` through the balancer `lb`, running: its events once the
/// call ends.
async fn watch_through(lb: &str, call_id: &str) -> tokio::task::JoinHandle<Vec<CallEvent>> {
    let mut client = stream::connect(lb, &Access::default()).await.unwrap();
    let id = call_id.to_string();
    tokio::spawn(async move {
        let s = client
            .watch_call(stream::call_request(
                &id,
                proto::WatchCallRequest {
                    call_id: id.clone(),
                },
            ))
            .await
            .unwrap_or_else(|s| panic!("{id}: WatchCall: {s:?}"))
            .into_inner();
        collect(s).await.unwrap()
    })
}

/// The events of `watched` (at most 60 s away), every one of call `call_id`.
async fn watched_events(
    watched: tokio::task::JoinHandle<Vec<CallEvent>>,
    call_id: &str,
) -> Vec<CallEvent> {
    let events = tokio::time::timeout(Duration::from_secs(60), watched)
        .await
        .unwrap_or_else(|_| panic!("{call_id}: the watched call did not end"))
        .unwrap();
    assert!(events.iter().all(|e| e.call_id == call_id), "{call_id}");
    events
}

/// An AudioSocket call of `uuid` through the balancer's TCP frontend `lb_asock` (1 s of
/// `pcm` at twice real time, then a hangup), watched through its gRPC frontend `lb`: the
/// watched events.
async fn audiosocket_call(lb: &str, lb_asock: &str, uuid: [u8; 16], pcm: &[i16]) -> Vec<CallEvent> {
    use tokio::io::AsyncWriteExt;
    let call_id = audiosocket::uuid_string(&uuid);
    // Watch first: WatchCall waits for the call to appear.
    let watched = watch_through(lb, &call_id).await;
    let mut tcp = tokio::net::TcpStream::connect(lb_asock).await.unwrap();
    tcp.write_all(&audiosocket::encode(&Message::Uuid(uuid)))
        .await
        .unwrap();
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    for frame in pcm.chunks(160).take(50) {
        ticks.tick().await;
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        tcp.write_all(&audiosocket::encode(&Message::Audio(bytes)))
            .await
            .unwrap();
    }
    tcp.write_all(&audiosocket::encode(&Message::Hangup))
        .await
        .unwrap();
    watched_events(watched, &call_id).await
}

/// A Twilio media stream of `call_id` through the balancer's WebSocket frontend
/// `lb_ws`, the id in the path (`/twilio/ID`; the start message names another call):
/// 1 s of `audio` (μ-law) at twice real time, watched through `lb`: the watched events.
async fn twilio_call(lb: &str, lb_ws: &str, call_id: &str, audio: &[u8]) -> Vec<CallEvent> {
    use base64::Engine;
    use futures_util::SinkExt;
    use serde_json::json;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let watched = watch_through(lb, call_id).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{lb_ws}/twilio/{call_id}"))
        .await
        .unwrap_or_else(|e| panic!("{call_id}: WebSocket through the balancer: {e}"));
    let text = |v: serde_json::Value| WsMessage::Text(v.to_string().into());
    ws.send(text(json!({
        "event": "start", "sequenceNumber": "1", "streamSid": "MZ0001",
        "start": {
            "accountSid": "AC0001", "streamSid": "MZ0001", "callSid": "CA-not-this-one",
            "tracks": ["inbound"], "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        }
    })))
    .await
    .unwrap();
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    for (i, c) in audio.chunks(160).take(50).enumerate() {
        ticks.tick().await;
        ws.send(text(json!({
            "event": "media", "sequenceNumber": (i + 2).to_string(), "streamSid": "MZ0001",
            "media": {
                "track": "inbound", "chunk": (i + 1).to_string(),
                "timestamp": (i * 20).to_string(),
                "payload": base64::engine::general_purpose::STANDARD.encode(c)
            }
        })))
        .await
        .unwrap();
    }
    ws.send(text(
        json!({"event": "stop", "sequenceNumber": "60", "streamSid": "MZ0001"}),
    ))
    .await
    .unwrap();
    // Twilio closes the socket after `stop`.
    ws.close(None).await.ok();
    watched_events(watched, call_id).await
}

fn ends_with_summary(events: &[CallEvent], what: &str) {
    assert!(
        matches!(
            events.last().and_then(|e| e.event.as_ref()),
            Some(Event::Summary(_))
        ),
        "{what}: no summary last: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_keep_to_their_replica_and_a_drained_one_gets_no_new_calls() {
    if haproxy_missing() {
        eprintln!(
            "SKIPPED: no `haproxy` binary. Install it with `apt-get install haproxy` \
             (or run scripts/setup) to run this test."
        );
        return;
    }
    let t0 = Instant::now();
    // Each replica's AudioSocket and WebSocket listeners, which only the balancer
    // connects to.
    let asock: Vec<String> = RTP_PORTS
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let ws: Vec<String> = RTP_PORTS
        .iter()
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let replicas: Vec<Server> = RTP_PORTS
        .iter()
        .zip(asock.iter().zip(&ws))
        .map(|((lo, hi), (asock, ws))| {
            Server::start(
                true,
                &[
                    "--rtp-ports",
                    &format!("{lo}-{hi}"),
                    "--advertise-addr",
                    "127.0.0.1",
                    "--drain-timeout",
                    "60",
                    "--audiosocket-addr",
                    asock,
                    "--ws-addr",
                    ws,
                ],
            )
        })
        .collect();
    let lb_addr = format!("127.0.0.1:{}", free_port());
    let lb_asock = format!("127.0.0.1:{}", free_port());
    let lb_ws = format!("127.0.0.1:{}", free_port());
    let mut haproxy = Command::new("haproxy");
    haproxy
        .args(["-db", "-f"])
        .arg(repo().join("deploy/haproxy.cfg"))
        .env("CALLMOOD_LB_ADDR", &lb_addr)
        .env("CALLMOOD_LB_AUDIOSOCKET_ADDR", &lb_asock)
        .env("CALLMOOD_LB_WS_ADDR", &lb_ws);
    for (i, r) in replicas.iter().enumerate() {
        haproxy
            .env(format!("CALLMOOD_REPLICA_{}", i + 1), r.grpc.to_string())
            .env(format!("CALLMOOD_REPLICA_{}_AUDIOSOCKET", i + 1), &asock[i])
            .env(format!("CALLMOOD_REPLICA_{}_WS", i + 1), &ws[i])
            .env(
                format!("CALLMOOD_REPLICA_{}_METRICS_PORT", i + 1),
                r.metrics.unwrap().port().to_string(),
            );
    }
    let haproxy = Proc::spawn(haproxy);
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&lb_addr).is_err() {
        assert!(
            Instant::now() < end,
            "haproxy did not start:\n{}",
            haproxy.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let lb = format!("http://{lb_addr}");
    let speech = mulaw_8k_bytes(&load_wav(&librivox("0880").0));
    let short = speech[..speech.len().min(8000 * 3)].to_vec();

    // Short StreamCalls one after another: which replica took each id.
    let mut home: BTreeMap<&str, usize> = BTreeMap::new();
    for id in IDS {
        let before: Vec<u64> = replicas.iter().map(grpc_calls).collect();
        let events = stream_call(&lb, id, short.clone(), false).await;
        ends_with_summary(&events, id);
        let after: Vec<u64> = replicas.iter().map(grpc_calls).collect();
        let took: Vec<usize> = (0..2).filter(|&i| after[i] > before[i]).collect();
        assert_eq!(took.len(), 1, "{id}: calls {before:?} -> {after:?}");
        home.insert(id, took[0]);
    }
    let per_replica = |r: usize| home.values().filter(|&&h| h == r).count();
    assert!(
        per_replica(0) > 0 && per_replica(1) > 0,
        "the ids did not spread over both replicas: {home:?}"
    );
    // The same ids again land where they did.
    for id in &IDS[..3] {
        let before: Vec<u64> = replicas.iter().map(grpc_calls).collect();
        stream_call(&lb, id, short.clone(), false).await;
        let after = grpc_calls(&replicas[home[id]]);
        assert_eq!(after, before[home[id]] + 1, "{id} moved");
    }

    // Recordings of those ids reach the same replicas.
    for id in &IDS[..4] {
        let before = calls_total(&replicas[home[id]], "recording");
        let events = analyze_recording(&lb, id, short.clone()).await;
        ends_with_summary(&events, id);
        let after = calls_total(&replicas[home[id]], "recording");
        assert_eq!(after, before + 1, "{id}: the recording went elsewhere");
    }

    // RTP legs: OpenRtpLeg, WatchCall and CloseLeg of one id reach the replica its
    // StreamCall reached; two at once, one per replica.
    let pick = |r: usize| *home.iter().find(|(_, &h)| h == r).unwrap().0;
    let (a, b) = tokio::join!(rtp_leg(&lb, pick(0), &short), rtp_leg(&lb, pick(1), &short));
    assert_eq!((a.0, b.0), (0, 1), "legs on the wrong replica");
    ends_with_summary(&a.1, "leg 0");
    ends_with_summary(&b.1, "leg 1");

    // AudioSocket calls: the replica the hash of each UUID picks holds the call, and a
    // WatchCall of it through the balancer reaches that replica.
    // Silence: routing is what is tested, and without speech no utterance waits for
    // Whisper, which the media legs' calls would otherwise ask for.
    let pcm = vec![0i16; 8000];
    let mut asock_home = [0usize; 2];
    for k in 1..=8u8 {
        let uuid = [k.wrapping_mul(37); 16];
        let before: Vec<u64> = replicas
            .iter()
            .map(|r| calls_total(r, "audiosocket"))
            .collect();
        let events = audiosocket_call(&lb, &lb_asock, uuid, &pcm).await;
        ends_with_summary(&events, &audiosocket::uuid_string(&uuid));
        let after: Vec<u64> = replicas
            .iter()
            .map(|r| calls_total(r, "audiosocket"))
            .collect();
        let took: Vec<usize> = (0..2).filter(|&i| after[i] > before[i]).collect();
        assert_eq!(took.len(), 1, "{uuid:?}: calls {before:?} -> {after:?}");
        asock_home[took[0]] += 1;
    }
    assert!(
        asock_home[0] > 0 && asock_home[1] > 0,
        "the UUIDs did not spread over both replicas: {asock_home:?}"
    );

    // Twilio media streams: the call id in the path decides the replica, and a WatchCall
    // of it through the balancer reaches that replica.
    let mut ws_home = [0usize; 2];
    for k in 1..=8 {
        let id = format!("CA-rep-{k}");
        let before: Vec<u64> = replicas
            .iter()
            .map(|r| calls_total(r, "twilio-ws"))
            .collect();
        let events = twilio_call(&lb, &lb_ws, &id, &[0xFF; 8000]).await;
        ends_with_summary(&events, &id);
        let after: Vec<u64> = replicas
            .iter()
            .map(|r| calls_total(r, "twilio-ws"))
            .collect();
        let took: Vec<usize> = (0..2).filter(|&i| after[i] > before[i]).collect();
        assert_eq!(took.len(), 1, "{id}: calls {before:?} -> {after:?}");
        ws_home[took[0]] += 1;
    }
    assert!(
        ws_home[0] > 0 && ws_home[1] > 0,
        "the Twilio calls did not spread over both replicas: {ws_home:?}"
    );

    // Drain replica 0 in the middle of a paced call it holds.
    let long_id = pick(0);
    let long_lb = lb.clone();
    let long_bytes = speech.clone();
    let long = tokio::spawn(async move { stream_call(&long_lb, long_id, long_bytes, true).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut replicas = replicas;
    replicas[0].proc.signal("TERM");
    let end = Instant::now() + Duration::from_secs(15);
    while !haproxy.stderr().contains("callmood/replica1 is DOWN") {
        assert!(
            Instant::now() < end,
            "haproxy did not take the draining replica out:\n{}",
            haproxy.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The ids replica 0 served now go to replica 1, and succeed.
    let moved: Vec<&str> = IDS.iter().copied().filter(|id| home[id] == 0).collect();
    let before = grpc_calls(&replicas[1]);
    for id in &moved {
        let events = stream_call(&lb, id, short.clone(), false).await;
        ends_with_summary(&events, id);
    }
    assert_eq!(grpc_calls(&replicas[1]), before + moved.len() as u64);
    // The call in flight on the drained replica ends with its summary, then it exits 0.
    let long = tokio::time::timeout(Duration::from_secs(60), long)
        .await
        .expect("the drained call ends")
        .unwrap();
    ends_with_summary(&long, "the call on the drained replica");
    let code = replicas[0].proc.wait_exit(Duration::from_secs(30));
    let log = replicas[0].proc.stderr();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("drained: every call finished"), "{log}");
    eprintln!(
        "replicas: ids per replica {}/{}, AudioSocket calls {}/{}, Twilio calls {}/{}; {} ids moved to replica 2 after the drain; {:.1} s",
        per_replica(0),
        per_replica(1),
        asock_home[0],
        asock_home[1],
        ws_home[0],
        ws_home[1],
        moved.len(),
        t0.elapsed().as_secs_f32()
    );
}
