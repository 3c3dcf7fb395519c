//! WebSocket media connectors end to end on loopback, with clients written from the
//! platforms' protocol documents: Twilio Media Streams (`/twilio`) and the audio fork of
//! FreeSWITCH `mod_audio_fork` / jambonz `listen` (`/fork`), each replaying real speech
//! at real-time pace, caller and agent on two tracks; then bad input on every path next
//! to a healthy call, and the call cap.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use callmood::core::codec::g711;
use callmood::proto::{self, call_event::Event, CallEvent};
use callmood::server::ws::WsConfig;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(ws: SocketAddr, path: &str) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{ws}{path}"))
        .await
        .unwrap()
        .0
}

/// Twilio's `stop` for call `call_sid`.
fn twilio_stop(call_sid: &str) -> Value {
    json!({"event": "stop", "streamSid": "MZ0001",
        "stop": {"accountSid": "AC0001", "callSid": call_sid}})
}

/// Servers without a recogniser whose WebSocket listener has `cfg`, and its address.
async fn ws_servers(cfg: WsConfig) -> (Servers, SocketAddr) {
    let srv = start_servers(8, None, Some(cfg)).await;
    let ws = srv.ws.unwrap();
    (srv, ws)
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// Twilio's `start` for a call with both tracks.
fn twilio_start(call_sid: &str) -> Value {
    json!({
        "event": "start", "sequenceNumber": "1", "streamSid": "MZ0001",
        "start": {
            "accountSid": "AC0001", "streamSid": "MZ0001", "callSid": call_sid,
            "tracks": ["inbound", "outbound"], "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
        }
    })
}

/// Twilio's `media` message: numbers as strings, payload base64 μ-law.
fn twilio_media(track: &str, chunk: u64, timestamp_ms: u64, payload: &[u8]) -> Value {
    json!({
        "event": "media", "sequenceNumber": (chunk * 2).to_string(), "streamSid": "MZ0001",
        "media": {
            "track": track, "chunk": chunk.to_string(), "timestamp": timestamp_ms.to_string(),
            "payload": base64::engine::general_purpose::STANDARD.encode(payload)
        }
    })
}

/// A two-party call: the caller says a clip, and the agent answers `GAP_MS` after it
/// with the same clip, as two 8 kHz tracks of equal length. The same words on both
/// tracks make the alignment check exact: the agent's utterance must start where the
/// caller's did, moved by the agent's offset on the track.
struct TwoParty {
    caller: Vec<i16>,
    agent: Vec<i16>,
    reference: String,
    /// Where the agent's clip begins on its track, ms.
    agent_offset_ms: u32,
}

/// Silence between the caller's clip and the agent's.
const GAP_MS: u32 = 700;

fn two_party(clip: &str) -> TwoParty {
    let (c, _, text) = speech_call(&[clip], 0);
    let (a, _, _) = speech_call(&[clip], 1500);
    let c8 = pcm_8k(&c);
    let agent_offset_ms = c8.len() as u32 / 8 + GAP_MS;
    let mut agent = vec![0i16; agent_offset_ms as usize * 8];
    agent.extend(pcm_8k(&a));
    let mut caller = c8;
    caller.resize(agent.len(), 0);
    TwoParty {
        caller,
        agent,
        reference: format!("{text} {text}"),
        agent_offset_ms,
    }
}

/// Checks that the two tracks stayed aligned (the agent's utterance starts where the
/// caller's did plus the agent's offset, within 150 ms: the endpointer of the agent's
/// track, settled on the silence before, opens up to ~100 ms earlier on the same words
/// than the caller's at the cold start of the call) and returns the agent's response
/// latency.
fn check_two_tracks(call: &TwoParty, events: &[CallEvent]) -> i32 {
    let us = utterances(events);
    let first = |ch: u32| {
        us.iter()
            .find(|u| u.channel_id == ch)
            .unwrap_or_else(|| panic!("an utterance on channel {ch}: {us:?}"))
    };
    let (caller, agent) = (first(0), first(1));
    assert_eq!(caller.role, proto::Role::Caller as i32);
    assert_eq!(agent.role, proto::Role::Agent as i32);
    eprintln!(
        "caller {}-{} ms, agent {}-{} ms (its clip from {} ms)",
        caller.start_ms, caller.end_ms, agent.start_ms, agent.end_ms, call.agent_offset_ms
    );
    let expected = caller.start_ms + call.agent_offset_ms;
    assert!(
        agent.start_ms.abs_diff(expected) <= 150,
        "{agent:?} vs {expected}"
    );
    let latency = agent
        .prosody
        .as_ref()
        .unwrap()
        .response_latency_ms
        .expect("latency across the two tracks");
    // The silence put between the clips, plus the agent clip's own lead-in and less the
    // endpointer's hangover after the caller: within 400 ms of the gap.
    assert!(
        (GAP_MS as i32..GAP_MS as i32 + 400).contains(&latency),
        "{latency}"
    );
    latency
}

/// Checks a two-party call's events: the transcript within the WER bound of the RTP
/// tests, the tracks aligned, two legs of `transport` with nothing malformed. Returns
/// the WER and the summary.
fn check_call<'a>(
    what: &str,
    call: &TwoParty,
    events: &'a [CallEvent],
    transport: &str,
) -> (f32, &'a proto::CallSummary) {
    let hyp = transcript(events);
    let w = wer(&call.reference, &hyp);
    eprintln!("{what} WER {w:.3}: {hyp}");
    assert!(w < 0.15, "WER {w}: {hyp}");
    let latency = check_two_tracks(call, events);
    eprintln!("{what} response latency across the tracks: {latency} ms");
    let s = summary(events);
    assert_eq!(s.legs.len(), 2);
    for l in &s.legs {
        assert_eq!(l.transport, transport);
        assert_eq!(l.packets_malformed, 0, "{l:?}");
    }
    (w, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_media_stream_two_tracks_out_of_order_with_lost_chunks() {
    let srv = start_servers(8, Some(pool()), Some(WsConfig::default())).await;
    let call = two_party("0880");
    let enc = |s: &[i16]| s.iter().map(|&x| g711::ulaw_encode(x)).collect::<Vec<u8>>();
    let (caller, agent) = (enc(&call.caller), enc(&call.agent));
    let events = watch(srv.grpc, "CA-twilio-1");
    let mut ws = connect(srv.ws.unwrap(), "/twilio").await;
    send(
        &mut ws,
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
    )
    .await;
    send(&mut ws, twilio_start("CA-twilio-1")).await;
    // 20 ms frames at real-time pace; every 25th pair of inbound frames swapped, two
    // inbound frames lost, the timestamps a millisecond off now and then.
    let frames: Vec<(u64, &[u8], &[u8])> = caller
        .chunks(160)
        .zip(agent.chunks(160))
        .enumerate()
        .map(|(i, (c, a))| (i as u64 + 1, c, a))
        .collect();
    let lost = [120u64, 240];
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let mut i = 0;
    while i < frames.len() {
        let batch = if i % 25 == 10 && i + 1 < frames.len() {
            vec![frames[i + 1], frames[i]]
        } else {
            vec![frames[i]]
        };
        for (chunk, c, a) in batch {
            ticks.tick().await;
            let ts = (chunk - 1) * 20 + chunk % 3 / 2;
            if !lost.contains(&chunk) {
                send(&mut ws, twilio_media("inbound", chunk, ts, c)).await;
            }
            send(&mut ws, twilio_media("outbound", chunk, ts, a)).await;
            if chunk == 100 {
                send(
                    &mut ws,
                    json!({"event": "dtmf", "streamSid": "MZ0001",
                    "dtmf": {"track": "inbound_track", "digit": "5"}}),
                )
                .await;
            }
            if chunk == 101 {
                send(
                    &mut ws,
                    json!({"event": "mark", "streamSid": "MZ0001",
                    "mark": {"name": "greeting"}}),
                )
                .await;
            }
        }
        i += if i % 25 == 10 { 2 } else { 1 };
    }
    send(&mut ws, twilio_stop("CA-twilio-1")).await;
    let events = events.await.unwrap();
    let (_, s) = check_call("Twilio", &call, &events, "twilio-ws");
    let dtmf = dtmf_events(&events);
    assert_eq!(dtmf.len(), 1);
    assert_eq!(
        dtmf[0].digit, "[NUMBER]",
        "every number redacted by default"
    );
    let (inbound, outbound) = (leg(s, 0), leg(s, 1));
    eprintln!("Twilio legs: {inbound:?} {outbound:?}");
    // The swapped frames are put back in order; the two missing ones are concealed
    // over 20 ms each. (On a machine too busy to keep the sender on time, a
    // frame can come later than the jitter buffer's depth: it is then given up as lost
    // and counted late too, as for any RTP leg.)
    for (l, missing) in [(inbound, 2), (outbound, 0)] {
        assert_eq!(l.packets_duplicate, 0, "{l:?}");
        assert_eq!(l.packets_lost, missing + l.packets_late, "{l:?}");
        assert_eq!(l.concealed_ms as u64, 20 * l.packets_lost, "{l:?}");
        assert_eq!(
            l.packets_received as usize,
            caller.len().div_ceil(160) - missing as usize,
            "{l:?}"
        );
    }
    assert_eq!(inbound.dtmf_events, 1);
    assert!(
        s.duration_ms.abs_diff(caller.len() as u32 / 8) < 100,
        "{} vs {}",
        s.duration_ms,
        caller.len() / 8
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_fork_stereo_l16_sends_alerts_and_utterances_back() {
    let srv = start_servers(8, Some(pool()), Some(WsConfig::default())).await;
    let call = two_party("0930");
    let (caller, agent) = (&call.caller, &call.agent);
    let events = watch(srv.grpc, "fs-uuid-1");
    let ws = connect(srv.ws.unwrap(), "/fork?events=1").await;
    let (mut tx, mut rx) = ws.split();
    // What comes back on the socket: JSON CallEvents.
    let (back_tx, mut back_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m {
                let _ = back_tx.send(serde_json::from_str::<Value>(&t).expect("JSON"));
            }
        }
    });
    let meta = json!({"callId": "fs-uuid-1", "sampleRate": 8000, "channels": 2});
    tx.send(Message::Text(meta.to_string().into()))
        .await
        .unwrap();
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for (c, a) in caller.chunks(160).zip(agent.chunks(160)) {
        ticks.tick().await;
        let bytes: Vec<u8> = c
            .iter()
            .zip(a)
            .flat_map(|(l, r)| [l.to_le_bytes(), r.to_le_bytes()].concat())
            .collect();
        tx.send(Message::Binary(bytes.into())).await.unwrap();
    }
    // The call goes on (silence) until both parties' utterances have come back on the
    // socket; then the fork stops and mod_audio_fork closes the socket.
    let mut back: Vec<Value> = Vec::new();
    let silence = Message::Binary(vec![0u8; 640].into());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut sent_silence = 0;
    while back.iter().filter(|v| v.get("utterance").is_some()).count() < 2 {
        tokio::select! {
            v = back_rx.recv() => back.push(v.expect("the socket stays open")),
            _ = ticks.tick() => {
                tx.send(silence.clone()).await.unwrap();
                sent_silence += 1;
            }
            _ = tokio::time::sleep_until(deadline) => panic!("events back: {back:?}"),
        }
    }
    tx.send(Message::Close(None)).await.unwrap();
    let events = events.await.unwrap();
    let (w, s) = check_call("audio fork", &call, &events, "audio-fork");
    for l in &s.legs {
        let frames = caller.len().div_ceil(160) + sent_silence;
        assert_eq!(l.packets_received as usize, frames, "{l:?}");
    }
    // Every frame that came back is an utterance or an alert of this call.
    tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the server closes its side")
        .unwrap();
    while let Ok(v) = back_rx.try_recv() {
        back.push(v);
    }
    eprintln!("{} events back on the fork socket", back.len());
    for v in &back {
        assert_eq!(v["call_id"], "fs-uuid-1");
        // mod_audio_fork drops (and logs in full) a frame without a `type`.
        assert_eq!(v["type"], "json", "{v}");
        assert!(
            v.get("utterance").is_some() || v.get("alert").is_some(),
            "{v}"
        );
    }
    let said: Vec<&str> = back
        .iter()
        .filter_map(|v| v["utterance"]["transcript"].as_str())
        .collect();
    assert_eq!(wer(&call.reference, &said.join(" ")), w, "{said:?}");
    let first = back.iter().find(|v| v.get("utterance").is_some()).unwrap();
    assert_eq!(first["utterance"]["role"], "CALLER", "{first}");
}

/// An AudioHook client message (protocol v2).
fn audiohook_msg(kind: &str, seq: u64, serverseq: u64, parameters: Value) -> Value {
    json!({
        "version": "2", "type": kind, "seq": seq, "serverseq": serverseq,
        "id": "e160e428-53e2-487c-977d-96989bf5c99d", "position": "PT0S",
        "parameters": parameters,
    })
}

/// AudioHook's `open` for conversation `conversation_id`, offering PCMU mono and stereo.
fn audiohook_open(conversation_id: &str) -> Value {
    audiohook_msg(
        "open",
        1,
        0,
        json!({
            "organizationId": "d7934305-0972-4844-938e-9060eef73d05",
            "conversationId": conversation_id,
            "participant": {"id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0",
                "ani": "+1-555-555-1234", "aniName": "John Doe", "dnis": "+1-800-555-6789"},
            "media": [
                {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000},
                {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
            ],
            "language": "en-US"
        }),
    )
}

/// A WebSocket to `/audiohook` with the API key.
async fn connect_audiohook(ws: SocketAddr, key: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{ws}/audiohook")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("X-API-KEY", key.parse().unwrap());
    req.headers_mut().insert(
        "Audiohook-Organization-Id",
        "d7934305-0972-4844-938e-9060eef73d05".parse().unwrap(),
    );
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// With Twilio auth tokens set, a `/twilio` stream is accepted only with the
/// `X-Twilio-Signature` Twilio computes (base64 HMAC-SHA1 of the `wss://` URL under the auth
/// token, made here from Twilio's description, not by callmood's code): a signed stream
/// names its call and is watched to its end; unsigned, signed with another token, or
/// signed for another URL, it gets 401 before the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_streams_need_the_signature_when_auth_tokens_are_set() {
    use hmac::{Hmac, Mac};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (srv, ws) = ws_servers(WsConfig {
        twilio_auth_tokens: vec!["old-token".into(), "account-auth-token".into()],
        ..WsConfig::default()
    })
    .await;
    let signed = |path: &str, signed_for: &str, token: Option<&str>| {
        let mut req = format!("ws://{ws}{path}").into_client_request().unwrap();
        if let Some(token) = token {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
            mac.update(format!("wss://{ws}{signed_for}").as_bytes());
            let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            req.headers_mut()
                .insert("X-Twilio-Signature", sig.parse().unwrap());
        }
        req
    };
    let events = watch(srv.grpc, "CA-signed");
    let (mut sock, _) = tokio_tungstenite::connect_async(signed(
        "/twilio/CA-signed",
        "/twilio/CA-signed",
        Some("account-auth-token"),
    ))
    .await
    .unwrap();
    let mut start = twilio_start("CA-signed");
    start["start"]["tracks"] = json!(["inbound"]);
    send(&mut sock, start).await;
    for i in 0..25u64 {
        send(
            &mut sock,
            twilio_media("inbound", i + 1, i * 20, &[0xff; 160]),
        )
        .await;
    }
    send(&mut sock, twilio_stop("CA-signed")).await;
    let events = events.await.unwrap();
    let heard = summary(&events).duration_ms;
    assert!(
        heard >= 400,
        "the signed stream's audio was heard: {heard} ms"
    );

    for (req, what) in [
        (signed("/twilio", "/twilio", None), "unsigned"),
        (
            signed("/twilio", "/twilio", Some("a-guessed-token")),
            "another token",
        ),
        (
            signed(
                "/twilio/CA-other",
                "/twilio/CA-signed",
                Some("account-auth-token"),
            ),
            "signed for another URL",
        ),
    ] {
        assert_eq!(refused_with(req).await, 401, "{what}");
    }
}

/// With Basic credentials set, `/fork` takes only a socket that sends one of them, as
/// `mod_audio_fork` and jambonz `listen` do (`Authorization: Basic`); without or with
/// another pair it gets 401 before the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audio_fork_needs_basic_credentials_when_they_are_set() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let (srv, ws) = ws_servers(WsConfig {
        fork_basic_auth: vec!["freeswitch:fork-pass".into()],
        ..WsConfig::default()
    })
    .await;
    let with = |creds: Option<&str>| {
        let mut req = format!("ws://{ws}/fork").into_client_request().unwrap();
        if let Some(c) = creds {
            let v = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            );
            req.headers_mut()
                .insert("Authorization", v.parse().unwrap());
        }
        req
    };
    let events = watch(srv.grpc, "fork-authed");
    let (mut sock, _) = tokio_tungstenite::connect_async(with(Some("freeswitch:fork-pass")))
        .await
        .unwrap();
    send(
        &mut sock,
        json!({"callId": "fork-authed", "sampleRate": 8000, "channels": 1}),
    )
    .await;
    for _ in 0..25 {
        sock.send(Message::Binary(vec![0u8; 320].into()))
            .await
            .unwrap();
    }
    sock.close(None).await.unwrap();
    let heard = summary(&events.await.unwrap()).duration_ms;
    assert!(
        heard >= 400,
        "the authenticated fork's audio was heard: {heard} ms"
    );
    for (creds, what) in [
        (None, "no credentials"),
        (Some("freeswitch:guess"), "a wrong password"),
        (Some("jambonz:fork-pass"), "another user"),
    ] {
        assert_eq!(refused_with(with(creds)).await, 401, "{what}");
    }
}

/// An upgrade request to `/audiohook` as Genesys Cloud sends it: the API key, the three
/// `Audiohook-*` ids and, with a secret, its HTTP message signature (nonce `nonce`,
/// created now).
fn audiohook_request(
    ws: SocketAddr,
    key: &str,
    secret: Option<&[u8]>,
    nonce: &str,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use callmood::server::ws::signature;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{ws}/audiohook")
        .into_client_request()
        .unwrap();
    let h = req.headers_mut();
    h.insert("X-API-KEY", key.parse().unwrap());
    h.insert(
        "Audiohook-Organization-Id",
        "d7934305-0972-4844-938e-9060eef73d05".parse().unwrap(),
    );
    h.insert(
        "Audiohook-Session-Id",
        "30b0e395-84d3-4570-ac13-9a62d8f514c0".parse().unwrap(),
    );
    h.insert(
        "Audiohook-Correlation-Id",
        "e160e428-53e2-487c-977d-96989bf5c99d".parse().unwrap(),
    );
    if let Some(secret) = secret {
        signature::sign(&mut req, key, secret, nonce, signature::unix_now_s());
    }
    req
}

/// The HTTP status an upgrade request is refused with (panics if it is accepted).
async fn refused_with(req: tokio_tungstenite::tungstenite::handshake::client::Request) -> u16 {
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
        Err(e) => panic!("not an HTTP refusal: {e}"),
        Ok(_) => panic!("accepted"),
    }
}

/// With a client secret for its key, AudioHook is accepted only on a request signed with
/// it: a signed request opens a session; the same key unsigned, signed with another
/// secret, or the signed request sent again (its nonce replayed) gets 401 before the
/// upgrade. A key without a secret is still accepted unsigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiohook_with_a_client_secret_needs_a_fresh_valid_signature() {
    let secret = b"the integration's client secret".to_vec();
    let entry = format!(
        "signed-key:{}",
        base64::engine::general_purpose::STANDARD.encode(&secret)
    );
    let (_srv, ws) = ws_servers(WsConfig {
        audiohook_api_keys: vec!["plain-key".into()],
        audiohook_client_secrets: callmood::server::ws::audiohook::ClientSecrets::parse(&[entry])
            .unwrap(),
        ..WsConfig::default()
    })
    .await;
    let nonce = "c2lnbmVkLXJlcXVlc3Qtbm9uY2UtMQ";

    let req = audiohook_request(ws, "signed-key", Some(&secret), nonce);
    let again = req.clone();
    let (mut sock, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    send(&mut sock, audiohook_open("ah-signed")).await;
    assert_eq!(next_json(&mut sock).await["type"], "opened");
    send(
        &mut sock,
        audiohook_msg("close", 2, 1, json!({"reason": "end"})),
    )
    .await;
    assert_eq!(next_json(&mut sock).await["type"], "closed");

    assert_eq!(
        refused_with(again).await,
        401,
        "the same signed request again"
    );
    let unsigned = audiohook_request(ws, "signed-key", None, "");
    assert_eq!(refused_with(unsigned).await, 401, "unsigned");
    let forged = audiohook_request(
        ws,
        "signed-key",
        Some(b"a guessed secret"),
        "Zm9yZ2VkLXJlcXVlc3Qtbm9uY2UtMg",
    );
    assert_eq!(refused_with(forged).await, 401, "another secret");
    let mut moved = audiohook_request(
        ws,
        "signed-key",
        Some(&secret),
        "bW92ZWQtcmVxdWVzdC1ub25jZS0zMw",
    );
    moved.headers_mut().insert(
        "Audiohook-Organization-Id",
        "00000000-0000-0000-0000-000000000000".parse().unwrap(),
    );
    assert_eq!(refused_with(moved).await, 401, "a signed header changed");

    let (mut sock, _) =
        tokio_tungstenite::connect_async(audiohook_request(ws, "plain-key", None, ""))
            .await
            .unwrap();
    send(&mut sock, audiohook_open("ah-plain")).await;
    assert_eq!(next_json(&mut sock).await["type"], "opened");
}

/// The next text frame as JSON.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(_))) => {}
            other => panic!("no text frame: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiohook_session_open_ping_close_with_stereo_pcmu() {
    let cfg = WsConfig {
        audiohook_api_keys: vec!["key-1".into(), "key-2".into()],
        ..WsConfig::default()
    };
    let srv = start_servers(8, Some(pool()), Some(cfg)).await;
    let call = two_party("0880");
    let events = watch(srv.grpc, "conv-audiohook-1");
    let mut ws = connect_audiohook(srv.ws.unwrap(), "key-2").await;
    send(&mut ws, audiohook_open("conv-audiohook-1")).await;
    let opened = next_json(&mut ws).await;
    assert_eq!(opened["type"], "opened", "{opened}");
    assert_eq!(
        (opened["seq"].as_u64(), opened["clientseq"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        opened["parameters"]["media"][0]["channels"],
        json!(["external", "internal"])
    );
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(Ok(m)) = rx.next().await {
            if let Message::Text(t) = m {
                got.push(serde_json::from_str::<Value>(&t).unwrap());
            }
        }
        got
    });
    // Stereo PCMU, external (caller) and internal (agent) interleaved byte by byte.
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for (i, (c, a)) in call
        .caller
        .chunks(160)
        .zip(call.agent.chunks(160))
        .enumerate()
    {
        ticks.tick().await;
        let bytes: Vec<u8> = c
            .iter()
            .zip(a)
            .flat_map(|(&l, &r)| [g711::ulaw_encode(l), g711::ulaw_encode(r)])
            .collect();
        tx.send(Message::Binary(bytes.into())).await.unwrap();
        if i == 100 {
            let ping = audiohook_msg("ping", 2, 1, json!({"rtt": "PT0.05S"}));
            tx.send(Message::Text(ping.to_string().into()))
                .await
                .unwrap();
        }
    }
    let close = audiohook_msg("close", 3, 2, json!({"reason": "end"}));
    tx.send(Message::Text(close.to_string().into()))
        .await
        .unwrap();
    let back = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the server ends the session after closed")
        .unwrap();
    let kinds: Vec<&str> = back.iter().filter_map(|v| v["type"].as_str()).collect();
    eprintln!("AudioHook server messages: {kinds:?}");
    let pong = back.iter().find(|v| v["type"] == "pong").expect("pong");
    assert_eq!(pong["clientseq"], 2);
    let closed = back.last().expect("closed");
    assert_eq!(closed["type"], "closed");
    assert_eq!(closed["clientseq"], 3);
    // Server messages count up from opened's 1 without a gap.
    for (i, v) in back.iter().enumerate() {
        assert_eq!(v["seq"].as_u64(), Some(i as u64 + 2), "{v}");
        assert_eq!(v["id"], "e160e428-53e2-487c-977d-96989bf5c99d");
    }
    let events = events.await.unwrap();
    check_call("AudioHook", &call, &events, "audiohook");
    // Each alert of the call went to the client as an event.
    let alerts = events
        .iter()
        .filter(|e| matches!(e.event, Some(Event::Alert(_))))
        .count();
    let sent = back.iter().filter(|v| v["type"] == "event").count();
    assert_eq!(sent, alerts, "{back:?}");
    for v in back.iter().filter(|v| v["type"] == "event") {
        // One entity per event, in the `entities` list the protocol defines.
        let entities = v["parameters"]["entities"]
            .as_array()
            .expect("entities list");
        assert_eq!(entities.len(), 1, "{v}");
        assert_eq!(entities[0]["type"], "callmood.alert");
        assert!(entities[0]["data"].is_object(), "{v}");
    }
}

/// A healthy Twilio call (prosody only) to compare the bad sockets' calls against.
async fn healthy_twilio_call(ws_addr: SocketAddr, call_sid: &str, audio: &[u8]) {
    let mut ws = connect(ws_addr, "/twilio").await;
    let mut start = twilio_start(call_sid);
    start["start"]["tracks"] = json!(["inbound"]);
    send(&mut ws, start).await;
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    for (i, c) in audio.chunks(160).enumerate() {
        ticks.tick().await;
        send(
            &mut ws,
            twilio_media("inbound", i as u64 + 1, i as u64 * 20, c),
        )
        .await;
    }
    send(&mut ws, json!({"event": "stop"})).await;
}

/// The client's side of the close transaction after the server's `disconnect` (the
/// client always ends an AudioHook session): audio sent meanwhile is let be, `close` is
/// answered `closed`, then the server ends the socket.
async fn close_after_disconnect(ws: &mut Ws, seq: u64, bye: &Value) {
    ws.send(Message::Binary(vec![0xff; 160].into()))
        .await
        .unwrap();
    let serverseq = bye["seq"].as_u64().unwrap();
    send(
        ws,
        audiohook_msg("close", seq, serverseq, json!({"reason": "disconnect"})),
    )
    .await;
    let closed = next_json(ws).await;
    assert_eq!(closed["type"], "closed", "{closed}");
    assert_eq!(closed["seq"].as_u64(), Some(serverseq + 1), "{closed}");
    assert!(ended_by_server(ws, Duration::from_secs(5)).await);
}

/// Whether the server ends the socket (a close frame or EOF) within `within`.
async fn ended_by_server(ws: &mut Ws, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_path_is_refused_or_counted_and_a_healthy_call_completes() {
    let cfg = WsConfig {
        audiohook_api_keys: vec!["secret-key".into()],
        ..WsConfig::default()
    };
    let srv = start_servers(8, None, Some(cfg)).await;
    let ws_addr = srv.ws.unwrap();
    let (call, spans, _) = speech_call(&["0890"], 500);
    let audio = mulaw_8k_bytes(&call);
    let healthy = watch(srv.grpc, "healthy");
    let messy = watch(srv.grpc, "messy");
    let huge = watch(srv.grpc, "huge");
    let quiet = watch(srv.grpc, "quiet");
    let fork_bad = watch(srv.grpc, "fork-bad");
    let audiohook_bad = watch(srv.grpc, "ah-bad");
    let attack = async {
        // Unknown path, and AudioHook without or with a wrong key: refused before the upgrade.
        for (path, key, status) in [
            ("/nowhere", None, 404),
            ("/audiohook", None, 401),
            ("/audiohook", Some("wrong"), 401),
        ] {
            let mut req =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                    format!("ws://{ws_addr}{path}"),
                )
                .unwrap();
            if let Some(k) = key {
                req.headers_mut().insert("X-API-KEY", k.parse().unwrap());
            }
            match tokio_tungstenite::connect_async(req).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                    assert_eq!(r.status().as_u16(), status, "{path}")
                }
                other => panic!("{path}: {other:?}"),
            }
        }
        // Twilio: media before start, then start, then six bad messages.
        let mut ws = connect(ws_addr, "/twilio").await;
        send(&mut ws, twilio_media("inbound", 1, 0, &audio[..160])).await;
        let mut start = twilio_start("messy");
        start["start"]["tracks"] = json!(["inbound"]);
        send(&mut ws, start.clone()).await;
        ws.send(Message::Text("{not json".into())).await.unwrap();
        let mut bad64 = twilio_media("inbound", 2, 20, &audio[..160]);
        bad64["media"]["payload"] = json!("!!not base64!!");
        send(&mut ws, bad64).await;
        send(&mut ws, json!({"event": "hangup"})).await;
        send(&mut ws, start).await; // a second start
        ws.send(Message::Binary(vec![1, 2, 3].into()))
            .await
            .unwrap();
        send(&mut ws, twilio_media("outbound", 3, 40, &audio[..160])).await; // not announced
        for i in 0..50u64 {
            let c = &audio[(i as usize * 160)..(i as usize + 1) * 160];
            send(&mut ws, twilio_media("inbound", i + 4, (i + 3) * 20, c)).await;
        }
        send(&mut ws, json!({"event": "stop"})).await;
        // A message over the size limit (64 KiB) ends its own socket only.
        let mut big = connect(ws_addr, "/twilio").await;
        let mut start = twilio_start("huge");
        start["start"]["tracks"] = json!(["inbound"]);
        send(&mut big, start).await;
        send(&mut big, twilio_media("inbound", 1, 0, &audio[..160])).await;
        let _ = big.send(Message::Text("x".repeat(100_000).into())).await;
        assert!(ended_by_server(&mut big, Duration::from_secs(5)).await);
        // A stream that starts and goes quiet: closed after the leg idle timeout (3 s).
        let mut q = connect(ws_addr, "/twilio").await;
        let mut start = twilio_start("quiet");
        start["start"]["tracks"] = json!(["inbound"]);
        send(&mut q, start).await;
        send(&mut q, twilio_media("inbound", 1, 0, &audio[..160])).await;
        let t0 = tokio::time::Instant::now();
        assert!(ended_by_server(&mut q, Duration::from_secs(8)).await);
        assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
        // Fork: metadata without a call id is refused; a good fork with a frame of
        // half a stereo sample counts it and goes on.
        let mut f = connect(ws_addr, "/fork").await;
        f.send(Message::Text(
            json!({"sampleRate": 8000}).to_string().into(),
        ))
        .await
        .unwrap();
        assert!(ended_by_server(&mut f, Duration::from_secs(5)).await);
        let mut f = connect(ws_addr, "/fork").await;
        f.send(Message::Binary(vec![0; 320].into())).await.unwrap(); // before the metadata
        let meta = json!({"callId": "fork-bad", "sampleRate": 8000, "channels": 2});
        f.send(Message::Text(meta.to_string().into()))
            .await
            .unwrap();
        f.send(Message::Binary(vec![0; 642].into())).await.unwrap();
        f.send(Message::Binary(vec![0; 640].into())).await.unwrap();
        f.send(Message::Text("text after the metadata".into()))
            .await
            .unwrap();
        f.send(Message::Close(None)).await.unwrap();
        // AudioHook: a ping whose seq skips one ends the session with `disconnect`.
        let mut ah = connect_audiohook(ws_addr, "secret-key").await;
        send(&mut ah, audiohook_open("ah-bad")).await;
        assert_eq!(next_json(&mut ah).await["type"], "opened");
        ah.send(Message::Binary(vec![0xff; 320].into()))
            .await
            .unwrap();
        ah.send(Message::Binary(vec![0xff; 3].into()))
            .await
            .unwrap(); // half a sample
        send(&mut ah, audiohook_msg("ping", 3, 1, json!({}))).await;
        let bye = next_json(&mut ah).await;
        assert_eq!(
            (bye["type"].as_str(), bye["parameters"]["reason"].as_str()),
            (Some("disconnect"), Some("error")),
            "{bye}"
        );
        close_after_disconnect(&mut ah, 4, &bye).await;
    };
    // A socket that never names its call: closed after the join timeout (10 s).
    let never = async {
        let mut never = connect(ws_addr, "/twilio").await;
        let t0 = tokio::time::Instant::now();
        assert!(ended_by_server(&mut never, Duration::from_secs(15)).await);
        t0.elapsed()
    };
    let (_, _, never_closed) = tokio::join!(
        healthy_twilio_call(ws_addr, "healthy", &audio),
        attack,
        never
    );
    assert!(never_closed >= Duration::from_secs(9), "{never_closed:?}");

    let healthy = healthy.await.unwrap();
    let l = healthy_leg(&healthy, spans[0].0);
    assert_eq!(l.transport, "twilio-ws");
    assert_eq!(
        (l.packets_malformed, l.packets_lost),
        (0, 0),
        "the healthy call is untouched: {l:?}"
    );
    assert_eq!(l.packets_received as usize, audio.len().div_ceil(160));

    let messy = messy.await.unwrap();
    let l = leg(summary(&messy), 0);
    eprintln!("messy Twilio leg: {l:?}");
    // media before start, bad JSON, bad base64, unknown event, second start, binary,
    // a track not announced
    assert_eq!(l.packets_malformed, 7, "{l:?}");
    assert_eq!(l.packets_received, 57, "{l:?}");

    let l = leg(summary(&huge.await.unwrap()), 0).clone();
    assert_eq!(l.packets_malformed, 1, "{l:?}");
    let s = summary(&quiet.await.unwrap()).clone();
    assert_eq!(s.duration_ms, 20, "{s:?}");

    let fb = fork_bad.await.unwrap();
    let s = summary(&fb);
    assert_eq!(s.legs.len(), 2);
    let l = leg(s, 0);
    eprintln!("messy fork leg: {l:?}");
    // the frame before the metadata, half a sample, the text frame
    assert_eq!(l.packets_malformed, 3, "{l:?}");
    assert_eq!(leg(s, 1).packets_malformed, 0);

    let ab = audiohook_bad.await.unwrap();
    let s = summary(&ab);
    assert_eq!(s.legs.len(), 2);
    // half a sample, the seq that skipped one
    assert_eq!(leg(s, 0).packets_malformed, 2, "{:?}", leg(s, 0));
    assert_eq!(leg(s, 0).packets_received, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_calls_count_against_the_call_cap() {
    let srv = start_servers(1, None, Some(WsConfig::default())).await;
    let ws_addr = srv.ws.unwrap();
    let first = watch(srv.grpc, "first");
    let mut a = connect(ws_addr, "/twilio").await;
    send(&mut a, twilio_start("first")).await;
    send(&mut a, twilio_media("inbound", 1, 0, &[0xff; 160])).await;
    // The second call finds no place: its socket is closed at once.
    let mut b = connect(ws_addr, "/fork").await;
    let meta = json!({"callId": "second"});
    b.send(Message::Text(meta.to_string().into()))
        .await
        .unwrap();
    assert!(ended_by_server(&mut b, Duration::from_secs(5)).await);
    // The first goes on and ends normally.
    send(&mut a, twilio_media("inbound", 2, 20, &[0xff; 160])).await;
    send(&mut a, json!({"event": "stop"})).await;
    let s = summary(&first.await.unwrap()).clone();
    assert_eq!(s.legs.len(), 2);
    assert_eq!(leg(&s, 0).packets_received, 2);
}

/// The AudioHook numbering rules, `update` and the client's `error`: a healthy session
/// sends both and goes on to its end, while sessions that repeat a `seq`, claim a
/// server message never sent (`serverseq`), change the session `id`, move `position`
/// back or send a type the protocol does not have are each ended with `disconnect`
/// (reason `error`), their bad message counted in the leg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiohook_numbering_rules_update_and_client_error_next_to_a_healthy_session() {
    let cfg = WsConfig {
        audiohook_api_keys: vec!["k".into()],
        ..WsConfig::default()
    };
    let srv = start_servers(8, None, Some(cfg)).await;
    let ws_addr = srv.ws.unwrap();
    let (call, spans, _) = speech_call(&["0890"], 500);
    // External (caller) speaks, internal (agent) is silent: stereo PCMU interleaved.
    let stereo: Vec<u8> = mulaw_8k_bytes(&call)
        .iter()
        .flat_map(|&b| [b, 0xff])
        .collect();
    let healthy_events = watch(srv.grpc, "ah-healthy");
    let bad = [
        "ah-repeat",
        "ah-serverseq",
        "ah-id",
        "ah-position",
        "ah-type",
    ];
    let bad_events: Vec<_> = bad.iter().map(|c| watch(srv.grpc, c)).collect();
    let healthy = async {
        let mut ws = connect_audiohook(ws_addr, "k").await;
        send(&mut ws, audiohook_open("ah-healthy")).await;
        assert_eq!(next_json(&mut ws).await["type"], "opened");
        let mut seq = 1;
        let mut ticks = tokio::time::interval(Duration::from_millis(20));
        for (i, frame) in stereo.chunks(320).enumerate() {
            ticks.tick().await;
            ws.send(Message::Binary(frame.to_vec().into()))
                .await
                .unwrap();
            if i == 50 {
                seq += 1;
                send(
                    &mut ws,
                    audiohook_msg("update", seq, 1, json!({"language": "en-GB"})),
                )
                .await;
                let updated = next_json(&mut ws).await;
                assert_eq!(
                    (updated["type"].as_str(), updated["clientseq"].as_u64()),
                    (Some("updated"), Some(seq)),
                    "{updated}"
                );
            }
            if i == 60 {
                // The client tells of an error of its own (rate limited): noted, the
                // session goes on.
                seq += 1;
                let e = json!({"code": 429, "message": "Too many requests", "retryAfter": "PT1S"});
                send(&mut ws, audiohook_msg("error", seq, 2, e)).await;
            }
        }
        seq += 1;
        send(&mut ws, audiohook_msg("ping", seq, 2, json!({}))).await;
        loop {
            let m = next_json(&mut ws).await;
            if m["type"] == "pong" {
                assert_eq!(m["clientseq"].as_u64(), Some(seq));
                break;
            }
        }
        seq += 1;
        send(
            &mut ws,
            audiohook_msg("close", seq, 3, json!({"reason": "end"})),
        )
        .await;
        loop {
            let m = next_json(&mut ws).await;
            if m["type"] == "closed" {
                break;
            }
        }
    };
    let attack = async {
        for (conv, bad_msg, why) in [
            (
                "ah-repeat",
                // ping 2 is fine, the same seq again is not
                vec![
                    audiohook_msg("ping", 2, 1, json!({})),
                    audiohook_msg("ping", 2, 1, json!({})),
                ],
                "seq",
            ),
            (
                "ah-serverseq",
                vec![audiohook_msg("ping", 2, 9, json!({}))],
                "serverseq",
            ),
            (
                "ah-id",
                vec![{
                    let mut m = audiohook_msg("ping", 2, 1, json!({}));
                    m["id"] = json!("00000000-0000-0000-0000-000000000000");
                    m
                }],
                "identifier",
            ),
            (
                "ah-position",
                // the stream's position goes back
                vec![
                    {
                        let mut m = audiohook_msg("ping", 2, 1, json!({}));
                        m["position"] = json!("PT5S");
                        m
                    },
                    {
                        let mut m = audiohook_msg("ping", 3, 2, json!({}));
                        m["position"] = json!("PT1S");
                        m
                    },
                ],
                "position",
            ),
            (
                "ah-type",
                vec![audiohook_msg("reconnecting", 2, 1, json!({}))],
                "not a supported client message",
            ),
        ] {
            let mut ws = connect_audiohook(ws_addr, "k").await;
            send(&mut ws, audiohook_open(conv)).await;
            assert_eq!(next_json(&mut ws).await["type"], "opened");
            ws.send(Message::Binary(vec![0xff; 320].into()))
                .await
                .unwrap();
            for m in bad_msg {
                send(&mut ws, m).await;
            }
            let bye = loop {
                let m = next_json(&mut ws).await;
                if m["type"] != "pong" {
                    break m;
                }
            };
            assert_eq!(
                (bye["type"].as_str(), bye["parameters"]["reason"].as_str()),
                (Some("disconnect"), Some("error")),
                "{conv}: {bye}"
            );
            let info = bye["parameters"]["info"].as_str().unwrap_or("");
            assert!(info.contains(why), "{conv}: {info}");
            close_after_disconnect(&mut ws, 10, &bye).await;
        }
    };
    tokio::join!(healthy, attack);
    let events = healthy_events.await.unwrap();
    let l = healthy_leg(&events, spans[0].0);
    assert_eq!(l.transport, "audiohook");
    assert_eq!((l.packets_malformed, l.packets_lost), (0, 0), "{l:?}");
    for (conv, events) in bad.iter().zip(bad_events) {
        let events = events.await.unwrap();
        let l = leg(summary(&events), 0);
        assert_eq!(l.packets_malformed, 1, "{conv}: {l:?}");
        // the audio frame and the bad message
        assert_eq!(l.packets_received, 2, "{conv}: {l:?}");
    }
}

/// The numbers in `text`: tokens with a digit, and number words.
fn numbers_in(text: &str) -> Vec<String> {
    const WORDS: [&str; 12] = [
        "zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().any(|c| c.is_ascii_digit()) || WORDS.contains(&&*w.to_lowercase()))
        .map(str::to_string)
        .collect()
}

/// What a call's events say in words: every utterance's transcript and words.
fn said(events: &[CallEvent]) -> String {
    utterances(events)
        .iter()
        .flat_map(|u| {
            std::iter::once(u.transcript.clone()).chain(u.words.iter().map(|w| w.text.clone()))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A mono `/fork` call of 8 kHz L16 `pcm` at real-time pace, then a second of silence;
/// its events (`WatchCall`) to the summary.
async fn fork_call(srv: &Servers, call_id: &str, pcm: &[i16]) -> Vec<CallEvent> {
    let events = watch(srv.grpc, call_id);
    let mut ws = connect(srv.ws.unwrap(), "/fork").await;
    send(
        &mut ws,
        json!({"callId": call_id, "sampleRate": 8000, "channels": 1}),
    )
    .await;
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let silence = vec![0i16; 8000];
    for c in pcm.chunks(160).chain(silence.chunks(160)) {
        ticks.tick().await;
        let bytes: Vec<u8> = c.iter().flat_map(|s| s.to_le_bytes()).collect();
        ws.send(Message::Binary(bytes.into())).await.unwrap();
    }
    ws.send(Message::Close(None)).await.unwrap();
    events.await.unwrap()
}

/// An AudioSocket call of 8 kHz linear `pcm` at real-time pace, a second of silence and a
/// hang-up; its events (`WatchCall`) to the summary.
async fn audiosocket_call(srv: &Servers, uuid: [u8; 16], pcm: &[i16]) -> Vec<CallEvent> {
    use tokio::io::AsyncWriteExt;
    let id = callmood::core::audiosocket::uuid_string(&uuid);
    let mut conn = tokio::net::TcpStream::connect(srv.audiosocket)
        .await
        .unwrap();
    let mut first = vec![0x01, 0, 16];
    first.extend(uuid);
    conn.write_all(&first).await.unwrap();
    let events = watch(srv.grpc, &id);
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let silence = vec![0i16; 8000];
    for c in pcm.chunks(160).chain(silence.chunks(160)) {
        ticks.tick().await;
        let n = c.len() * 2;
        let mut frame = vec![0x10, (n >> 8) as u8, n as u8];
        frame.extend(c.iter().flat_map(|s| s.to_le_bytes()));
        conn.write_all(&frame).await.unwrap();
    }
    conn.write_all(&[0x00, 0, 0]).await.unwrap();
    events.await.unwrap()
}

/// `security.redact_all_numbers`, on by default, on the transports that carry no
/// `CallOptions`: spoken numbers ("eight of spades four of clubs seven of hearts") leave
/// no digit or number word in any event of a WebSocket or an AudioSocket call, while the
/// same audio through a server with it off keeps them (short numbers with no cue are no
/// secret to the cue and length rules alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_redacts_every_number_does_so_on_websocket_and_audiosocket_calls() {
    let pcm = pcm_8k(&load_wav(&fixture("cards-005.wav")));
    let rules_alone = callmood::server::security::SecurityConfig {
        redact_all_numbers: false,
        ..Default::default()
    };
    let plain = start_servers_secured(
        8,
        Some(pool()),
        Some(WsConfig::default()),
        Vec::new(),
        rules_alone,
    )
    .await;
    let events = fork_call(&plain, "pii-plain", &pcm).await;
    let heard = said(&events);
    eprintln!("the rules alone: {heard}");
    assert!(numbers_in(&heard).len() >= 2, "{heard}");
    drop(plain);

    // The default settings: every number goes.
    let srv = start_servers(8, Some(pool()), Some(WsConfig::default())).await;
    let (fork, socket) = tokio::join!(
        fork_call(&srv, "pii-fork", &pcm),
        audiosocket_call(&srv, [0x44; 16], &pcm)
    );
    for (what, events) in [("fork", fork), ("AudioSocket", socket)] {
        let heard = said(&events);
        eprintln!("{what}, redact_all_numbers: {heard}");
        assert!(heard.matches("[NUMBER]").count() >= 2, "{what}: {heard}");
        assert_eq!(numbers_in(&heard), Vec::<String>::new(), "{what}: {heard}");
        // Nor anywhere else in the events (cues, peaks, alerts): no number word.
        for ev in &events {
            let shown = format!("{ev:?}");
            let words: Vec<String> = numbers_in(&shown)
                .into_iter()
                .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
                .collect();
            assert!(words.is_empty(), "{what}: {words:?} in {shown}");
        }
        summary(&events);
    }
}
