//! `serve --advertise-addr`: `OpenRtpLeg` names the host to send the leg's RTP to, so that
//! behind a load balancer the RTP goes straight to the replica holding the leg. The real
//! binary told `localhost`: the answer says so, and RTP sent to that host and the port
//! reaches the call. Without the flag the bound address is named, and a host with a port
//! is refused at start.
mod common;
mod ops;

use std::time::Duration;

use callmood::core::rtp;
use callmood::proto;
use common::*;

fn leg_request(call_id: &str) -> proto::OpenRtpLegRequest {
    proto::OpenRtpLegRequest {
        call_id: call_id.into(),
        options: Some(proto::CallOptions {
            disable_transcript: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn rtp_sent_to_the_advertised_host_reaches_the_leg() {
    let server = ops::Server::start(false, &["--advertise-addr", "localhost"]);
    let mut c = client(server.grpc).await;
    let opened = c
        .open_rtp_leg(leg_request("adv-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.address, "localhost");
    // The service binds 127.0.0.1 (ops::Server's --rtp-addr): the host's IPv4 address.
    let to = tokio::net::lookup_host((opened.address.as_str(), opened.port as u16))
        .await
        .unwrap()
        .find(|a| a.is_ipv4())
        .expect("localhost has an IPv4 address");
    let events = watch(server.grpc, "adv-1");
    let speech = mulaw_8k_bytes(&load_wav(&librivox("0880").0));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let sent = speech.chunks(160).len() as u64;
    for (i, chunk) in speech.chunks(160).enumerate() {
        ticks.tick().await;
        let pkt = rtp::build(i == 0, 0, i as u16, (i * 160) as u32, 0xAD, chunk);
        socket.send_to(&pkt, to).await.unwrap();
    }
    // What is still in the socket when the leg closes is not counted: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.close_leg(proto::CloseLegRequest {
        call_id: "adv-1".into(),
        channel_id: opened.channel_id,
    })
    .await
    .unwrap();
    let events = tokio::time::timeout(Duration::from_secs(60), events)
        .await
        .expect("the call ends")
        .unwrap();
    assert!(!utterances(&events).is_empty(), "no utterance: {events:?}");
    let received = leg(summary(&events), opened.channel_id).packets_received;
    assert_eq!(received, sent, "{received} of {sent} packets arrived");
}

#[tokio::test]
async fn without_the_flag_the_bound_address_is_named() {
    // The in-process server binds RTP legs on 127.0.0.1 and is told no host.
    let (addr, _audiosocket, _stop) = start_telephony_server(4, false).await;
    let mut c = client(addr).await;
    let opened = c
        .open_rtp_leg(leg_request("adv-2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.address, "127.0.0.1");
    c.close_leg(proto::CloseLegRequest {
        call_id: "adv-2".into(),
        channel_id: opened.channel_id,
    })
    .await
    .unwrap();
}

#[test]
fn a_host_with_a_port_is_refused_at_start() {
    let (ok, _, stderr) = run(callmood().args(["serve", "--advertise-addr", "10.0.0.1:4000"]));
    assert!(!ok);
    assert!(stderr.contains("--advertise-addr"), "{stderr}");
    assert!(
        stderr.contains("neither an IP address nor a DNS name"),
        "{stderr}"
    );
}
