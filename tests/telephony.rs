//! Telephony ingest end to end on loopback: real RTP senders (ffmpeg,
//! GStreamer) to UDP legs, a lossy proxy in between, Asterisk AudioSocket
//! clients, two legs of one call on different transports, RTP inside
//! `StreamCall`, and bad input next to a healthy call.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use callmood::core::audiosocket::{self, Message};
use callmood::core::rng::SplitMix64;
use callmood::core::rtp;
use callmood::proto::{self, call_event::Event, stream_call_request::Request};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_stream::wrappers::ReceiverStream;

async fn open_leg(c: &mut Client, call_id: &str, role: proto::Role) -> (u32, u16) {
    let r = c
        .open_rtp_leg(proto::OpenRtpLegRequest {
            call_id: call_id.into(),
            role: role as i32,
            encoding: proto::Encoding::Mulaw as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (r.channel_id, r.port as u16)
}

/// The config of a `StreamCall` with one μ-law caller channel.
fn mulaw_config(call_id: &str, channel_id: u32) -> proto::StreamCallRequest {
    proto::StreamCallRequest {
        request: Some(Request::Config(proto::CallConfig {
            call_id: call_id.into(),
            channels: vec![proto::ChannelConfig {
                channel_id,
                role: proto::Role::Caller as i32,
                encoding: proto::Encoding::Mulaw as i32,
                ..Default::default()
            }],
            ..Default::default()
        })),
    }
}

/// Sends μ-law bytes as RTP from `socket` to `to`, 20 ms packets at real-time pace.
async fn send_rtp(socket: &UdpSocket, to: SocketAddr, bytes: &[u8], ssrc: u32) {
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for (i, chunk) in bytes.chunks(160).enumerate() {
        ticks.tick().await;
        let pkt = rtp::build(i == 0, 0, i as u16, (i * 160) as u32, ssrc, chunk);
        socket.send_to(&pkt, to).await.unwrap();
    }
}

/// A UDP proxy that loses, duplicates and reorders: each datagram is dropped
/// with probability `loss`, sent twice with `dup`, and held back 1-40 ms with
/// `reorder`. Returns its address and, at the end, the datagrams dropped and
/// duplicated and the payload bytes dropped (8 kHz μ-law: 8 per ms).
async fn lossy_proxy(
    to: SocketAddr,
    loss: f64,
    dup: f64,
    reorder: f64,
    quiet_end: Duration,
) -> (SocketAddr, tokio::task::JoinHandle<(u64, u64, u64)>) {
    let inbound = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = inbound.local_addr().unwrap();
    let out = std::sync::Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let task = tokio::spawn(async move {
        let mut rng = SplitMix64::new(4733);
        let (mut dropped, mut duplicated, mut dropped_bytes) = (0u64, 0u64, 0u64);
        let mut buf = vec![0u8; 2048];
        let mut started = false;
        loop {
            let r = if started {
                match tokio::time::timeout(quiet_end, inbound.recv_from(&mut buf)).await {
                    Ok(r) => r,
                    Err(_) => break, // the sender is done
                }
            } else {
                inbound.recv_from(&mut buf).await
            };
            let Ok((n, _)) = r else { break };
            started = true;
            let pkt = buf[..n].to_vec();
            let u = rng.next_f32() as f64;
            if u < loss {
                dropped += 1;
                dropped_bytes += rtp::parse(&pkt).map_or(0, |p| p.payload.len() as u64);
                continue;
            }
            let copies = if (rng.next_f32() as f64) < dup {
                duplicated += 1;
                2
            } else {
                1
            };
            let delay = if (rng.next_f32() as f64) < reorder {
                Duration::from_millis(1 + ((rng.next_f32() as f64) * 39.0) as u64)
            } else {
                Duration::ZERO
            };
            let out = out.clone();
            tokio::spawn(async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                for _ in 0..copies {
                    let _ = out.send_to(&pkt, to).await;
                }
            });
        }
        (dropped, duplicated, dropped_bytes)
    });
    (addr, task)
}

/// The speech call of three clips as an 8 kHz 16-bit WAV for the senders.
fn call_wav(dir: &std::path::Path) -> (std::path::PathBuf, Vec<(u32, u32)>, String) {
    let (call, spans, reference) = speech_call(&["0890", "0880", "0930"], 1200);
    let wav = dir.join("call.wav");
    write_wav(&wav, 16_000, &call);
    (wav, spans, reference)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rtp_senders_clean_and_through_a_lossy_proxy() {
    let (addr, _, _stop) = start_telephony_server(8, true).await;
    let dir = tempfile::tempdir().unwrap();
    let (wav, spans, reference) = call_wav(dir.path());
    let mut c = client(addr).await;
    let t0 = std::time::Instant::now();

    // Clean: ffmpeg's RTP muxer, G.711 μ-law, 20 ms packets, real time.
    let (_, clean_port) = open_leg(&mut c, "ffmpeg-clean", proto::Role::Caller).await;
    let clean_events = watch(addr, "ffmpeg-clean");
    let ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-i"])
        .arg(&wav)
        .args(["-ac", "1", "-ar", "8000", "-c:a", "pcm_mulaw"])
        .args(["-payload_type", "0", "-max_packet_size", "172", "-f", "rtp"])
        .arg(format!("rtp://127.0.0.1:{clean_port}"))
        .stdout(std::process::Stdio::null())
        .status();

    // Lossy: GStreamer's rtppcmupay through a proxy that loses 5%, duplicates
    // 2% and holds back 10% by up to 40 ms (the jitter buffer is 80 ms deep).
    let (lossy_ch, lossy_port) = open_leg(&mut c, "gst-lossy", proto::Role::Caller).await;
    let lossy_events = watch(addr, "gst-lossy");
    let (proxy, proxy_task) = lossy_proxy(
        SocketAddr::from(([127, 0, 0, 1], lossy_port)),
        0.05,
        0.02,
        0.10,
        Duration::from_secs(1),
    )
    .await;
    let gst = tokio::process::Command::new("gst-launch-1.0")
        .args(["-q", "filesrc"])
        .arg(format!("location={}", wav.display()))
        .args([
            "!",
            "wavparse",
            "!",
            "audioconvert",
            "!",
            "audioresample",
            "!",
        ])
        .args(["audio/x-raw,rate=8000,channels=1", "!", "mulawenc", "!"])
        .args(["rtppcmupay", "mtu=172", "!", "udpsink", "host=127.0.0.1"])
        .arg(format!("port={}", proxy.port()))
        .stdout(std::process::Stdio::null())
        .status();

    let (ffmpeg, gst) = tokio::join!(ffmpeg, gst);
    assert!(ffmpeg
        .expect("ffmpeg runs (scripts/setup installs it)")
        .success());
    assert!(gst
        .expect("gst-launch-1.0 runs (scripts/setup installs it)")
        .success());
    let (dropped, duplicated, dropped_bytes) = proxy_task.await.unwrap();
    eprintln!("senders done at {:?}", t0.elapsed());
    // The senders are done: close the legs. A leg whose sender finished more
    // than the idle timeout (3 s here) before the other's has been ended by
    // it already (on a loaded machine GStreamer can trail ffmpeg by that
    // much), and CloseLeg then says so: either way the leg ends whole.
    for id in ["ffmpeg-clean", "gst-lossy"] {
        let ch = if id == "gst-lossy" { lossy_ch } else { 0 };
        let closed = c
            .close_leg(proto::CloseLegRequest {
                call_id: id.into(),
                channel_id: ch,
            })
            .await;
        if let Err(e) = closed {
            assert_eq!(e.code(), tonic::Code::NotFound, "{id}: {e}");
            eprintln!("{id}: already ended by the idle timeout");
        }
    }
    let clean = clean_events.await.unwrap();
    let lossy = lossy_events.await.unwrap();
    eprintln!("events done at {:?}", t0.elapsed());

    let (hc, hl) = (transcript(&clean), transcript(&lossy));
    let (wc, wl) = (wer(&reference, &hc), wer(&reference, &hl));
    eprintln!("clean WER {wc:.3}: {hc}\nlossy WER {wl:.3}: {hl}");
    assert!(wc < 0.15, "clean WER {wc}: {hc}");
    assert!(wl < 0.25, "lossy WER {wl}: {hl}");

    let (sc, sl) = (summary(&clean), summary(&lossy));
    let lc = leg(sc, 0);
    assert_eq!(lc.transport, "rtp-udp");
    assert_eq!(
        (lc.packets_lost, lc.packets_late, lc.packets_malformed),
        (0, 0, 0)
    );
    let ll = leg(sl, lossy_ch);
    eprintln!("lossy leg: {ll:?}; proxy dropped {dropped}, duplicated {duplicated}");
    assert!(ll.packets_received > 500, "{ll:?}");
    // A drop at the very end is invisible to the receiver.
    assert!(
        ll.packets_lost <= dropped && ll.packets_lost + 1 >= dropped,
        "{ll:?} dropped {dropped}"
    );
    assert_eq!(ll.packets_duplicate, duplicated, "{ll:?}");
    assert_eq!(
        ll.packets_late, 0,
        "40 ms of reordering fits the 80 ms buffer"
    );
    // Lost audio is concealed over its exact length (GStreamer's
    // packets are not all 20 ms long).
    assert!(
        (ll.concealed_ms as u64).abs_diff(dropped_bytes / 8) <= 1,
        "{} ms concealed, {dropped_bytes} bytes dropped",
        ll.concealed_ms
    );

    // Timings: utterance by utterance, the lossy call stays within 100 ms of
    // the clean one, and both lie on the speech.
    let (uc, ul) = (utterances(&clean), utterances(&lossy));
    assert_eq!(uc.len(), ul.len(), "same utterances clean and lossy");
    for (a, b) in uc.iter().zip(&ul) {
        eprintln!(
            "utterance clean {}..{} lossy {}..{} ms",
            a.start_ms, a.end_ms, b.start_ms, b.end_ms
        );
        assert!(
            a.start_ms.abs_diff(b.start_ms) <= 100 && a.end_ms.abs_diff(b.end_ms) <= 100,
            "clean {}..{} vs lossy {}..{}",
            a.start_ms,
            a.end_ms,
            b.start_ms,
            b.end_ms
        );
    }
    for (s, _) in &spans {
        assert!(
            uc.iter().any(|u| u.start_ms.abs_diff(*s) < 400),
            "no utterance starts near {s} ms: {:?}",
            uc.iter()
                .map(|u| (u.start_ms, u.end_ms))
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiosocket_client_streams_frames_presses_a_key_and_hangs_up() {
    let (addr, asock, _stop) = start_telephony_server(8, true).await;
    let (call, _, reference) = speech_call(&["0880", "0930"], 800);
    let pcm = pcm_8k(&call);
    let uuid: [u8; 16] = *b"\x6b\xa7\xb8\x10\x9d\xad\x11\xd1\x80\xb4\x00\xc0\x4f\xd4\x30\xc8";
    let call_id = audiosocket::uuid_string(&uuid);
    assert_eq!(call_id, "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    // Watch first: WatchCall waits for the call to appear.
    let events = watch(addr, &call_id);
    let mut tcp = TcpStream::connect(asock).await.unwrap();
    tcp.write_all(&audiosocket::encode(&Message::Uuid(uuid)))
        .await
        .unwrap();
    let mut ticks = tokio::time::interval(Duration::from_millis(5));
    for (i, frame) in pcm.chunks(160).enumerate() {
        ticks.tick().await; // 4x real time
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        tcp.write_all(&audiosocket::encode(&Message::Audio(bytes)))
            .await
            .unwrap();
        if i == 100 {
            tcp.write_all(&audiosocket::encode(&Message::Dtmf('7')))
                .await
                .unwrap();
        }
    }
    tcp.write_all(&audiosocket::encode(&Message::Hangup))
        .await
        .unwrap();
    let events = events.await.unwrap();
    assert!(events.iter().all(|e| e.call_id == call_id));
    let hyp = transcript(&events);
    let w = wer(&reference, &hyp);
    eprintln!("AudioSocket WER {w:.3}: {hyp}");
    assert!(w < 0.15, "WER {w}: {hyp}");
    let dtmf = dtmf_events(&events);
    assert_eq!(dtmf.len(), 1);
    // A digit key is redacted like a spoken number (`security.redact_all_numbers`, on by
    // default): the event says when a key was pressed, not which.
    assert_eq!(dtmf[0].digit, "[NUMBER]");
    assert!(dtmf[0].start_ms.abs_diff(2000) <= 40, "{:?}", dtmf[0]);
    let s = summary(&events);
    let l = leg(s, 0);
    assert_eq!(l.transport, "audiosocket");
    assert_eq!(l.role, proto::Role::Caller as i32);
    assert_eq!(l.packets_received as usize, pcm.len().div_ceil(160));
    assert_eq!(l.dtmf_events, 1);
    assert!(s.duration_ms.abs_diff(pcm.len() as u32 / 8) < 50, "{s:?}");
    // The server closed its side after the hangup.
    let mut b = [0u8; 1];
    assert_eq!(tcp.read(&mut b).await.unwrap_or(0), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legs_on_different_transports_join_into_one_call() {
    let (addr, asock, _stop) = start_telephony_server(8, false).await;
    let (caller_audio, caller_spans, _) = speech_call(&["0890"], 0);
    let (agent_audio, _, _) = speech_call(&["0880"], 0);
    // The agent answers 700 ms after the caller stops.
    let gap = 700 * 8;
    let caller = mulaw_8k_bytes(&caller_audio);
    let mut agent = vec![0i16; caller.len() + gap];
    agent.extend(pcm_8k(&agent_audio));
    let mut caller = caller;
    caller.resize(agent.len(), callmood::core::codec::g711::ulaw_encode(0));

    let uuid = [0x42u8; 16];
    let call_id = audiosocket::uuid_string(&uuid);
    let mut c = client(addr).await;
    let (caller_ch, port) = open_leg(&mut c, &call_id, proto::Role::Caller).await;
    assert_eq!(caller_ch, 0);
    let events = watch(addr, &call_id);
    let mut tcp = TcpStream::connect(asock).await.unwrap();
    tcp.write_all(&audiosocket::encode(&Message::Uuid(uuid)))
        .await
        .unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    // Both legs in real time, 20 ms at a time, as a phone system sends them.
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for (i, (c8, a8)) in caller.chunks(160).zip(agent.chunks(160)).enumerate() {
        ticks.tick().await;
        let pkt = rtp::build(i == 0, 0, i as u16, (i * 160) as u32, 0xCA11, c8);
        udp.send_to(&pkt, to).await.unwrap();
        let bytes: Vec<u8> = a8.iter().flat_map(|s| s.to_le_bytes()).collect();
        tcp.write_all(&audiosocket::encode(&Message::Audio(bytes)))
            .await
            .unwrap();
    }
    tcp.write_all(&audiosocket::encode(&Message::Hangup))
        .await
        .unwrap();
    c.close_leg(proto::CloseLegRequest {
        call_id: call_id.clone(),
        channel_id: 0,
    })
    .await
    .unwrap();
    let events = events.await.unwrap();
    let us = utterances(&events);
    let caller_u: Vec<_> = us.iter().filter(|u| u.channel_id == 0).collect();
    let agent_u: Vec<_> = us.iter().filter(|u| u.channel_id == 1).collect();
    assert!(!caller_u.is_empty() && !agent_u.is_empty(), "{us:?}");
    assert_eq!(
        agent_u[0].role,
        proto::Role::Agent as i32,
        "the leg the call lacked"
    );
    assert!(caller_u[0].start_ms.abs_diff(caller_spans[0].0) < 400);
    let latency = agent_u[0]
        .prosody
        .as_ref()
        .unwrap()
        .response_latency_ms
        .expect("latency across transports");
    eprintln!("response latency across legs: {latency} ms");
    assert!((latency - 700).abs() <= 250, "{latency}");
    let s = summary(&events);
    assert_eq!(s.legs.len(), 2);
    assert_eq!(leg(s, 0).transport, "rtp-udp");
    assert_eq!(leg(s, 1).transport, "audiosocket");
    assert_eq!(s.roles.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_packets_inside_stream_call_go_through_the_jitter_buffer() {
    let (addr, _stop) = start_server(8, false).await;
    let (call, spans, _) = speech_call(&["0890"], 600);
    let bytes = mulaw_8k_bytes(&call);
    // Packets with a DTMF '#' after the speech, then shuffled, 5% lost, some twice.
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut seq = 0u16;
    for (i, chunk) in bytes.chunks(160).enumerate() {
        packets.push(rtp::build(false, 0, seq, (i * 160) as u32, 77, chunk));
        seq = seq.wrapping_add(1);
    }
    let ts = (bytes.len() as u32 / 160) * 160;
    for (d, end) in [(160u16, false), (320, false), (400, true), (400, true)] {
        let [hi, lo] = d.to_be_bytes();
        let flags = if end { 0x8a } else { 0x0a };
        packets.push(rtp::build(false, 101, seq, ts, 77, &[11, flags, hi, lo]));
        seq = seq.wrapping_add(1);
    }
    let mut rng = SplitMix64::new(3550);
    let mut sent = Vec::new();
    let mut dropped = 0;
    for (i, p) in packets.iter().enumerate() {
        // Keep the last audio packets and the DTMF: a drop at the end is invisible.
        if i > 5 && i + 10 < packets.len() && (rng.next_f32() as f64) < 0.05 {
            dropped += 1;
            continue;
        }
        sent.push(p.clone());
        if (rng.next_f32() as f64) < 0.02 {
            sent.push(p.clone());
        }
    }
    // Reorder: swap neighbours here and there (20-40 ms late).
    for i in (1..sent.len()).step_by(9) {
        sent.swap(i - 1, i);
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tx.send(mulaw_config("grpc-rtp", 3)).await.unwrap();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(10));
        for p in sent {
            ticks.tick().await; // 2x real time
            let m = proto::StreamCallRequest {
                request: Some(Request::Rtp(proto::RtpPacket {
                    channel_id: 3,
                    packet: p,
                })),
            };
            if tx.send(m).await.is_err() {
                return;
            }
        }
    });
    let s = client(addr)
        .await
        .stream_call(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let events = collect(s).await.unwrap();
    let us = utterances(&events);
    assert!(!us.is_empty());
    assert!(us[0].start_ms.abs_diff(spans[0].0) < 400, "{:?}", us[0]);
    let dtmf = events
        .iter()
        .find_map(|e| match &e.event {
            Some(Event::Dtmf(d)) => Some(d),
            _ => None,
        })
        .expect("a DTMF event");
    assert_eq!(dtmf.digit, "#");
    assert_eq!(dtmf.duration_ms, 50);
    assert!(
        dtmf.start_ms.abs_diff(ts / 8) <= 20,
        "{dtmf:?} vs {} ms",
        ts / 8
    );
    let s = summary(&events);
    let l = leg(s, 3);
    assert_eq!(l.transport, "grpc-rtp");
    assert_eq!(l.packets_lost, dropped, "{l:?}");
    assert!(l.packets_duplicate >= 1, "{l:?}");
    assert_eq!(l.dtmf_events, 1);
    // Audio time stays true: lost packets are concealed, not skipped.
    assert!(
        s.duration_ms.abs_diff(bytes.len() as u32 / 8) <= 30,
        "{s:?}"
    );

    // A channel takes one kind of input.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(mulaw_config("mixed", 1)).await.unwrap();
    tx.send(proto::StreamCallRequest {
        request: Some(Request::Audio(proto::AudioChunk {
            channel_id: 1,
            data: vec![0xff; 160],
        })),
    })
    .await
    .unwrap();
    tx.send(proto::StreamCallRequest {
        request: Some(Request::Rtp(proto::RtpPacket {
            channel_id: 1,
            packet: packets[0].clone(),
        })),
    })
    .await
    .unwrap();
    let s = client(addr)
        .await
        .stream_call(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let err = collect(s).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("cannot also take RTP"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dropped_counted_or_timed_out_and_a_healthy_call_completes() {
    let (addr, asock, _stop) = start_telephony_server(8, false).await;
    let (call, spans, _) = speech_call(&["0890"], 500);
    let bytes = mulaw_8k_bytes(&call);
    let mut c = client(addr).await;

    // The healthy call, and a leg whose sender stops mid-word.
    let (_, healthy_port) = open_leg(&mut c, "healthy", proto::Role::Caller).await;
    let healthy = watch(addr, "healthy");
    let (_, stopper_port) = open_leg(&mut c, "stops-mid-word", proto::Role::Caller).await;
    let stopper = watch(addr, "stops-mid-word");
    let sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let stopper_sender = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let healthy_to = SocketAddr::from(([127, 0, 0, 1], healthy_port));
    let stopper_to = SocketAddr::from(([127, 0, 0, 1], stopper_port));

    let mut c2 = c.clone();
    let send_healthy = async {
        send_rtp(&sender, healthy_to, &bytes, 1).await;
        c2.close_leg(proto::CloseLegRequest {
            call_id: "healthy".into(),
            channel_id: 0,
        })
        .await
        .unwrap();
    };
    // Half of the speech, then nothing: the leg's idle timeout (3 s) ends it.
    let send_stopper = send_rtp(&stopper_sender, stopper_to, &bytes[..bytes.len() / 3], 2);
    let attack = async {
        let garbage = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut rng = SplitMix64::new(7);
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..10u32 {
            // Garbage datagrams from the healthy leg's own sender address.
            let junk: Vec<u8> = (0..(i * 7 % 40)).map(|_| rng.next_u64() as u8).collect();
            sender.send_to(&junk, healthy_to).await.unwrap();
            // Video on the audio leg: an unknown payload type.
            if i < 5 {
                let pkt = rtp::build(false, 31, 60000 + i as u16, 0, 1, &[0u8; 100]);
                sender.send_to(&pkt, healthy_to).await.unwrap();
            }
            // Someone else: dropped as foreign.
            let pkt = rtp::build(false, 0, 5, 800, 9, &[0u8; 160]);
            garbage.send_to(&pkt, healthy_to).await.unwrap();
            // A port nobody opened.
            garbage
                .send_to(&pkt, SocketAddr::from(([127, 0, 0, 1], 41999)))
                .await
                .unwrap();
        }
        // AudioSocket: a header and nothing more, before and after a UUID.
        let mut no_uuid = TcpStream::connect(asock).await.unwrap();
        no_uuid.write_all(&[0x10, 0x01, 0x40]).await.unwrap();
        let mut half = TcpStream::connect(asock).await.unwrap();
        half.write_all(&audiosocket::encode(&Message::Uuid([9; 16])))
            .await
            .unwrap();
        half.write_all(&[0x10, 0x01, 0x40, 1, 2]).await.unwrap();
        let half_events = watch(addr, &audiosocket::uuid_string(&[9; 16]));
        let t0 = tokio::time::Instant::now();
        let mut b = [0u8; 8];
        assert_eq!(
            half.read(&mut b).await.unwrap_or(0),
            0,
            "closed by the server"
        );
        let half_closed = t0.elapsed();
        assert_eq!(
            no_uuid.read(&mut b).await.unwrap_or(0),
            0,
            "closed by the server"
        );
        let no_uuid_closed = t0.elapsed();
        (half_events.await.unwrap(), half_closed, no_uuid_closed)
    };
    let (_, _, (half_events, half_closed, no_uuid_closed)) =
        tokio::join!(send_healthy, send_stopper, attack);
    // Closing a leg twice, or one that never was: NOT_FOUND.
    for call_id in ["healthy", "nobody"] {
        let e = c
            .close_leg(proto::CloseLegRequest {
                call_id: call_id.into(),
                channel_id: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
    }

    let healthy = healthy.await.unwrap();
    let l = healthy_leg(&healthy, spans[0].0);
    eprintln!("healthy leg under attack: {l:?}");
    assert_eq!(l.packets_malformed, 10, "{l:?}");
    assert_eq!(l.packets_unknown_payload_type, 5, "{l:?}");
    assert_eq!(l.packets_foreign_source, 10, "{l:?}");
    assert_eq!(l.packets_lost, 0, "{l:?}");

    let stopper = stopper.await.unwrap();
    let s = summary(&stopper);
    assert!(s.utterances >= 1, "the cut-off word is closed: {s:?}");
    assert!(
        s.duration_ms.abs_diff(bytes.len() as u32 / 3 / 8) < 100,
        "{s:?}"
    );

    let hs = summary(&half_events);
    assert_eq!(leg(hs, 0).packets_malformed, 1, "{hs:?}");
    assert!(half_closed >= Duration::from_secs(2), "{half_closed:?}");
    assert!(
        no_uuid_closed >= Duration::from_secs(9) && no_uuid_closed < Duration::from_secs(15),
        "{no_uuid_closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leg_requests_are_checked() {
    let (addr, _stop) = start_server(8, false).await;
    let mut c = client(addr).await;
    let e = c
        .open_rtp_leg(proto::OpenRtpLegRequest {
            call_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("call_id"), "{e}");
    let e = c
        .open_rtp_leg(proto::OpenRtpLegRequest {
            call_id: "x".into(),
            encoding: proto::Encoding::Linear16 as i32,
            sample_rate_hz: 16000,
            payload_type: 11,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("payload type 11"), "{e}");
    let e = c
        .watch_call(proto::WatchCallRequest {
            call_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // Ports come from the range, even (RTCP convention: RTP even, RTCP odd).
    let (_, p1) = open_leg(&mut c, "ports", proto::Role::Caller).await;
    let (ch, p2) = open_leg(&mut c, "ports", proto::Role::Agent).await;
    assert_eq!(ch, 1);
    for p in [p1, p2] {
        assert!((41000..=41999).contains(&p) && p % 2 == 0, "{p}");
    }
    assert_ne!(p1, p2);
}

/// `OpenRtpLeg.allow_from`: the leg takes RTP from the networks it names only, on a server
/// that allows every sender, so a stranger who sends to the port first is not latched in
/// the PBX's place (dropped and counted as not allowed); a malformed entry is refused by
/// its index. Real UDP on loopback: the leg names 127.0.0.1, a socket on 127.0.0.2 sends
/// first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_takes_rtp_only_from_the_networks_it_names() {
    let srv = start_servers_allowing(8, None, None, Vec::new()).await;
    let mut c = client(srv.grpc).await;
    let request = |allow: &[&str]| proto::OpenRtpLegRequest {
        call_id: "named-source".into(),
        role: proto::Role::Caller as i32,
        encoding: proto::Encoding::Mulaw as i32,
        allow_from: allow.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    };
    let e = c
        .open_rtp_leg(request(&["127.0.0.1", "10.1.2.3/8"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().starts_with("allow_from[1]: \"10.1.2.3/8\""),
        "{e:?}"
    );
    let long = "x".repeat(10_000);
    let e = c.open_rtp_leg(request(&[&long])).await.unwrap_err();
    assert!(e.message().len() < 200, "{}", e.message().len());
    let port = c
        .open_rtp_leg(request(&["127.0.0.1"]))
        .await
        .unwrap()
        .into_inner()
        .port as u16;
    outsider_first_is_kept_out(&mut c, srv.grpc, "named-source", port).await;
}

/// `--rtp-allow`: datagrams from outside the allowed networks are dropped and counted, and
/// never latched onto; the allowed sender's audio goes through. Real UDP on loopback: the
/// leg allows 127.0.0.1 only, a socket bound to 127.0.0.2 sends first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_from_outside_the_allowed_networks_is_dropped_and_counted() {
    let allow = vec!["127.0.0.1/32".parse().unwrap()];
    let srv = start_servers_allowing(8, None, None, allow).await;
    let mut c = client(srv.grpc).await;
    let (_, port) = open_leg(&mut c, "allow-list", proto::Role::Caller).await;
    outsider_first_is_kept_out(&mut c, srv.grpc, "allow-list", port).await;
}

/// Sends 10 valid RTP packets to the leg on `port` of `call_id` from 127.0.0.2, then one
/// second of μ-law silence from 127.0.0.1, closes the leg and checks that the outsider's
/// packets were dropped as not allowed (never latched onto: were they, the insider would be
/// foreign) and the insider's all received.
async fn outsider_first_is_kept_out(c: &mut Client, grpc: SocketAddr, call_id: &str, port: u16) {
    let events = watch(grpc, call_id);
    let to = SocketAddr::from(([127, 0, 0, 1], port));
    let outsider = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let insider = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..10u16 {
        let pkt = rtp::build(i == 0, 0, 500 + i, 160 * u32::from(i), 77, &[0xff; 160]);
        outsider.send_to(&pkt, to).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_rtp(&insider, to, &[0xff; 8000], 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.close_leg(proto::CloseLegRequest {
        call_id: call_id.into(),
        channel_id: 0,
    })
    .await
    .unwrap();
    let events = events.await.unwrap();
    let l = leg(summary(&events), 0);
    assert_eq!(l.packets_not_allowed, 10, "{l:?}");
    assert_eq!(l.packets_foreign_source, 0, "{l:?}");
    assert_eq!(l.packets_received, 50, "{l:?}");
}
