//! Genesys Cloud AudioHook, protocol version 2 (`/audiohook`).
//!
//! The client (Genesys Cloud) connects with its `X-API-KEY` header (checked before the
//! upgrade: a missing or unknown key gets HTTP 401), then sends `open` with the
//! conversation and its media offers; callmood answers `opened` with the offer it takes
//! (PCMU at 8 kHz, stereo `external`/`internal` first, else a single channel), and the
//! binary frames that follow are that audio, the channels interleaved byte by byte:
//! `external` (the customer) is the caller leg, `internal` (the agent) the agent leg of
//! the call whose id is the `conversationId`. `ping` gets `pong`, `close` gets `closed`;
//! `paused`/`resumed` and `discarded` fill the audio they report as not sent with
//! silence of its length, so time stays true; `update` (a language change) gets
//! `updated`; the client's `error` is logged, and a 429 (too many requests) holds the
//! `event` messages back for its `retryAfter`. The numbering rules of the protocol:
//! the client's `seq` counts up by one from 1, its `serverseq` is never above the last
//! server `seq`, its `id` is the session's, and its `position` never goes back; a message that breaks one of them, or
//! whose type is not a client message of the protocol, is counted as malformed and the
//! session is ended with `disconnect` (reason `error`), as the reference server does. A
//! second `open` is counted and ignored. Each server message carries its own `seq` and
//! the last `clientseq` seen. Each `Alert` of the call goes to the client as an `event`
//! message (one entity in its `entities` list, type `callmood.alert`, data the alert as
//! `analyze` writes it).
//! A key given a client secret (`ws.audiohook_client_secrets`) is accepted only on an
//! upgrade request signed with it (HTTP message signatures, [`super::signature`]): an
//! unsigned, wrongly signed, stale or replayed request gets HTTP 401 before the upgrade.
//! Not done: sessions are not resumed (the server never sends `reconnect`; an `open` with
//! `continuedSessions` is a new session; Genesys documents that AudioHook does not
//! re-establish sessions).
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{
    any_closed, count_malformed, end_legs, feed, join_tracks, next_message, signature,
    text_before_start, MediaWs, Next, Track, WsError,
};
use crate::call::Transport;
use crate::core::codec::{g711, Encoding};
use crate::core::rtp::leg::RtpSettings;
use crate::proto::{call_event::Event, Role};
use crate::server::legs::{Calls, Leg};
use crate::server::security::{constant_time_find, MediaCredential};
use crate::server::session::Input;

/// AudioHook's rate, Hz.
const RATE_HZ: u32 = 8000;
/// Longest gap (`discarded`, `resumed`) filled with silence at once, ms: a hold or a
/// secure pause for payment lasts minutes; the bound keeps a client from making an
/// hours-long call of one message.
const MAX_FILL_MS: u64 = 15 * 60_000;
/// How long `event` messages are held back after a 429 without `retryAfter`, ms.
const DEFAULT_RETRY_MS: u64 = 1000;

/// AudioHook client secrets by API key (`KEY:BASE64SECRET` entries, split at the last
/// `:`, which base64 never holds). Never printed: its `Debug` shows the count alone.
#[derive(Clone, Default)]
pub struct ClientSecrets(HashMap<String, Vec<u8>>);

impl std::fmt::Debug for ClientSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientSecrets({} keys)", self.0.len())
    }
}

impl ClientSecrets {
    /// Parses `KEY:BASE64SECRET` entries; the error names the entry by its position
    /// (never its text, which holds a secret).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut out = HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            let n = i + 1;
            let (key, secret) = e
                .rsplit_once(':')
                .ok_or_else(|| format!("entry {n}: not KEY:SECRET"))?;
            if key.is_empty() {
                return Err(format!("entry {n}: the API key is empty"));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(secret.trim())
                .map_err(|_| format!("entry {n}: the client secret is not base64"))?;
            if bytes.is_empty() {
                return Err(format!("entry {n}: the client secret is empty"));
            }
            if out.insert(key.to_string(), bytes).is_some() {
                return Err(format!("entry {n}: a second secret for the same API key"));
            }
        }
        Ok(ClientSecrets(out))
    }

    /// The secret of `key`, if it has one. Every key is compared in full, in time that
    /// depends on lengths only (a key is a bearer secret too).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        let entries = self
            .0
            .iter()
            .map(|(k, secret)| (k.as_bytes(), secret.as_slice()));
        constant_time_find(entries, key.as_bytes())
    }

    /// How many keys have a secret.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no key has a secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why an AudioHook upgrade request was refused (answered 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unadmitted {
    #[error("missing or unknown X-API-KEY")]
    Key,
    #[error("signature: {0}")]
    Signature(#[from] signature::Refusal),
}

impl Unadmitted {
    /// The `callmood_client_faults_total` fault it counts as.
    pub fn fault(self) -> &'static str {
        match self {
            Unadmitted::Key => "audiohook_key",
            Unadmitted::Signature(_) => "audiohook_signature",
        }
    }

    /// What the client is told: which check failed, never why in detail.
    pub fn answer(self) -> &'static str {
        match self {
            Unadmitted::Key => "missing or unknown X-API-KEY",
            Unadmitted::Signature(_) => "missing or invalid signature",
        }
    }
}

/// Whether an AudioHook upgrade request may go on, at Unix time `now_s`: its `X-API-KEY`
/// is one of `cfg`'s keys or has a client secret, and where it has one, the request is
/// signed with it ([`signature::verify`]).
pub fn admit(req: &Request, cfg: &super::WsConfig, now_s: i64) -> Result<String, Unadmitted> {
    let key = req
        .headers()
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .ok_or(Unadmitted::Key)?;
    match cfg.audiohook_client_secrets.get(key) {
        Some(secret) => {
            signature::verify(req, key, secret, now_s, &cfg.audiohook_nonces)?;
            Ok(key.to_string())
        }
        None => {
            let keys = cfg.audiohook_api_keys.iter().map(|k| (k.as_bytes(), ()));
            constant_time_find(keys, key.as_bytes())
                .map(|()| key.to_string())
                .ok_or(Unadmitted::Key)
        }
    }
}

/// A client message, as far as callmood reads it.
#[derive(Debug, Deserialize)]
pub struct ClientMsg {
    #[serde(rename = "type")]
    pub kind: String,
    pub seq: u64,
    /// The last server `seq` the client had seen.
    #[serde(default)]
    pub serverseq: u64,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub parameters: Value,
    /// The client's position in the audio stream (`PT1.25S`).
    #[serde(default)]
    pub position: Option<String>,
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<ClientMsg, serde_json::Error> {
    serde_json::from_str(text)
}

/// One media offer of `open`.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
pub struct Media {
    #[serde(rename = "type")]
    pub kind: String,
    pub format: String,
    pub channels: Vec<String>,
    pub rate: u32,
}

/// The offer callmood takes: PCMU at 8 kHz, stereo (`external`, `internal`) first,
/// then a single channel; None when there is none.
pub fn choose_media(parameters: &Value) -> Option<Media> {
    let offers: Vec<Media> = serde_json::from_value(parameters.get("media")?.clone()).ok()?;
    let usable = |m: &&Media| {
        m.kind == "audio"
            && m.format == "PCMU"
            && m.rate == RATE_HZ
            && !m.channels.is_empty()
            && m.channels.len() <= 2
            && m.channels
                .iter()
                .all(|c| c == "external" || c == "internal")
    };
    let best = offers.iter().filter(usable).max_by_key(|m| {
        (
            m.channels.len(),
            m.channels.first().is_some_and(|c| c == "external"),
        )
    });
    best.cloned()
}

/// An ISO 8601 duration as AudioHook writes it (`PT1.25S`), in ms.
pub fn duration_ms(s: &str) -> Option<u64> {
    let secs: f64 = s.strip_prefix("PT")?.strip_suffix('S')?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).round() as u64)
}

/// The server side of one session's numbering.
struct Numbering {
    id: String,
    /// The last server `seq` sent.
    seq: u64,
    /// The last client `seq` received.
    clientseq: u64,
    /// The last client `position` received, ms.
    position_ms: u64,
}

impl Numbering {
    /// The next server message of `kind`.
    fn message(&mut self, kind: &str, parameters: Value) -> WsMessage {
        self.seq += 1;
        let m = json!({
            "version": "2", "type": kind, "seq": self.seq, "clientseq": self.clientseq,
            "id": self.id, "parameters": parameters,
        });
        WsMessage::Text(m.to_string().into())
    }
}

/// Why a client message breaks the protocol's numbering, if it does (the words go to
/// the client in `disconnect`).
fn numbering_error(m: &ClientMsg, n: &Numbering) -> Option<String> {
    if m.seq != n.clientseq + 1 {
        return Some(format!(
            "Invalid seq value: {} after {} (not monotonically increasing)",
            m.seq, n.clientseq
        ));
    }
    if m.serverseq > n.seq {
        return Some(format!(
            "Invalid serverseq value: {} is above the last seq sent, {}",
            m.serverseq, n.seq
        ));
    }
    if m.id != n.id {
        return Some(format!("Session identifier mismatch: {:?}", m.id));
    }
    // The stream's position only grows (a `position` that is not a duration is let be).
    if let Some(ms) = m.position.as_deref().and_then(duration_ms) {
        if ms < n.position_ms {
            return Some(format!(
                "Invalid position: {ms} ms after {} ms",
                n.position_ms
            ));
        }
    }
    None
}

/// How long callmood waits, after its `disconnect`, for the client's `close`.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Ends the session from callmood's side: `disconnect` with `parameters`, then the close
/// transaction ([`close_transaction`]). Err only when the `disconnect` could not be sent.
async fn disconnect(ws: &mut MediaWs, n: &mut Numbering, parameters: Value) -> Result<(), WsError> {
    ws.send(n.message("disconnect", parameters)).await?;
    close_transaction(ws, n).await;
    Ok(())
}

/// After callmood's `disconnect`: the client always ends the session itself (so the
/// protocol says), with a `close` that is answered `closed`; audio and any other
/// message meanwhile are let be. Gives up after [`CLOSE_WAIT`], or when the client
/// goes first.
async fn close_transaction(ws: &mut MediaWs, n: &mut Numbering) {
    let deadline = tokio::time::Instant::now() + CLOSE_WAIT;
    loop {
        let text = match next_message(ws, deadline, CLOSE_WAIT, true).await {
            Ok(Next::Message(WsMessage::Text(t))) => t,
            Ok(Next::Message(_)) => continue,
            Ok(Next::Closed) | Err(_) => return,
        };
        match parse(&text) {
            Ok(m) if m.kind == "close" => {
                n.clientseq = m.seq;
                let _ = ws.send(n.message("closed", json!({}))).await;
                return;
            }
            _ => continue,
        }
    }
}

/// The client message types of protocol v2 besides `open`.
const CLIENT_TYPES: [&str; 7] = [
    "close",
    "discarded",
    "error",
    "paused",
    "ping",
    "resumed",
    "update",
];

/// Serves one AudioHook session.
/// `path_id`: the call id the URL's path named (`/audiohook/ID`), over the open message's
/// `conversationId`.
pub(super) async fn run(
    mut ws: MediaWs,
    calls: &Arc<Calls>,
    path_id: Option<String>,
    credential: Option<&MediaCredential>,
) -> Result<(), WsError> {
    let join = calls.config().join_timeout;
    let idle = calls.config().idle_timeout;
    let mut dropped_before = 0u64;
    let deadline = tokio::time::Instant::now() + join;
    let (open, media) = loop {
        let text = text_before_start(&mut ws, deadline, join, &mut dropped_before).await?;
        match parse(&text) {
            Ok(m) if m.kind == "open" && m.seq == 1 => {
                let mut n = Numbering {
                    id: m.id.clone(),
                    seq: 0,
                    clientseq: 1,
                    position_ms: 0,
                };
                let Some(media) = choose_media(&m.parameters) else {
                    let info = "no PCMU 8000 Hz offer with external/internal channels";
                    let bye = json!({"reason": "error", "info": info});
                    let _ = disconnect(&mut ws, &mut n, bye).await;
                    let _ = ws.close(None).await;
                    return Err(WsError::BadStart(info.into()));
                };
                break ((m, n), media);
            }
            _ => dropped_before += 1,
        }
    };
    let (open, mut n) = open;
    let call_id = path_id.unwrap_or_else(|| {
        open.parameters
            .get("conversationId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(&open.id)
            .to_string()
    });
    let tracks: Vec<Track> = media
        .channels
        .iter()
        .map(|c| Track {
            role: if c == "external" {
                Role::Caller
            } else {
                Role::Agent
            },
            encoding: Encoding::Mulaw,
            sample_rate_hz: RATE_HZ,
            jitter_ms: RtpSettings::for_encoding(Encoding::Mulaw).jitter_ms, // unused: no RTP
        })
        .collect();
    let legs = match join_tracks(calls, &call_id, &tracks, Transport::AudioHook, credential).await {
        Ok(l) => l,
        Err(e) => {
            let bye = json!({"reason": "error", "info": e.to_string()});
            let _ = disconnect(&mut ws, &mut n, bye).await;
            let _ = ws.close(None).await;
            return Err(e);
        }
    };
    let mut alerts = legs[0].call.clone().watch();
    let mut pace = calls.pace(&legs);
    let result = async {
        ws.send(n.message("opened", json!({"media": [media], "startPaused": false})))
            .await?;
        if !count_malformed(&legs[0], dropped_before).await {
            return Err(WsError::CallEnded);
        }
        let mut last = tokio::time::Instant::now();
        let mut alerts_open = true;
        // Until when the client asked (429) for no `event` messages.
        let mut hold_events: Option<tokio::time::Instant> = None;
        loop {
            enum Step {
                Socket(Result<Next, WsError>),
                Alert(Option<Value>),
                Closed,
            }
            let step = tokio::select! {
                m = next_message(&mut ws, last + idle, idle, true) => {
                    last = tokio::time::Instant::now();
                    Step::Socket(m)
                }
                ev = alerts.recv(), if alerts_open => Step::Alert(match ev {
                    Some(Ok(ev)) => match ev.event {
                        Some(Event::Alert(a)) => serde_json::to_value(a).ok(),
                        _ => continue,
                    },
                    _ => None,
                }),
                _ = any_closed(&legs) => Step::Closed,
            };
            let msg = match step {
                Step::Alert(Some(alert)) => {
                    if hold_events.is_some_and(|t| tokio::time::Instant::now() < t) {
                        tracing::info!(call = %call_id, "alert not sent: the client asked to wait (429)");
                        continue;
                    }
                    // `entities` is a list (the protocol's `EventParameters`); a lone
                    // `entity` was an early draft's shape that clients now refuse.
                    let entity = json!({"type": "callmood.alert", "data": alert});
                    ws.send(n.message("event", json!({"entities": [entity]})))
                        .await?;
                    continue;
                }
                Step::Alert(None) => {
                    alerts_open = false;
                    continue;
                }
                Step::Closed => {
                    disconnect(&mut ws, &mut n, json!({"reason": "completed"})).await?;
                    return Ok(());
                }
                Step::Socket(m) => m,
            };
            let text = match msg {
                Ok(Next::Closed) => return Ok(()),
                Ok(Next::Message(WsMessage::Binary(b))) => {
                    if !feed(&legs, &b, 1, &mut pace).await? {
                        count_malformed(&legs[0], 1).await;
                    }
                    continue;
                }
                Ok(Next::Message(WsMessage::Text(t))) => t,
                Ok(Next::Message(_)) => continue,
                Err(e) => {
                    if matches!(e, WsError::Socket(_)) {
                        count_malformed(&legs[0], 1).await;
                    }
                    return Err(e);
                }
            };
            let Ok(m) = parse(&text) else {
                count_malformed(&legs[0], 1).await;
                continue;
            };
            let broken = numbering_error(&m, &n).or_else(|| {
                (m.kind != "open" && !CLIENT_TYPES.contains(&m.kind.as_str())).then(|| {
                    format!(
                        "Invalid Message: {:?} is not a supported client message",
                        m.kind
                    )
                })
            });
            if let Some(info) = broken {
                count_malformed(&legs[0], 1).await;
                disconnect(&mut ws, &mut n, json!({"reason": "error", "info": info})).await?;
                return Err(WsError::BadStart(info));
            }
            n.clientseq = m.seq;
            if let Some(ms) = m.position.as_deref().and_then(duration_ms) {
                n.position_ms = ms;
            }
            match m.kind.as_str() {
                "ping" => ws.send(n.message("pong", json!({}))).await?,
                "close" => {
                    ws.send(n.message("closed", json!({}))).await?;
                    return Ok(());
                }
                "discarded" | "resumed" => {
                    let gap = m
                        .parameters
                        .get("discarded")
                        .and_then(Value::as_str)
                        .and_then(duration_ms);
                    match gap {
                        Some(ms) => fill_silence(&legs, ms.min(MAX_FILL_MS)).await?,
                        None => {
                            count_malformed(&legs[0], 1).await;
                        }
                    }
                }
                "paused" => {}
                "update" => {
                    let language = m.parameters.get("language").and_then(Value::as_str);
                    tracing::info!(call = %call_id, ?language, "AudioHook update");
                    ws.send(n.message("updated", json!({}))).await?;
                }
                "error" => {
                    let code = m.parameters.get("code").and_then(Value::as_u64);
                    let message = m.parameters.get("message").and_then(Value::as_str);
                    let retry = m
                        .parameters
                        .get("retryAfter")
                        .and_then(Value::as_str)
                        .and_then(duration_ms);
                    tracing::warn!(call = %call_id, ?code, ?message, ?retry, "AudioHook client error");
                    if code == Some(429) {
                        let wait = Duration::from_millis(retry.unwrap_or(DEFAULT_RETRY_MS));
                        hold_events = Some(tokio::time::Instant::now() + wait);
                    }
                }
                _ => {
                    // a second open
                    count_malformed(&legs[0], 1).await;
                }
            }
        }
    }
    .await;
    end_legs(legs).await;
    let _ = ws.close(None).await;
    result
}

/// Silence of `ms` on every leg (audio the client reports it did not send).
async fn fill_silence(legs: &[Leg], ms: u64) -> Result<(), WsError> {
    let silence = vec![g711::ulaw_encode(0); (ms * RATE_HZ as u64 / 1000) as usize];
    for leg in legs {
        for chunk in silence.chunks(RATE_HZ as usize) {
            let input = Input::Audio {
                channel_id: leg.channel_id,
                data: chunk.to_vec(),
            };
            leg.input
                .send(input)
                .await
                .map_err(|_| WsError::CallEnded)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stereo_pcmu_offer_is_taken() {
        let p = json!({"conversationId": "c", "media": [
            {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000},
            {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000},
            {"type": "audio", "format": "L16", "channels": ["external", "internal"], "rate": 8000},
        ]});
        let m = choose_media(&p).unwrap();
        assert_eq!(m.channels, ["external", "internal"]);
        let only_l16 = json!({"media": [
            {"type": "audio", "format": "L16", "channels": ["external"], "rate": 8000}]});
        assert_eq!(choose_media(&only_l16), None);
        assert_eq!(choose_media(&json!({})), None);
    }

    #[test]
    fn durations_and_messages() {
        assert_eq!(duration_ms("PT0S"), Some(0));
        assert_eq!(duration_ms("PT1.25S"), Some(1250));
        assert_eq!(duration_ms("PT-1S"), None);
        assert_eq!(duration_ms("1.5"), None);
        let m = parse(r#"{"version":"2","type":"ping","seq":3,"serverseq":2,"id":"s","position":"PT1S","parameters":{}}"#).unwrap();
        assert_eq!((m.kind.as_str(), m.seq), ("ping", 3));
        assert!(parse(r#"{"type":"ping"}"#).is_err(), "no seq");
        let mut n = Numbering {
            id: "s".into(),
            seq: 0,
            clientseq: 3,
            position_ms: 0,
        };
        let WsMessage::Text(t) = n.message("pong", json!({})) else {
            panic!()
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        assert_eq!(
            (
                v["type"].as_str(),
                v["seq"].as_u64(),
                v["clientseq"].as_u64()
            ),
            (Some("pong"), Some(1), Some(3))
        );
    }

    #[test]
    fn numbering_rules_of_client_messages() {
        let n = Numbering {
            id: "s".into(),
            seq: 4,
            clientseq: 6,
            position_ms: 2000,
        };
        let at = |seq: u64, serverseq: u64, id: &str, position: &str| {
            parse(
                &json!({"version": "2", "type": "ping", "seq": seq, "serverseq": serverseq,
                "id": id, "position": position, "parameters": {}})
                .to_string(),
            )
            .unwrap()
        };
        let msg = |seq: u64, serverseq: u64, id: &str| at(seq, serverseq, id, "PT2S");
        assert_eq!(numbering_error(&msg(7, 4, "s"), &n), None);
        assert_eq!(numbering_error(&msg(7, 0, "s"), &n), None);
        assert_eq!(numbering_error(&at(7, 4, "s", "PT2.02S"), &n), None);
        for (m, why) in [
            (msg(6, 4, "s"), "seq"),       // repeated
            (msg(8, 4, "s"), "seq"),       // skipped
            (msg(5, 4, "s"), "seq"),       // backwards
            (msg(7, 5, "s"), "serverseq"), // a server message that was never sent
            (msg(7, 4, "t"), "identifier"),
            (at(7, 4, "s", "PT1.5S"), "position"),
        ] {
            let e = numbering_error(&m, &n).expect(why);
            assert!(e.contains(why), "{e}");
        }
    }
}
