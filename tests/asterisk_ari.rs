//! `callmood asterisk-ari` against a mock Asterisk written from ARI's published
//! documentation (`channels.json`, `bridges.json`, "External Media and ARI", the
//! AudioSocket protocol), never against a real Asterisk: the REST calls and the events
//! WebSocket on one port, snoop channels that exist only while the channel they spy on
//! does, ExternalMedia channels that connect to callmood's AudioSocket listener and send
//! the snooped party's speech as 20 ms slin frames once bridged with its snoop. A healthy
//! call (caller and agent reach callmood as two legs of one call, the exact requests in
//! order, everything deleted after the hang-up) next to a call whose channel is gone
//! ("Channel not found": nothing is left behind).
mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callmood::client::ari::{self, AriConfig};
use callmood::proto;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// `u:p` in Basic authentication.
const AUTH: &str = "Basic dTpw";

/// A channel of the mock.
struct Channel {
    /// For a snoop: the channel it spies on and the direction.
    snoop_of: Option<(String, String)>,
    /// For an ExternalMedia channel: its AudioSocket connection until it is bridged,
    /// then the way to stop its sender.
    media: Option<Media>,
}

enum Media {
    /// Ready to send once bridged with a snoop.
    Ready(Out),
    Sending(oneshot::Sender<()>),
}

/// How an ExternalMedia channel reaches callmood.
enum Out {
    /// AudioSocket: connected, its UUID sent.
    AudioSocket(TcpStream),
    /// RTP: a socket and where to send.
    Rtp(tokio::net::UdpSocket, SocketAddr),
}

#[derive(Default)]
struct Mock {
    /// Every REST request: method and target (path and query as sent).
    log: Vec<(String, String)>,
    channels: HashMap<String, Channel>,
    bridges: HashMap<String, Vec<String>>,
    /// The events WebSocket of app `callmood`, when connected.
    events: Option<mpsc::UnboundedSender<Value>>,
    /// What each (channel, spy direction) says, 8 kHz.
    speech: HashMap<(String, String), Vec<i16>>,
}

type Shared = Arc<Mutex<Mock>>;

impl Mock {
    fn event(&self, kind: &str, channel: &str, args: Value) {
        if let Some(tx) = &self.events {
            let _ = tx.send(json!({
                "type": kind, "application": "callmood", "args": args,
                "timestamp": "2026-12-05T02:00:00.000+0000",
                "channel": {"id": channel, "name": format!("Mock/{channel}"), "state": "Up"},
            }));
        }
    }

    /// Hangs up a channel as Asterisk would: StasisEnd and ChannelDestroyed, an
    /// ExternalMedia channel's AudioSocket gets a hang-up, snoops on it go too.
    fn hang_up(&mut self, id: &str) -> bool {
        let Some(ch) = self.channels.remove(id) else {
            return false;
        };
        match ch.media {
            Some(Media::Sending(stop)) => {
                let _ = stop.send(());
            }
            Some(Media::Ready(Out::AudioSocket(mut s))) => {
                tokio::spawn(async move {
                    let _ = s.write_all(&[0, 0, 0]).await;
                });
            }
            Some(Media::Ready(Out::Rtp(..))) | None => {}
        }
        self.event("StasisEnd", id, json!([]));
        self.event("ChannelDestroyed", id, json!([]));
        let snoops: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.snoop_of.as_ref().is_some_and(|(of, _)| of == id))
            .map(|(k, _)| k.clone())
            .collect();
        for s in snoops {
            self.hang_up(&s);
        }
        true
    }
}

fn query(target: &str) -> HashMap<String, String> {
    let q = target.split_once('?').map_or("", |(_, q)| q);
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// An ARI error body, as Asterisk writes it.
fn err(status: u16, message: &str) -> (u16, Value) {
    (status, json!({ "message": message }))
}

/// Sends `speech`, then silence, in 20 ms frames at real-time pace until stopped: as
/// AudioSocket slin messages (a hang-up at the end) or RTP PCMU packets.
async fn send_audio(mut out: Out, speech: Vec<i16>, mut stop: oneshot::Receiver<()>) {
    use callmood::core::{codec::g711, rtp};
    let mut ticks = tokio::time::interval(Duration::from_millis(20));
    let mut frames = speech
        .chunks(160)
        .map(<[i16]>::to_vec)
        .collect::<Vec<_>>()
        .into_iter();
    for i in 0u32.. {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = &mut stop => {
                if let Out::AudioSocket(s) = &mut out {
                    let _ = s.write_all(&[0, 0, 0]).await; // hang-up
                }
                return;
            }
        }
        let mut frame = frames.next().unwrap_or_default();
        frame.resize(160, 0);
        let sent = match &mut out {
            Out::AudioSocket(s) => {
                let mut msg = vec![0x10, 0x01, 0x40]; // audio, 320 bytes
                msg.extend(frame.iter().flat_map(|s| s.to_le_bytes()));
                s.write_all(&msg).await.is_ok()
            }
            Out::Rtp(s, to) => {
                let payload: Vec<u8> = frame.iter().map(|&x| g711::ulaw_encode(x)).collect();
                let pkt = rtp::build(i == 0, 0, i as u16, i * 160, 0xA57E, &payload);
                s.send_to(&pkt, *to).await.is_ok()
            }
        };
        if !sent {
            return;
        }
    }
}

/// One REST request of the mock: the status and JSON body to answer.
async fn rest(mock: &Shared, method: &str, target: &str) -> (u16, Value) {
    let path = target.split('?').next().unwrap().to_string();
    let q = query(target);
    let parts: Vec<&str> = path.trim_start_matches("/ari/").split('/').collect();
    let channel_json = |id: &str| json!({"id": id, "name": format!("Mock/{id}"), "state": "Up"});
    match (method, parts.as_slice()) {
        ("POST", ["channels", "externalMedia"]) => {
            let (Some(id), Some(host), Some(fmt)) =
                (q.get("channelId"), q.get("external_host"), q.get("format"))
            else {
                return err(400, "Invalid parameters");
            };
            if q.get("app").map(String::as_str) != Some("callmood") {
                return err(400, "app is required");
            }
            let media = if q.get("encapsulation").map(String::as_str) == Some("rtp") {
                // chan_rtp: a UDP socket that sends to external_host.
                if q.get("transport").map(String::as_str) != Some("udp") || fmt != "ulaw" {
                    return err(422, "mock: rtp over udp in ulaw only");
                }
                let Ok(to) = host.parse::<SocketAddr>() else {
                    return err(400, "external_host is not HOST:PORT");
                };
                Out::Rtp(
                    tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
                    to,
                )
            } else {
                if q.get("encapsulation").map(String::as_str) != Some("audiosocket")
                    || q.get("transport").map(String::as_str) != Some("tcp")
                    || fmt != "slin"
                {
                    return err(422, "mock: audiosocket over tcp in slin only");
                }
                let Some(uuid) = q.get("data").filter(|d| ari::is_uuid(d)) else {
                    return err(400, "data must be a UUID for audiosocket");
                };
                // chan_audiosocket connects, then sends the UUID.
                let Ok(mut s) = TcpStream::connect(host).await else {
                    return err(500, "cannot connect to external_host");
                };
                let mut msg = vec![0x01, 0x00, 0x10];
                msg.extend(
                    uuid.replace('-', "")
                        .as_bytes()
                        .chunks(2)
                        .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap()),
                );
                s.write_all(&msg).await.unwrap();
                Out::AudioSocket(s)
            };
            let mut m = mock.lock().unwrap();
            if m.events.is_none() {
                // No WebSocket for the app: Asterisk hangs the channel up at once.
                return (200, channel_json(id));
            }
            m.channels.insert(
                id.clone(),
                Channel {
                    snoop_of: None,
                    media: Some(Media::Ready(media)),
                },
            );
            m.event("StasisStart", id, json!([]));
            (200, channel_json(id))
        }
        ("POST", ["channels", spied, "snoop"]) => {
            let mut m = mock.lock().unwrap();
            if !m.channels.contains_key(*spied) {
                return err(404, "Channel not found");
            }
            let (Some(id), Some(spy)) = (q.get("snoopId"), q.get("spy")) else {
                return err(400, "Invalid parameters");
            };
            if q.get("app").map(String::as_str) != Some("callmood") {
                return err(400, "app is required");
            }
            if m.events.is_some() {
                m.channels.insert(
                    id.clone(),
                    Channel {
                        snoop_of: Some((spied.to_string(), spy.clone())),
                        media: None,
                    },
                );
                let args = json!([q.get("appArgs").cloned().unwrap_or_default()]);
                m.event("StasisStart", id, args);
            }
            (200, channel_json(id))
        }
        ("POST", ["channels", id, "variable"]) => {
            if !mock.lock().unwrap().channels.contains_key(*id) {
                return err(404, "Channel not found");
            }
            (204, Value::Null)
        }
        ("POST", ["channels", id, "continue"]) => {
            let m = mock.lock().unwrap();
            if !m.channels.contains_key(*id) {
                return err(404, "Channel not found");
            }
            m.event("StasisEnd", id, json!([]));
            (204, Value::Null)
        }
        ("DELETE", ["channels", id]) => {
            if mock.lock().unwrap().hang_up(id) {
                (204, Value::Null)
            } else {
                err(404, "Channel not found")
            }
        }
        ("POST", ["bridges"]) => {
            let Some(id) = q.get("bridgeId") else {
                return err(400, "Invalid parameters");
            };
            if q.get("type").map(String::as_str) != Some("mixing") {
                return err(400, "mock: mixing bridges only");
            }
            mock.lock().unwrap().bridges.insert(id.clone(), Vec::new());
            (
                200,
                json!({"id": id, "technology": "simple_bridge", "bridge_type": "mixing", "channels": []}),
            )
        }
        ("POST", ["bridges", id, "addChannel"]) => {
            let mut m = mock.lock().unwrap();
            if !m.bridges.contains_key(*id) {
                return err(404, "Bridge not found");
            }
            let chans: Vec<String> = q
                .get("channel")
                .map(|c| c.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            if chans.iter().any(|c| !m.channels.contains_key(c)) {
                return err(400, "Channel not found");
            }
            m.bridges.get_mut(*id).unwrap().extend(chans.clone());
            // A snoop and an ExternalMedia channel in one bridge: the snooped party's
            // audio starts flowing to callmood.
            let snoop = chans.iter().find_map(|c| m.channels[c].snoop_of.clone());
            let media = chans
                .iter()
                .find(|c| matches!(m.channels[*c].media, Some(Media::Ready(_))))
                .cloned();
            if let (Some(key), Some(media)) = (snoop, media) {
                let speech = m.speech.get(&key).cloned().unwrap_or_default();
                let (tx, rx) = oneshot::channel();
                let ch = m.channels.get_mut(&media).unwrap();
                let Some(Media::Ready(out)) = ch.media.replace(Media::Sending(tx)) else {
                    unreachable!()
                };
                tokio::spawn(send_audio(out, speech, rx));
            }
            (204, Value::Null)
        }
        ("DELETE", ["bridges", id]) => match mock.lock().unwrap().bridges.remove(*id) {
            Some(_) => (204, Value::Null),
            None => err(404, "Bridge not found"),
        },
        _ => err(404, "Resource not found"),
    }
}

/// Reads one HTTP request head; answers it and closes.
async fn http(mock: Shared, mut s: TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let mut first = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (
        first.next().unwrap_or("").to_string(),
        first.next().unwrap_or("").to_string(),
    );
    let authorized = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("authorization:") && l.ends_with(AUTH));
    let (status, body) = if authorized {
        mock.lock()
            .unwrap()
            .log
            .push((method.clone(), target.clone()));
        rest(&mock, &method, &target).await
    } else {
        err(401, "Authentication required")
    };
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// The events WebSocket: `/ari/events?app=callmood` with the credentials.
async fn events(mock: Shared, s: TcpStream) {
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let ok_auth = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v == AUTH);
        let q = query(&req.uri().to_string());
        if ok_auth && q.get("app").map(String::as_str) == Some("callmood") {
            Ok(resp)
        } else {
            let mut r = ErrorResponse::new(None);
            *r.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
            Err(r)
        }
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(s, check).await else {
        return;
    };
    let (mut tx, mut rx) = ws.split();
    let (etx, mut erx) = mpsc::unbounded_channel();
    mock.lock().unwrap().events = Some(etx.clone());
    loop {
        tokio::select! {
            ev = erx.recv() => match ev {
                Some(ev) => if tx.send(Message::Text(ev.to_string().into())).await.is_err() { break },
                None => break,
            },
            m = rx.next() => if !matches!(m, Some(Ok(_))) { break },
            // Dropped by the test (taken out of the mock): close the socket.
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                let m = mock.lock().unwrap();
                if !m.events.as_ref().is_some_and(|tx| tx.same_channel(&etx)) {
                    break;
                }
            }
        }
    }
    let mut m = mock.lock().unwrap();
    if m.events.as_ref().is_some_and(|tx| tx.same_channel(&etx)) {
        m.events = None;
    }
}

async fn start_mock(mock: Shared) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let mock = mock.clone();
            tokio::spawn(async move {
                // Peek at the request line: the events WebSocket or a REST call.
                let mut buf = [0u8; 32];
                let mut n = 0;
                for _ in 0..100 {
                    n = s.peek(&mut buf).await.unwrap_or(0);
                    if n >= 16 || n == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if buf[..n].starts_with(b"GET /ari/events") {
                    events(mock, s).await
                } else {
                    http(mock, s).await
                }
            });
        }
    });
    addr
}

async fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let t0 = tokio::time::Instant::now();
    while !ok() {
        assert!(t0.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A two-party call on the mock's caller channel `chan`: the caller says one clip, the
/// agent answers with another 200 ms after it. Returns where the caller's speech starts
/// and where the agent's track starts, and how long the talk lasts, ms.
fn add_call(mock: &Shared, chan: &str) -> (u32, u32, u64) {
    let (caller_speech, spans, _) = speech_call(&["0890"], 300);
    let (agent_speech, _, _) = speech_call(&["0880"], 0);
    let caller = pcm_8k(&caller_speech);
    // The agent answers after the caller: silence first, on the same clock.
    let agent_start_ms = caller.len() as u32 / 8 + 200;
    let mut agent = vec![0i16; agent_start_ms as usize * 8];
    agent.extend(pcm_8k(&agent_speech));
    let talk_ms = agent.len() as u64 / 8;
    let mut m = mock.lock().unwrap();
    m.channels.insert(
        chan.into(),
        Channel {
            snoop_of: None,
            media: None,
        },
    );
    m.speech.insert((chan.into(), "in".into()), caller);
    m.speech.insert((chan.into(), "out".into()), agent);
    (spans[0].0, agent_start_ms, talk_ms)
}

/// A callmood server, the mock with one two-party call on caller channel `chan`, and
/// the app between them, connected.
struct Rig {
    srv: Servers,
    mock: Shared,
    /// Where the caller's speech and the agent's track start, ms.
    caller_ms: u32,
    agent_ms: u32,
    /// How long the two talk, ms.
    talk_ms: u64,
    stop: oneshot::Sender<()>,
    app: tokio::task::JoinHandle<Result<(), ari::AriError>>,
}

async fn rig(chan: &str, target: impl FnOnce(&Servers) -> ari::Target) -> Rig {
    let srv = start_servers(8, None, None).await;
    let mock: Shared = Arc::default();
    let (caller_ms, agent_ms, talk_ms) = add_call(&mock, chan);
    let ari_addr = start_mock(mock.clone()).await;
    let (stop, stop_rx) = oneshot::channel::<()>();
    let app = tokio::spawn(ari::run(
        AriConfig {
            url: format!("http://{ari_addr}"),
            user: "u".into(),
            password: "p".into(),
            app: "callmood".into(),
            target: target(&srv),
        },
        async {
            let _ = stop_rx.await;
        },
    ));
    wait_for(
        "the app's events WebSocket",
        Duration::from_secs(10),
        || mock.lock().unwrap().events.is_some(),
    )
    .await;
    Rig {
        srv,
        mock,
        caller_ms,
        agent_ms,
        talk_ms,
        stop,
        app,
    }
}

impl Rig {
    /// The call enters the app as `call_id` (with `also`, more events right after its
    /// StasisStart), the two talk, the caller hangs up: the call's events, and how long
    /// callmood took to end it after the hang-up.
    async fn talk(
        &self,
        chan: &str,
        call_id: &str,
        also: &[(&str, Value)],
    ) -> (Vec<proto::CallEvent>, Duration) {
        let events = watch(self.srv.grpc, call_id);
        tokio::time::sleep(Duration::from_millis(200)).await;
        {
            let m = self.mock.lock().unwrap();
            m.event("StasisStart", chan, json!([call_id]));
            for (ch, args) in also {
                m.event("StasisStart", ch, args.clone());
            }
        }
        tokio::time::sleep(Duration::from_millis(self.talk_ms + 1500)).await;
        // The caller hangs up: Asterisk ends the snoops on it; the app deletes the rest.
        let hung_up = tokio::time::Instant::now();
        assert!(self.mock.lock().unwrap().hang_up(chan));
        let events = tokio::time::timeout(Duration::from_secs(30), events)
            .await
            .expect("the call ends once its legs do")
            .unwrap();
        (events, hung_up.elapsed())
    }

    /// Stops the app (it detaches what is still attached) and waits for it.
    async fn stop(self) -> (Servers, Shared) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.app)
            .await
            .expect("the app stops")
            .unwrap()
            .unwrap();
        (self.srv, self.mock)
    }
}

/// Checks a call's two legs of `transport` (nothing malformed) and that the caller's
/// speech is on the caller's leg and the agent's on the agent's, on one clock.
fn check_parties(events: &[proto::CallEvent], transport: &str, caller_ms: u32, agent_ms: u32) {
    let s = summary(events);
    assert_eq!(s.legs.len(), 2, "{s:?}");
    for l in &s.legs {
        assert_eq!(l.transport, transport);
        assert_eq!(l.packets_malformed, 0, "{l:?}");
        assert!(l.packets_received > 100, "{l:?}");
    }
    let us = utterances(events);
    let first = |role: proto::Role| {
        us.iter()
            .find(|u| u.role == role as i32)
            .unwrap_or_else(|| panic!("a {role:?} utterance: {us:?}"))
    };
    let (c, a) = (first(proto::Role::Caller), first(proto::Role::Agent));
    eprintln!(
        "{transport}: caller {}-{} ms (speech from {caller_ms} ms), agent {}-{} ms (track from {agent_ms} ms)",
        c.start_ms, c.end_ms, a.start_ms, a.end_ms
    );
    assert!(c.start_ms.abs_diff(caller_ms) < 600, "{c:?}");
    // The agent's leg runs on the caller's clock: its speech starts where its track
    // says (after the clip's own lead-in).
    assert!(
        (agent_ms.saturating_sub(200)..agent_ms + 1500).contains(&a.start_ms),
        "{c:?} {a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_app_snoops_caller_and_agent_to_audiosocket_and_tears_down_next_to_a_gone_channel() {
    let chan = "1733364000.17";
    let r = rig(chan, |srv| ari::Target::AudioSocket {
        external_host: srv.audiosocket.to_string(),
    })
    .await;
    let mock = r.mock.clone();
    let grpc = r.srv.grpc;
    let audiosocket = r.srv.audiosocket;
    // Asterisk drops the events WebSocket (a restart, say): the app comes back.
    let first = mock.lock().unwrap().events.take().unwrap();
    wait_for("the app to reconnect", Duration::from_secs(10), || {
        mock.lock()
            .unwrap()
            .events
            .as_ref()
            .is_some_and(|tx| !tx.same_channel(&first))
    })
    .await;

    let call_id = "3f2b6a52-8c1e-4d7a-9b0e-5a6c7d8e9f01";
    // A healthy call, and one whose channel hung up before the app got to it.
    let (events, _) = r.talk(chan, call_id, &[("1733364000.99", json!([]))]).await;
    wait_for("the teardown", Duration::from_secs(10), || {
        let m = mock.lock().unwrap();
        m.channels.is_empty() && m.bridges.is_empty()
    })
    .await;
    // A third call is still up when the app is stopped: the app detaches it on its way
    // out (the caller's own channel stays, everything made for it goes).
    let live = "1733364000.18";
    let live_id = "9a1d2c3b-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
    let live_events = watch(grpc, live_id);
    {
        let mut m = mock.lock().unwrap();
        m.channels.insert(
            live.into(),
            Channel {
                snoop_of: None,
                media: None,
            },
        );
        m.event("StasisStart", live, json!([live_id]));
    }
    wait_for("the live call attached", Duration::from_secs(10), || {
        let m = mock.lock().unwrap();
        m.log
            .iter()
            .any(|(_, t)| t.starts_with(&format!("/ari/channels/{live}/continue")))
    })
    .await;
    let (caller_ms, agent_ms) = (r.caller_ms, r.agent_ms);
    let (_srv, _) = r.stop().await;
    {
        let m = mock.lock().unwrap();
        assert!(m.bridges.is_empty(), "{:?}", m.bridges.keys());
        let left: Vec<&String> = m.channels.keys().collect();
        assert_eq!(
            left,
            vec![live],
            "only the live caller's own channel is left"
        );
    }
    let s = summary(
        &tokio::time::timeout(Duration::from_secs(30), live_events)
            .await
            .unwrap()
            .unwrap(),
    )
    .clone();
    assert_eq!(s.legs.len(), 2, "{s:?}");

    // The exact requests of the healthy call, in order.
    let log = mock.lock().unwrap().log.clone();
    let of = |needle: &str| -> Vec<String> {
        log.iter()
            .filter(|(_, t)| t.contains(needle))
            .map(|(m, t)| format!("{m} {}", t.split('?').next().unwrap()))
            .collect()
    };
    let ids = |role: &str, what: &str| format!("callmood-{call_id}-{role}-{what}");
    let mut want = Vec::new();
    for role in ["caller", "agent"] {
        want.push(format!("POST /ari/channels/{chan}/snoop"));
        want.push("POST /ari/channels/externalMedia".to_string());
        want.push("POST /ari/bridges".to_string());
        want.push(format!(
            "POST /ari/bridges/{}/addChannel",
            ids(role, "bridge")
        ));
    }
    want.push(format!("POST /ari/channels/{chan}/variable"));
    want.push(format!("POST /ari/channels/{chan}/continue"));
    for role in ["caller", "agent"] {
        want.push(format!("DELETE /ari/channels/{}", ids(role, "media")));
    }
    for role in ["caller", "agent"] {
        want.push(format!("DELETE /ari/channels/{}", ids(role, "snoop")));
    }
    for role in ["caller", "agent"] {
        want.push(format!("DELETE /ari/bridges/{}", ids(role, "bridge")));
    }
    let healthy: Vec<String> = log
        .iter()
        .filter(|(_, t)| t.contains(call_id) || t.contains(&format!("/{chan}/")))
        .map(|(m, t)| format!("{m} {}", t.split('?').next().unwrap()))
        .collect();
    assert_eq!(healthy, want, "{log:#?}");
    let q = query(
        &log.iter()
            .find(|(_, t)| t.contains("externalMedia"))
            .unwrap()
            .1,
    );
    assert_eq!(q["data"], call_id);
    assert_eq!(q["external_host"], audiosocket.to_string());
    let snoops: Vec<HashMap<String, String>> = log
        .iter()
        .filter(|(_, t)| t.contains("/snoop?"))
        .map(|(_, t)| query(t))
        .collect();
    assert_eq!(snoops[0]["spy"], "in");
    assert_eq!(snoops[1]["spy"], "out");

    // The gone channel: its snoop got "Channel not found", nothing was created for it,
    // and the teardown found nothing to delete.
    let gone = of("1733364000.99");
    assert_eq!(
        gone,
        vec!["POST /ari/channels/1733364000.99/snoop"],
        "{log:#?}"
    );
    let creates = log
        .iter()
        .filter(|(m, t)| m == "POST" && t.contains("externalMedia"))
        .count();
    assert_eq!(creates, 4, "the two calls' two legs each: {log:#?}");
    let deletes: HashSet<&String> = log
        .iter()
        .filter(|(m, _)| m == "DELETE")
        .map(|(_, t)| t)
        .collect();
    // Six for each call: the gone one's all answered "not found".
    assert_eq!(deletes.len(), 18, "{deletes:?}");

    // callmood: one call, two AudioSocket legs, the caller's speech on the caller's leg
    // and the agent's on the agent's.
    check_parties(&events, "audiosocket", caller_ms, agent_ms);
}

/// Over RTP: a leg per party opened with its role before its ExternalMedia channel is
/// pointed at it (μ-law over UDP), and closed after the hang-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_app_over_rtp_opens_a_leg_per_party_with_its_role_and_closes_them() {
    let chan = "1733364000.21";
    let r = rig(chan, |srv| ari::Target::Rtp {
        server: format!("http://{}", srv.grpc),
        access: Default::default(),
        // No --rtp-host: the address OpenRtpLeg names (the server's, 127.0.0.1).
        rtp_host: None,
    })
    .await;
    let (events, ended_after) = r
        .talk(chan, "5b0c1d2e-3f40-4a51-8b62-7c83d94ea5f6", &[])
        .await;
    // CloseLeg ends the legs at once, not after their idle timeout (3 s here).
    assert!(ended_after < Duration::from_secs(2), "{ended_after:?}");
    let (caller_ms, agent_ms) = (r.caller_ms, r.agent_ms);
    let (_srv, mock) = r.stop().await;
    let m = mock.lock().unwrap();
    assert!(m.channels.is_empty() && m.bridges.is_empty());
    let media: Vec<HashMap<String, String>> = m
        .log
        .iter()
        .filter(|(_, t)| t.contains("externalMedia"))
        .map(|(_, t)| query(t))
        .collect();
    assert_eq!(media.len(), 2);
    let ports: Vec<u16> = media
        .iter()
        .map(|q| {
            assert_eq!(
                (
                    q["encapsulation"].as_str(),
                    q["transport"].as_str(),
                    q["format"].as_str()
                ),
                ("rtp", "udp", "ulaw")
            );
            assert!(!q.contains_key("data"));
            let (host, port) = q["external_host"].rsplit_once(':').unwrap();
            assert_eq!(host, "127.0.0.1");
            port.parse().unwrap()
        })
        .collect();
    assert!(
        ports[0] != ports[1] && (41000..=41999).contains(&ports[0]),
        "{ports:?}"
    );
    drop(m);
    check_parties(&events, "rtp-udp", caller_ms, agent_ms);
}

/// A UUID message and frames of `frame_bytes` each, sent 4x faster than real time
/// (`bytes_per_ms` tells the pace), then a hang-up; whether the server closed first.
async fn audiosocket_call(
    to: SocketAddr,
    uuid: [u8; 16],
    audio: &[u8],
    frame_bytes: usize,
    bytes_per_ms: usize,
) -> bool {
    use callmood::core::audiosocket::{encode, Message as As};
    let mut tcp = TcpStream::connect(to).await.unwrap();
    tcp.write_all(&encode(&As::Uuid(uuid))).await.unwrap();
    let pace = Duration::from_micros((frame_bytes / bytes_per_ms) as u64 * 250);
    let mut ticks = tokio::time::interval(pace);
    for f in audio.chunks(frame_bytes) {
        ticks.tick().await;
        if tcp
            .write_all(&encode(&As::Audio(f.to_vec())))
            .await
            .is_err()
        {
            return true;
        }
    }
    let _ = tcp.write_all(&encode(&As::Hangup)).await;
    false
}

/// The AudioSocket channel driver without `c(slin)` sends the channel's μ-law under the
/// audio kind: callmood refuses that leg (counted malformed) instead of analysing noise,
/// and a healthy slin call beside it is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiosocket_mulaw_sent_as_slin_is_refused_next_to_a_healthy_call() {
    use callmood::core::audiosocket::uuid_string;
    let srv = start_servers(8, None, None).await;
    let (speech, spans, _) = speech_call(&["0890"], 500);
    let pcm: Vec<u8> = pcm_8k(&speech)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let ulaw = mulaw_8k_bytes(&speech);
    let (good, bad) = ([0x11; 16], [0x22; 16]);
    let good_events = watch(srv.grpc, &uuid_string(&good));
    let bad_events = watch(srv.grpc, &uuid_string(&bad));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (good_closed, bad_closed) = tokio::join!(
        audiosocket_call(srv.audiosocket, good, &pcm, 320, 16),
        // 20 ms of μ-law is 160 bytes: what Asterisk sends without c(slin).
        audiosocket_call(srv.audiosocket, bad, &ulaw, 160, 8),
    );
    assert!(!good_closed);
    assert!(bad_closed, "the server hung up on the μ-law leg");
    let bad = bad_events.await.unwrap();
    let l = leg(summary(&bad), 0);
    eprintln!("refused leg: {l:?}");
    assert_eq!(l.packets_malformed, 1, "{l:?}");
    // Decided on its first 500 ms with sound: 4000 "samples", 50 frames of 160 bytes.
    assert!(l.packets_received <= 60, "{l:?}");
    let good = good_events.await.unwrap();
    let l = healthy_leg(&good, spans[0].0);
    assert_eq!(l.packets_malformed, 0, "{l:?}");
    assert_eq!(l.packets_received as usize, pcm.len().div_ceil(320));
}

/// The command line: a URL it cannot use is refused at once, in words.
#[test]
fn asterisk_ari_command_refuses_an_https_url() {
    let (ok, _, err) = run(callmood().args([
        "asterisk-ari",
        "--url",
        "https://pbx:8089",
        "--user",
        "u",
        "--password",
        "p",
        "--external-host",
        "127.0.0.1:9093",
    ]));
    assert!(!ok);
    assert!(err.contains("expected http://HOST:PORT"), "{err}");
}
