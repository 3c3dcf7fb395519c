//! Issue 20 item 4: broken and hostile clients against the real `callmood serve`
//! process (tests/ops), each case with its status and its counter
//! (`callmood_client_faults_total`). Requests go as raw bytes (a codec that encodes
//! nothing), so that a test can send what no generated client would: a 60 MiB chunk,
//! bytes that are no protobuf message. The media transports (AudioSocket, WebSocket,
//! RTP over UDP) get the same pacing, and RTP whose SSRC changes on every packet.
mod common;
mod ops;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callmood::core::audiosocket;
use callmood::core::rng::SplitMix64;
use callmood::core::rtp;
use callmood::proto::analyze_recording_request::Audio;
use callmood::proto::{self, call_event::Event, stream_call_request::Request, CallEvent};
use common::*;
use futures_util::{SinkExt, StreamExt};
use ops::*;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Status};

/// Limits of the test server: short enough to test without waiting long.
const CONFIG: &str = "[server]\nconfig_timeout_s = 1\nmax_ahead_s = 2\nmax_calls = 2\n";

/// `callmood serve` with [`CONFIG`] and metrics; no emotion model (not needed here).
fn server(dir: &std::path::Path) -> Server {
    server_with(dir, CONFIG, &[])
}

/// `callmood serve` with the configuration file `config`, metrics and more flags, without
/// emotion.
fn server_with(dir: &std::path::Path, config: &str, extra: &[&str]) -> Server {
    let file = dir.join("callmood.toml");
    std::fs::write(&file, config).unwrap();
    let mut args = vec!["--config", file.to_str().unwrap(), "--no-emotion"];
    args.extend_from_slice(extra);
    Server::start(true, &args)
}

/// Prints the server's stderr if the test fails while it is alive.
struct PrintOnPanic(std::sync::Arc<std::sync::Mutex<String>>);

impl Drop for PrintOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.lock().map(|s| s.clone()).unwrap_or_default();
            eprintln!("callmood serve's stderr:\n{log}");
        }
    }
}

/// A loopback address on a free port.
fn loopback() -> SocketAddr {
    ([127, 0, 0, 1], free_port()).into()
}

/// Waits until something listens on `addr` (the server binds its media listeners just
/// after the gRPC one that `Server::start` waits for).
fn wait_listening(addr: SocketAddr) {
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < end, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends each request as the bytes it is given; reads `CallEvent`s.
struct RawCodec;

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

struct EventDecoder;

impl Decoder for EventDecoder {
    type Item = CallEvent;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<CallEvent>, Status> {
        CallEvent::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = CallEvent;
    type Encoder = RawEncoder;
    type Decoder = EventDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> EventDecoder {
        EventDecoder
    }
}

/// A `StreamCall` whose requests are the byte strings sent into the returned sender;
/// its events until the call ends, and how it ended.
async fn raw_call(
    server: &Server,
    requests: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> (Vec<CallEvent>, Result<(), Status>) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = PathAndQuery::from_static("/callmood.v1.CallAnalyzer/StreamCall");
    let mut events = Vec::new();
    let mut stream = match grpc
        .streaming(
            tonic::Request::new(ReceiverStream::new(requests)),
            path,
            RawCodec,
        )
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return (events, Err(s)),
    };
    loop {
        match stream.message().await {
            Ok(Some(ev)) => events.push(ev),
            Ok(None) => return (events, Ok(())),
            Err(s) => return (events, Err(s)),
        }
    }
}

fn config_bytes(call_id: &str) -> Vec<u8> {
    proto::StreamCallRequest {
        request: Some(Request::Config(proto::CallConfig {
            call_id: call_id.into(),
            channels: vec![proto::ChannelConfig {
                channel_id: 0,
                role: proto::Role::Caller as i32,
                encoding: proto::Encoding::Mulaw as i32,
                sample_rate_hz: 8000,
                ..Default::default()
            }],
            options: Some(proto::CallOptions {
                disable_transcript: true,
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
    .encode_to_vec()
}

fn chunk_bytes(data: Vec<u8>) -> Vec<u8> {
    proto::StreamCallRequest {
        request: Some(Request::Audio(proto::AudioChunk {
            channel_id: 0,
            data,
        })),
    }
    .encode_to_vec()
}

/// A value of `/metrics` (the series written as in the exposition), 0 if absent.
fn metric(server: &Server, series: &str) -> f64 {
    let (code, body) = http_get(server.metrics.unwrap(), "/metrics").unwrap();
    assert_eq!(code, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn fault(server: &Server, name: &str) -> f64 {
    metric(
        server,
        &format!("callmood_client_faults_total{{fault=\"{name}\"}}"),
    )
}

/// The server's resident memory, MB (Linux /proc).
fn rss_mb(server: &Server) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.proc.child.id())).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// One mid-call message of the given bytes after a config and 1 s of audio: the call
/// ends with an error status and no summary.
async fn broken_mid_call(server: &Server, call_id: &str, bad: Vec<u8>) -> Status {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(config_bytes(call_id)).await.unwrap();
    tx.send(chunk_bytes(vec![0xff; 8000])).await.unwrap();
    let sender = tokio::spawn(async move {
        // Let the call take its first second before the bad message.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = tx.send(bad).await;
        // The stream stays open: the call must end because of the bad message alone.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(tx);
    });
    let (events, end) = raw_call(server, rx).await;
    sender.abort();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.event, Some(Event::Summary(_)))),
        "{call_id}: a summary after a broken stream"
    );
    end.expect_err("a broken stream ends with an error status, not OK")
}

#[tokio::test]
async fn a_chunk_over_the_limits_ends_the_call_with_an_error_and_costs_no_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let before = rss_mb(&server);

    // 60 MiB in one AudioChunk, mid-call (the black-box probe's case).
    let s = broken_mid_call(&server, "big", chunk_bytes(vec![0xff; 60 << 20])).await;
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(
        s.message()
            .contains("1048576 bytes, server.max_message_bytes"),
        "{s:?}"
    );
    // The same message first, in place of the config.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(chunk_bytes(vec![0xff; 60 << 20])).await.unwrap();
    let (_, end) = raw_call(&server, rx).await;
    drop(tx);
    let s = end.expect_err("refused");
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    let grown = rss_mb(&server) - before;
    println!("RSS: {before:.0} MB before, {grown:+.0} MB after two 60 MiB chunks");
    assert!(grown < 100.0, "RSS grew by {grown:.0} MB");
    assert_eq!(fault(&server, "message_too_large"), 2.0);

    // Under the message limit but more than 10 s of audio: 11 s of 8 kHz μ-law.
    let s = broken_mid_call(&server, "long", chunk_bytes(vec![0xff; 88_000])).await;
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(s.message().contains("at most 10000 ms"), "{s:?}");
    assert_eq!(fault(&server, "chunk_too_long"), 1.0);

    // Bytes that are no StreamCallRequest (field 2 as a varint: wrong wire type).
    let s = broken_mid_call(&server, "garbage", vec![0x10, 0x01, 0xff, 0xff]).await;
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(s.message().contains("malformed message"), "{s:?}");
    assert_eq!(fault(&server, "stream_broken"), 1.0);
    // Every call gives its slot back.
    let end = Instant::now() + Duration::from_secs(30);
    while metric(&server, "callmood_calls_in_flight{transport=\"grpc\"}") > 0.0 {
        assert!(Instant::now() < end, "calls still in flight");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_stream_that_sends_no_config_is_ended_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    // Both slots (max_calls = 2) held by streams that send nothing.
    let mut held = Vec::new();
    let mut silent = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        held.push(tx);
        silent.push(raw_call(&server, rx));
    }
    for (_, end) in futures_util::future::join_all(silent).await {
        let s = end.expect_err("no config: refused");
        assert_eq!(s.code(), Code::DeadlineExceeded, "{s:?}");
        assert!(s.message().contains("no config within 1 s"), "{s:?}");
    }
    assert_eq!(fault(&server, "config_timeout"), 2.0);
    // The slots are free again: a call that sends its config goes to its summary.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(config_bytes("after")).await.unwrap();
    tx.send(chunk_bytes(vec![0xff; 800])).await.unwrap();
    drop(tx);
    let (events, end) = raw_call(&server, rx).await;
    end.expect("a call with a config");
    assert!(events
        .iter()
        .any(|e| matches!(e.event, Some(Event::Summary(_)))));
    drop(held);
}

#[tokio::test]
async fn live_audio_far_faster_than_real_time_is_held_to_the_clock_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    // 8 s of audio in 20 ms AudioChunks, and then as RtpPackets, all at once; the server
    // lets it run 2 s ahead.
    let rtp_bytes = |k: u16| {
        proto::StreamCallRequest {
            request: Some(Request::Rtp(proto::RtpPacket {
                channel_id: 0,
                packet: rtp::build(k == 0, 0, k, u32::from(k) * 160, 9, &[0xff; 160]),
            })),
        }
        .encode_to_vec()
    };
    for (n, rtp) in [(1.0, false), (2.0, true)] {
        let (tx, rx) = tokio::sync::mpsc::channel(1000);
        tx.send(config_bytes("fast")).await.unwrap();
        for k in 0..400 {
            let m = if rtp {
                rtp_bytes(k)
            } else {
                chunk_bytes(vec![0xff; 160])
            };
            tx.send(m).await.unwrap();
        }
        drop(tx);
        let t0 = Instant::now();
        let (events, end) = raw_call(&server, rx).await;
        let took = t0.elapsed();
        end.expect("a paced call is not refused");
        let summary = events
            .iter()
            .find_map(|e| match &e.event {
                Some(Event::Summary(s)) => Some(s.clone()),
                _ => None,
            })
            .expect("summary");
        // All its audio was taken, at no more than 2 s ahead of the clock: the summary
        // cannot come before 8 - 2 = 6 s (a lower bound only: the clock cannot run slow).
        assert!(summary.duration_ms >= 7900, "rtp {rtp}: {summary:?}");
        assert!(took >= Duration::from_secs(6), "rtp {rtp}: took {took:?}");
        assert_eq!(fault(&server, "too_fast"), n);
        println!("8 s of audio sent at once (RTP: {rtp}): summary after {took:?}");
    }
}

/// An AudioSocket call of `secs` of 8 kHz silence in 20 ms frames, then a hangup:
/// `burst` writes it all at once, else one frame every 20 ms. Returns how long after its
/// first frame the server closed its side (it does so once it has read the hangup).
async fn audiosocket_call(addr: SocketAddr, uuid: [u8; 16], secs: usize, burst: bool) -> Duration {
    use audiosocket::Message as As;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&audiosocket::encode(&As::Uuid(uuid)))
        .await
        .unwrap();
    let frame = audiosocket::encode(&As::Audio(vec![0; 320]));
    let t0 = Instant::now();
    if burst {
        let all: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * secs * 50)
            .collect();
        tcp.write_all(&all).await.unwrap();
    } else {
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..secs * 50 {
            ticks.tick().await;
            tcp.write_all(&frame).await.unwrap();
        }
    }
    tcp.write_all(&audiosocket::encode(&As::Hangup))
        .await
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(tcp.read(&mut b).await.unwrap_or(0), 0, "the server closes");
    t0.elapsed()
}

/// A `/fork` WebSocket call of `secs` of 8 kHz mono silence sent at once, then a close:
/// how long after its first frame the server's close came.
async fn fork_burst(addr: SocketAddr, call_id: &str, secs: usize) -> Duration {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/fork"))
        .await
        .unwrap();
    let meta = serde_json::json!({"callId": call_id, "sampleRate": 8000, "channels": 1});
    ws.send(Ws::Text(meta.to_string().into())).await.unwrap();
    let t0 = Instant::now();
    for _ in 0..secs * 50 {
        ws.send(Ws::Binary(vec![0; 320].into())).await.unwrap();
    }
    ws.send(Ws::Close(None)).await.unwrap();
    while let Some(Ok(m)) = ws.next().await {
        if m.is_close() {
            break;
        }
    }
    t0.elapsed()
}

/// A `/twilio` Media Stream of `secs` of μ-law silence sent at once (20 ms media frames),
/// then `stop`: how long after its first frame the server's close came.
async fn twilio_burst(addr: SocketAddr, call_sid: &str, secs: usize) -> Duration {
    use base64::Engine;
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/twilio"))
        .await
        .unwrap();
    let text = |v: serde_json::Value| Ws::Text(v.to_string().into());
    ws.send(text(serde_json::json!({
        "event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
        "start": {
            "accountSid": "AC1", "streamSid": "MZ1", "callSid": call_sid,
            "tracks": ["inbound"], "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        }
    })))
    .await
    .unwrap();
    let payload = base64::engine::general_purpose::STANDARD.encode([0xffu8; 160]);
    let t0 = Instant::now();
    for i in 0..secs * 50 {
        let media = serde_json::json!({
            "event": "media", "sequenceNumber": (i + 2).to_string(), "streamSid": "MZ1",
            "media": {
                "track": "inbound", "chunk": (i + 1).to_string(),
                "timestamp": (i * 20).to_string(), "payload": payload
            }
        });
        ws.send(text(media)).await.unwrap();
    }
    ws.send(text(
        serde_json::json!({"event": "stop", "streamSid": "MZ1"}),
    ))
    .await
    .unwrap();
    while let Some(Ok(m)) = ws.next().await {
        if m.is_close() {
            break;
        }
    }
    t0.elapsed()
}

/// Opens a μ-law RTP leg of call `call_id` on the server: (channel id, where to send).
async fn open_leg(server: &Server, call_id: &str) -> (u32, SocketAddr) {
    let r = client(server.grpc)
        .await
        .open_rtp_leg(mulaw_caller_leg(call_id))
        .await
        .unwrap()
        .into_inner();
    (r.channel_id, ([127, 0, 0, 1], r.port as u16).into())
}

async fn close_leg(server: &Server, call_id: &str, channel_id: u32) {
    client(server.grpc)
        .await
        .close_leg(proto::CloseLegRequest {
            call_id: call_id.into(),
            channel_id,
        })
        .await
        .unwrap();
}

/// The other live transports are paced like `StreamCall`: 8 s of audio sent at once with
/// `max_ahead_s = 2` over AudioSocket, a WebSocket fork and a Twilio Media Stream is held
/// back (the socket is not read) and taken whole, its close and summary no sooner than
/// 6 s later; over
/// UDP, which cannot be held back, what runs more than 2 s ahead is dropped and counted.
/// A call at real time beside them is never held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiosocket_websocket_and_udp_audio_far_faster_than_real_time_is_held_to_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let (asock, ws) = (loopback(), loopback());
    let server = server_with(
        dir.path(),
        CONFIG,
        &[
            "--max-calls",
            "5",
            "--audiosocket-addr",
            &asock.to_string(),
            "--ws-addr",
            &ws.to_string(),
        ],
    );
    wait_listening(asock);
    wait_listening(ws);
    let fast_uuid = [1u8; 16];
    let healthy_uuid = [2u8; 16];
    let fast_events = watch(server.grpc, &audiosocket::uuid_string(&fast_uuid));
    let fork_events = watch(server.grpc, "fork-fast");
    let twilio_events = watch(server.grpc, "CA-fast");
    let healthy_events = watch(server.grpc, &audiosocket::uuid_string(&healthy_uuid));
    let (udp_channel, udp_to) = open_leg(&server, "udp-fast").await;
    let udp_events = watch(server.grpc, "udp-fast");
    let udp = async {
        // 8 s of 20 ms packets in 0.8 s (10x real time, not one burst, so that the
        // kernel's receive buffer loses none).
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut ticks = tokio::time::interval(Duration::from_millis(2));
        for k in 0..400u16 {
            ticks.tick().await;
            let pkt = rtp::build(k == 0, 0, k, u32::from(k) * 160, 77, &[0xff; 160]);
            socket.send_to(&pkt, udp_to).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        close_leg(&server, "udp-fast", udp_channel).await;
    };
    let t0 = Instant::now();
    let _print = PrintOnPanic(server.proc.stderr.clone());
    let (fast, fork, twilio, healthy, ()) = tokio::join!(
        audiosocket_call(asock, fast_uuid, 8, true),
        fork_burst(ws, "fork-fast", 8),
        twilio_burst(ws, "CA-fast", 8),
        audiosocket_call(asock, healthy_uuid, 3, false),
        udp,
    );
    println!(
        "8 s at once: AudioSocket closed after {fast:?}, fork after {fork:?}, \
         Twilio after {twilio:?}; 3 s at real time: {healthy:?}"
    );
    // Taken at no more than 2 s ahead of the clock: not before 8 - 2 = 6 s (a lower
    // bound only: the clock cannot run slow).
    assert!(
        fast >= Duration::from_secs(6),
        "AudioSocket closed after {fast:?}"
    );
    assert!(fork >= Duration::from_secs(6), "fork closed after {fork:?}");
    assert!(
        twilio >= Duration::from_secs(6),
        "Twilio closed after {twilio:?}"
    );
    for (what, events) in [
        ("AudioSocket", fast_events),
        ("fork", fork_events),
        ("Twilio", twilio_events),
    ] {
        let events = events.await.unwrap();
        let s = summary(&events);
        assert!(
            s.duration_ms >= 7900,
            "{what}: all its audio is taken: {s:?}"
        );
        println!("{what}: summary {:?} after the first frame", t0.elapsed());
        assert!(t0.elapsed() >= Duration::from_secs(6));
    }
    let healthy_events = healthy_events.await.unwrap();
    let s = summary(&healthy_events);
    assert!(s.duration_ms.abs_diff(3000) <= 100, "{s:?}");
    // UDP at 10x: 2 s allowance plus real time while it lasts (about 2.8 s) taken, the
    // rest (about 260 packets) dropped and counted.
    let udp_events = udp_events.await.unwrap();
    let l = leg(summary(&udp_events), udp_channel);
    println!("UDP at 10x real time: {l:?}");
    assert!(l.packets_ahead_dropped >= 200, "{l:?}");
    assert!(l.packets_received <= 180, "{l:?}");
    assert!(l.packets_received + l.packets_ahead_dropped >= 390, "{l:?}");
    assert_eq!(
        metric(
            &server,
            "callmood_packets_total{outcome=\"ahead_dropped\",transport=\"rtp-udp\"}"
        ),
        l.packets_ahead_dropped as f64
    );
    // Once per held connection or leg; never the call at real time.
    assert_eq!(fault(&server, "too_fast"), 4.0);
}

/// The black-box probe's RTP sender whose SSRC changes on every packet (22 s of speech
/// became 20 ms, no utterance, no counter): every packet is a new source whose audio
/// plays on, so the speech is transcribed and each change is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_whose_ssrc_changes_on_every_packet_keeps_its_speech_and_counts_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let (call, _, reference) = speech_call(&["0880", "0890"], 800);
    let bytes = mulaw_8k_bytes(&call);
    let (channel, to) = open_leg(&server, "ssrc-hopper").await;
    let events = watch(server.grpc, "ssrc-hopper");
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut rng = SplitMix64::new(20);
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let packets = bytes.chunks(160).count();
    for (k, chunk) in bytes.chunks(160).enumerate() {
        ticks.tick().await;
        let ssrc = rng.next_u64() as u32;
        let pkt = rtp::build(k == 0, 0, k as u16, (k * 160) as u32, ssrc, chunk);
        socket.send_to(&pkt, to).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    close_leg(&server, "ssrc-hopper", channel).await;
    let events = events.await.unwrap();
    let hyp = transcript(&events);
    let w = wer(&reference, &hyp);
    println!("{packets} packets, each a new SSRC: WER {w:.3}: {hyp}");
    assert!(!utterances(&events).is_empty(), "no utterance");
    assert!(w < 0.3, "WER {w}: {hyp}");
    let s = summary(&events);
    let l = leg(s, channel);
    println!(
        "{l:?}, call {} ms of {} ms sent",
        s.duration_ms,
        bytes.len() / 8
    );
    assert_eq!(l.ssrc_changes as usize, packets - 1, "{l:?}");
    assert_eq!((l.packets_lost, l.packets_ahead_dropped), (0, 0), "{l:?}");
    // Roughly its whole duration reached the call.
    assert!(
        s.duration_ms as usize + 200 >= bytes.len() / 8,
        "{} ms of {} ms",
        s.duration_ms,
        bytes.len() / 8
    );
    assert_eq!(
        metric(
            &server,
            "callmood_packets_total{outcome=\"ssrc_change\",transport=\"rtp-udp\"}"
        ),
        (packets - 1) as f64
    );
}

#[tokio::test]
async fn a_cancelled_recording_stops_its_recogniser_work() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    // About 4 minutes of speech: far more than the recogniser does before the cancel.
    let clip = load_wav(&librivox("0880").0);
    let mut long = Vec::new();
    while long.len() < 240 * callmood::SAMPLE_RATE as usize {
        long.extend_from_slice(&clip);
        long.extend(std::iter::repeat_n(0.0, callmood::SAMPLE_RATE as usize));
    }
    let total_s = long.len() as f64 / callmood::SAMPLE_RATE as f64;
    let wav = dir.path().join("long.wav");
    write_wav(&wav, callmood::SAMPLE_RATE, &long);
    let mut client = client(server.grpc).await;
    let t0 = Instant::now();
    let mut events = client
        .analyze_recording(proto::AnalyzeRecordingRequest {
            call_id: "cancelled".into(),
            audio: Some(proto::analyze_recording_request::Audio::Wav(
                std::fs::read(&wav).unwrap(),
            )),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    // The first full utterance: the recogniser's first window is done and the recording's
    // next utterances wait in its queue; then the client goes away.
    while let Some(ev) = events.message().await.unwrap() {
        if matches!(ev.event, Some(Event::Utterance(_))) {
            break;
        }
    }
    let done_at_cancel = metric(&server, "callmood_asr_audio_seconds_total");
    println!("first utterance after {:?}", t0.elapsed());
    drop(events);
    drop(client);
    // The server notices, takes the recording's queued jobs off the recogniser and ends
    // the call: nothing in flight, nothing queued.
    let end = Instant::now() + Duration::from_secs(40);
    while fault(&server, "listener_gone") < 1.0
        || metric(&server, "callmood_calls_in_flight{transport=\"recording\"}") > 0.0
        || metric(&server, "callmood_asr_queue_depth") > 0.0
    {
        assert!(
            Instant::now() < end,
            "still busy: listener_gone {}, recordings in flight {}, queued {}\n{}",
            fault(&server, "listener_gone"),
            metric(&server, "callmood_calls_in_flight{transport=\"recording\"}"),
            metric(&server, "callmood_asr_queue_depth"),
            server.proc.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The recogniser transcribed what it had begun, not the recording.
    let done = metric(&server, "callmood_asr_audio_seconds_total");
    println!(
        "cancelled after the first utterance ({done_at_cancel:.0} s transcribed): \
         {done:.0} s of {total_s:.0} s transcribed in all"
    );
    assert!(done < total_s / 2.0, "{done} s of {total_s} s transcribed");
}

/// About `seconds` of real speech: the librivox clips again and again, 800 ms of silence
/// after each (so each is an utterance), as 16 kHz samples.
fn speech_for(seconds: usize) -> Vec<f32> {
    let (call, _, _) = speech_call(&["0890", "0880", "0930"], 800);
    call.iter()
        .copied()
        .cycle()
        .take(seconds * callmood::SAMPLE_RATE as usize)
        .collect()
}

/// 16 kHz samples as LINEAR16 bytes.
fn linear16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|s| ((s * 32767.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect()
}

/// A `StreamCall` of one 16 kHz LINEAR16 caller channel, its audio sent in chunks of
/// `chunk_ms`, each `pause` after the one before (zero: as fast as the server reads).
async fn linear16_call(
    server: &Server,
    call_id: &str,
    samples: Vec<f32>,
    chunk_ms: usize,
    pause: Duration,
) -> Result<Vec<CallEvent>, Status> {
    let config = proto::StreamCallRequest {
        request: Some(Request::Config(proto::CallConfig {
            call_id: call_id.into(),
            channels: vec![proto::ChannelConfig {
                channel_id: 0,
                role: proto::Role::Caller as i32,
                encoding: proto::Encoding::Linear16 as i32,
                sample_rate_hz: 16_000,
                ..Default::default()
            }],
            ..Default::default()
        })),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(config).await.unwrap();
    let sender = tokio::spawn(async move {
        for chunk in samples.chunks(chunk_ms * 16) {
            let audio = proto::AudioChunk {
                channel_id: 0,
                data: linear16(chunk),
            };
            let m = proto::StreamCallRequest {
                request: Some(Request::Audio(audio)),
            };
            if tx.send(m).await.is_err() {
                return;
            }
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    });
    let events = client(server.grpc)
        .await
        .stream_call(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let end = collect(events).await;
    sender.abort();
    end
}

/// Issue 20 item 4, "the recogniser is shared fairly between calls": one client streams
/// 8 minutes of speech as fast as the server reads it (`max_ahead_s` generous enough not
/// to hold it back), flooding the recogniser with an utterance every few hundred ms of
/// wall time; beside it a healthy call speaks three sentences at real-time pace. The
/// healthy call must get every transcript, at the WER of a call alone; the flood loses
/// words (counted), not the healthy call. (`Server` runs with `--max-queue-wait 600`, so no
/// utterance expires here: what is lost is refused by, or displaced from, the full queue.)
#[tokio::test]
async fn a_call_flooding_the_recogniser_does_not_starve_a_healthy_call() {
    let dir = tempfile::tempdir().unwrap();
    // A small queue, so that the flood surely fills it whatever the machine's speed.
    let server = server_with(
        dir.path(),
        "[server]\nmax_ahead_s = 3600\n[asr]\nqueue_capacity = 8\n",
        &[],
    );
    let flood = speech_for(480);
    let (healthy, _, reference) = speech_call(&["0890", "0880", "0930"], 1200);
    let mut flood_call = Box::pin(linear16_call(&server, "flood", flood, 1000, Duration::ZERO));
    let t0 = Instant::now();
    let mut healthy_call = Box::pin(async {
        // The flood first: the healthy call's utterances come into a full queue.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let pace = Duration::from_millis(100);
        linear16_call(&server, "healthy", healthy, 100, pace).await
    });
    let mut flood_end = None;
    let healthy = loop {
        tokio::select! {
            h = &mut healthy_call => break h.expect("the healthy call ends well"),
            f = &mut flood_call, if flood_end.is_none() => flood_end = Some(f),
        }
    };
    let took = t0.elapsed();
    let dropped_all = metric(&server, "callmood_transcripts_dropped_total");
    let utterances_all = metric(&server, "callmood_utterances_total");
    let asr_audio = metric(&server, "callmood_asr_audio_seconds_total");
    // The flood, if still going, is cancelled here.
    drop(flood_call);
    let s = summary(&healthy);
    let heard = transcript(&healthy);
    let w = wer(&reference, &heard);
    println!(
        "healthy call: {took:?}, {} utterances, {} dropped, WER {w:.3}: {heard}\n\
         server meanwhile: {utterances_all} utterances, {dropped_all} transcripts dropped, \
         {asr_audio:.0} s transcribed; flood ended: {}",
        s.utterances,
        s.transcripts_dropped,
        flood_end.is_some()
    );
    assert_eq!(
        s.transcripts_dropped, 0,
        "the healthy call lost transcripts"
    );
    assert!(utterances(&healthy)
        .iter()
        .all(|u| !u.transcript.is_empty()));
    assert!(
        w < 0.15,
        "healthy call's WER {w} over the 15% bound: {heard}"
    );
    // It was a flood: the recogniser could not keep up, and the flood paid for it.
    assert!(
        dropped_all >= 1.0,
        "no transcript dropped: the flood did not overload the recogniser"
    );
}

/// `AnalyzeRecording` calls in flight are capped, per tenant (`tenant_max_recordings = 1`)
/// and in all (`max_recordings = 2`): a recording over either cap is refused
/// `RESOURCE_EXHAUSTED` before its 60 MiB are read, so the server's memory does not grow,
/// and each refusal is counted; once a call ends its slot is free again.
#[tokio::test]
async fn recordings_over_the_caps_are_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let token = |tenant: &str| format!("{tenant}-token-0123456789abcdef");
    let lines: Vec<String> = ["acme", "globex", "initech"]
        .iter()
        .map(|t| format!("{} {t}\n", token(t)))
        .collect();
    std::fs::write(&tokens, lines.concat()).unwrap();
    let config = format!(
        "[server]\nmax_recordings = 2\n[security]\nauth_tokens = {:?}\n\
         tenant_max_recordings = 1\n",
        tokens.to_str().unwrap()
    );
    let server = server_with(dir.path(), &config, &[]);
    let wav = dir.path().join("speech.wav");
    write_wav(&wav, callmood::SAMPLE_RATE, &speech_for(30));
    let speech = |call_id: &str| recording(call_id, Audio::Wav(std::fs::read(&wav).unwrap()));
    let huge = |call_id: &str| {
        let raw = proto::RawAudio {
            encoding: proto::Encoding::Linear16 as i32,
            sample_rate_hz: 16_000,
            channels: 1,
            data: vec![0x11; 60 << 20],
        };
        recording(call_id, Audio::Raw(raw))
    };
    let analyze = |tenant: &str, r: proto::AnalyzeRecordingRequest| {
        let mut req = tonic::Request::new(r);
        let bearer = format!("Bearer {}", token(tenant)).parse().unwrap();
        req.metadata_mut().insert("authorization", bearer);
        let addr = server.grpc;
        async move { client(addr).await.analyze_recording(req).await }
    };
    // acme's first recording, in flight until its events stream is dropped; read up to its
    // first transcript, so that the recogniser's buffers are in RSS before it is measured.
    let mut first = analyze("acme", speech("first"))
        .await
        .expect("acme's first recording is taken")
        .into_inner();
    while let Some(ev) = first.message().await.unwrap() {
        if matches!(ev.event, Some(Event::Utterance(_))) {
            break;
        }
    }
    let before = rss_mb(&server);
    let s = analyze("acme", huge("second"))
        .await
        .expect_err("over acme's cap");
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(
        s.message().contains(
            "this tenant has 1 recordings being analysed, its limit \
             (security.tenant_max_recordings)"
        ),
        "{s:?}"
    );
    let other = analyze("globex", speech("other"))
        .await
        .expect("another tenant's recording is taken")
        .into_inner();
    let s = analyze("initech", huge("third"))
        .await
        .expect_err("over the cap of all tenants");
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(
        s.message()
            .contains("2 recordings are being analysed, the limit (server.max_recordings)"),
        "{s:?}"
    );
    let grown = rss_mb(&server) - before;
    println!("RSS: {before:.0} MB before, {grown:+.0} MB after two refused 60 MiB recordings");
    assert!(grown < 100.0, "RSS grew by {grown:.0} MB");
    let refused = |reason: &str| {
        metric(
            &server,
            &format!("callmood_calls_refused_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(refused("tenant_recordings_in_flight"), 1.0);
    assert_eq!(refused("recordings_in_flight"), 1.0);
    // The calls go away; their slots come back, and acme's next recording goes to its
    // summary (without transcripts: the recogniser may still finish the window it began).
    drop((first, other));
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let mut after = speech("after");
        after.options = Some(proto::CallOptions {
            disable_transcript: true,
            ..Default::default()
        });
        match analyze("acme", after).await {
            Ok(events) => {
                let events = collect(events.into_inner()).await.expect("a whole call");
                assert!(summary(&events).utterances > 0);
                break;
            }
            Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => panic!("the slot did not come back: {s:?}"),
        }
    }
}

/// An `AnalyzeRecording` request of `call_id`.
fn recording(call_id: &str, audio: Audio) -> proto::AnalyzeRecordingRequest {
    proto::AnalyzeRecordingRequest {
        call_id: call_id.into(),
        audio: Some(audio),
        ..Default::default()
    }
}

/// `AsrPool::cancel_group`, what the cancel above relies on: the queued jobs of one
/// group are answered `Cancelled` unrun, those of other groups stay.
#[test]
fn the_recogniser_drops_the_queued_jobs_of_a_cancelled_call_only() {
    use callmood::asr::{AsrConfig, AsrError, AsrJob, AsrPool};
    let cfg = AsrConfig {
        workers: 1,
        threads_per_worker: 2,
        ..AsrConfig::default()
    };
    let pool = AsrPool::new(&model_path(), cfg).unwrap();
    // The only worker busy with 10 s of speech while the other jobs queue behind it.
    let speech = load_wav(&librivox("0880").0);
    let busy: Vec<f32> = speech.iter().cycle().take(10 * 16000).copied().collect();
    let (job, busy_reply) = AsrJob::with_channel(busy);
    pool.submit_blocking(job).unwrap();
    let clip: Vec<f32> = speech[..2 * 16000].to_vec();
    let mut cancelled = Vec::new();
    for _ in 0..3 {
        let (job, reply) = AsrJob::with_channel(clip.clone());
        pool.submit_blocking_in(Some(7), job).unwrap();
        cancelled.push(reply);
    }
    let (job, kept) = AsrJob::with_channel(clip.clone());
    pool.submit_blocking_in(Some(8), job).unwrap();
    assert_eq!(pool.cancel_group(Some(7)), 3);
    for reply in cancelled {
        assert!(matches!(
            reply.recv_timeout(Duration::from_secs(1)),
            Ok(Err(AsrError::Cancelled))
        ));
    }
    let words = kept
        .recv_timeout(Duration::from_secs(600))
        .unwrap()
        .unwrap();
    assert!(!words.is_empty(), "the other call's job is transcribed");
    busy_reply.recv().unwrap().unwrap();
    assert_eq!(pool.queued(), 0);
}
