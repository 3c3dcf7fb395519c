//! Packing across calls scoped by tenant, through the service (issue 19): the real server on
//! loopback with two tenants' tokens, the real Whisper model, a `StreamCall` and an RTP leg
//! streamed at once. Its own test binary: it loads a second recogniser (packing across calls
//! on), which must not run beside another test's Whisper runs on a 2-core machine.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use callmood::core::rtp;
use callmood::proto::{self, stream_call_request::Request};
use common::*;
use tokio::net::UdpSocket;
use tokio_stream::wrappers::ReceiverStream;

/// The config of a `StreamCall` with one 8 kHz μ-law caller channel.
fn mulaw_caller_call(call_id: &str, channel_id: u32) -> proto::StreamCallRequest {
    let channel = proto::ChannelConfig {
        channel_id,
        role: proto::Role::Caller as i32,
        encoding: proto::Encoding::Mulaw as i32,
        sample_rate_hz: 8000,
        ..Default::default()
    };
    let config = proto::CallConfig {
        call_id: call_id.into(),
        channels: vec![channel],
        ..Default::default()
    };
    proto::StreamCallRequest {
        request: Some(Request::Config(config)),
    }
}

/// Issue 19: packing across calls is scoped by tenant through the service, on both ways
/// in. With `asr.pack_across_calls` on and two tenants' tokens, a `StreamCall` of tenant
/// acme and an RTP leg (`OpenRtpLeg`) of acme, streamed at once ten times faster than
/// real time, share Whisper windows (so the setting packs them, and both ways in hand the
/// recogniser the same scope for one tenant); the same two calls with the RTP leg opened
/// by tenant globex never share one (so the scope is the tenant, not one for everybody).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_calls_never_share_a_window() {
    const ACME: &str = "acme-0123456789abcdef";
    const GLOBEX: &str = "globex-0123456789abcdef";
    let cfg = callmood::asr::AsrConfig {
        workers: 1,
        threads_per_worker: 2,
        max_queue_wait_s: 600.0,
        pack_across_calls: true,
        ..Default::default()
    };
    let pool = std::sync::Arc::new(callmood::asr::AsrPool::new(&model_path(), cfg).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{ACME} acme\n{GLOBEX} globex\n")).unwrap();
    let security = callmood::server::security::SecurityConfig {
        auth_tokens: Some(tokens),
        ..Default::default()
    };
    let s = start_servers_secured(8, Some(pool.clone()), None, Vec::new(), security).await;
    let ids = ["0890", "0880", "0930", "0880", "0890", "0930"];
    let (call, _, _) = speech_call(&ids, 800);
    let bytes = mulaw_8k_bytes(&call);

    for (round, rtp_token, same_tenant) in [(0, ACME, true), (1, GLOBEX, false)] {
        let before = pool.stats();
        // The RTP leg of `rtp_token`'s tenant, watched by that tenant.
        let mut rtp_client = token_client(s.grpc, Some(rtp_token)).await;
        let rtp_call = format!("rtp-{round}");
        let opened = rtp_client
            .open_rtp_leg(mulaw_caller_leg(&rtp_call))
            .await
            .unwrap()
            .into_inner();
        let watcher = rtp_client
            .watch_call(proto::WatchCallRequest {
                call_id: rtp_call.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let rtp_events = tokio::spawn(async move { collect(watcher).await.unwrap() });
        let to = SocketAddr::from(([127, 0, 0, 1], opened.port as u16));
        let rtp_bytes = bytes.clone();
        let rtp_sender = tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut ticks = tokio::time::interval(Duration::from_millis(2));
            for (i, chunk) in rtp_bytes.chunks(160).enumerate() {
                ticks.tick().await;
                let pkt = rtp::build(i == 0, 0, i as u16, (i * 160) as u32, 7, chunk);
                socket.send_to(&pkt, to).await.unwrap();
            }
        });

        // The `StreamCall` of acme, at the same pace.
        let grpc_call = format!("grpc-{round}");
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tx.send(mulaw_caller_call(&grpc_call, 1)).await.unwrap();
        let grpc_bytes = bytes.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(2));
            for chunk in grpc_bytes.chunks(160) {
                ticks.tick().await;
                let audio = Request::Audio(proto::AudioChunk {
                    channel_id: 1,
                    data: chunk.to_vec(),
                });
                let req = proto::StreamCallRequest {
                    request: Some(audio),
                };
                if tx.send(req).await.is_err() {
                    break;
                }
            }
        });
        let mut acme = token_client(s.grpc, Some(ACME)).await;
        let reply = acme.stream_call(ReceiverStream::new(rx)).await.unwrap();
        let grpc_events = collect(reply.into_inner()).await.unwrap();
        rtp_sender.await.unwrap();
        // The leg ends 3 s after its last packet (the test server's RTP idle timeout).
        let rtp_events = tokio::time::timeout(Duration::from_secs(120), rtp_events)
            .await
            .expect("the RTP leg's call ends")
            .unwrap();

        let after = pool.stats();
        let windows = after.windows - before.windows;
        let shared = after.shared_windows - before.shared_windows;
        for (what, events) in [("gRPC", &grpc_events), ("RTP", &rtp_events)] {
            let words = transcript(events);
            assert!(
                words.split_whitespace().count() >= 20,
                "round {round}: the {what} call must be transcribed, got {words:?}"
            );
        }
        if same_tenant {
            assert!(
                shared > 0,
                "two calls of one tenant at once must share windows ({windows} windows)"
            );
        } else {
            assert!(windows >= 2, "{windows} windows");
            assert_eq!(
                shared, 0,
                "calls of two tenants shared {shared} of {windows} windows"
            );
        }
    }
}
