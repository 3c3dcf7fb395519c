//! WebSocket media connectors: one listener (`serve --ws-addr`), a path per protocol,
//! each socket's tracks joined as legs of a call by call id, exactly like RTP and
//! AudioSocket legs ([`super::legs`]): the same call cap, the same events through
//! `WatchCall`, the same `LegStats` (transport `twilio-ws`, `audio-fork`, `audiohook`).
//!
//! ```text
//!  GET /twilio    ─► twilio.rs    JSON frames, base64 μ-law ─► RTP packets ─► jitter buffer
//!  GET /fork      ─► fork.rs      JSON metadata, binary L16 (stereo: caller left) ─► Audio
//!  GET /audiohook ─► audiohook.rs open/opened, binary PCMU stereo (external = caller) ─► Audio
//!  anything else  ─► HTTP 404 before the upgrade
//! ```
//! Bad input on a socket (malformed JSON, bad base64, an unknown event, media before the
//! call is named, a second start, a frame over the size limit) is dropped and counted
//! in the leg's `packets_malformed`; frames dropped before the call was named are
//! counted on its first leg once it is. A socket that does not name its call within the
//! join timeout, or goes quiet for the leg idle timeout, is closed. One socket's errors
//! end at most its own legs.
//!
//! Audio is paced as `StreamCall`'s ([`crate::server::limits::LivePace`]): once a socket's
//! audio runs `server.max_ahead_s` ahead of the wall clock (counted from its first audio
//! frame), the socket is not read until the clock catches up, so a sender far faster than
//! real time is held back by TCP flow control. Each wait is at most about one frame's
//! audio (a frame is at most `ws.max_message_bytes`), so a close is seen soon after.
pub mod audiohook;
pub mod fork;
pub mod signature;
pub mod twilio;
pub mod twilio_signature;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::call::Transport;
use crate::core::codec::Encoding;
use crate::core::rtp::leg::RtpSettings;
use crate::proto::{self, Role};
use crate::server::legs::{Calls, Leg, LegRequest};
use crate::server::limits::LivePace;
use crate::server::security::{check_call_id, MediaCredential, MediaKind};
use crate::server::session::Input;
use crate::server::status::ServerError;
use crate::server::tls::{Accept, MediaStream};

/// A media WebSocket, over plain TCP or TLS.
pub type MediaWs = WebSocketStream<MediaStream>;

/// Default largest WebSocket message (and frame) accepted, bytes: a second of 16 kHz
/// stereo L16 is 64 000 bytes, a Twilio media message about 300.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 10;

/// Settings of the WebSocket listener.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest message (and frame) accepted, bytes; a larger one ends the socket and is
    /// counted as malformed.
    pub max_message_bytes: usize,
    /// Twilio: the `customParameters` key whose value is the call id (instead of
    /// `callSid`), so that a stream joins a call known by another id.
    pub twilio_call_id_param: Option<String>,
    /// AudioHook: the accepted `X-API-KEY` values; none accepts no AudioHook session.
    pub audiohook_api_keys: Vec<String>,
    /// AudioHook: client secrets by API key. A key with a secret is accepted too, and only
    /// on an upgrade request signed with the secret ([`signature`]).
    pub audiohook_client_secrets: audiohook::ClientSecrets,
    /// Nonces of the signed AudioHook requests accepted, shared by every connection.
    pub audiohook_nonces: Arc<signature::Nonces>,
    /// Twilio: the accounts' auth tokens. With any, a `/twilio` upgrade request needs a
    /// valid `X-Twilio-Signature` ([`twilio_signature`]); with none, `/twilio` is open.
    pub twilio_auth_tokens: Vec<String>,
    /// Twilio: the `wss://` origin the TwiML's `<Stream url>` names, when a proxy in front
    /// changes the `Host` callmood sees; default `wss://` and the request's `Host`.
    pub twilio_public_url: Option<String>,
    /// Audio fork: accepted `user:password` pairs. With any, a `/fork` upgrade needs one of
    /// them as HTTP Basic credentials; with none, `/fork` is open.
    pub fork_basic_auth: Vec<String>,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            twilio_call_id_param: None,
            audiohook_api_keys: Vec::new(),
            audiohook_client_secrets: audiohook::ClientSecrets::default(),
            audiohook_nonces: Arc::default(),
            twilio_auth_tokens: Vec::new(),
            twilio_public_url: None,
            fork_basic_auth: Vec::new(),
        }
    }
}

impl WsConfig {
    /// Whether these settings accept `id` as a credential of `kind` (a Twilio auth token,
    /// an AudioHook API key, an audio fork user): a token file line naming one they do not
    /// can never match. For start-up checks, not in constant time.
    pub fn accepts(&self, kind: MediaKind, id: &[u8]) -> bool {
        let is = |s: &str| s.as_bytes() == id;
        match kind {
            MediaKind::Twilio => self.twilio_auth_tokens.iter().any(|t| is(t)),
            MediaKind::AudioHook => {
                self.audiohook_api_keys.iter().any(|k| is(k))
                    || std::str::from_utf8(id)
                        .is_ok_and(|k| self.audiohook_client_secrets.get(k).is_some())
            }
            MediaKind::Fork => self.fork_basic_auth.iter().any(|p| is(fork::user_of(p))),
        }
    }

    /// What each path asks of a client, for the start line (counts only, never a secret):
    /// `/twilio signed (1 auth token), /fork open, /audiohook refused (no API key)`.
    pub fn access_summary(&self) -> String {
        let n = |k: usize, one: &str| format!("{k} {one}{}", if k == 1 { "" } else { "s" });
        let twilio = match self.twilio_auth_tokens.len() {
            0 => "open".to_string(),
            k => format!("signed ({})", n(k, "auth token")),
        };
        let fork = match self.fork_basic_auth.len() {
            0 => "open".to_string(),
            k => format!("Basic credentials ({})", n(k, "pair")),
        };
        let secrets = self.audiohook_client_secrets.len();
        let plain = self
            .audiohook_api_keys
            .iter()
            .filter(|k| self.audiohook_client_secrets.get(k).is_none())
            .count();
        let audiohook = match (plain, secrets) {
            (0, 0) => "refused (no API key)".to_string(),
            (p, 0) => n(p, "API key"),
            (0, s) => format!("signed ({})", n(s, "key")),
            (p, s) => format!("{}, signed for {}", n(p + s, "API key"), s),
        };
        format!("/twilio {twilio}, /fork {fork}, /audiohook {audiohook}")
    }
}

/// Why a WebSocket connection ended other than by its protocol's own end (logged;
/// the call's events say what it lost).
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("TLS handshake: {0}")]
    Tls(#[source] std::io::Error),
    #[error("handshake: {0}")]
    Handshake(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("no handshake within {secs} s")]
    HandshakeTimeout { secs: u64 },
    #[error("socket: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the call was not named within {secs} s")]
    NotNamed { secs: u64 },
    #[error("no message for {secs} s")]
    Idle { secs: u64 },
    #[error("closed before the call was named")]
    ClosedBeforeStart,
    #[error("unusable start: {0}")]
    BadStart(String),
    #[error("cannot join: {0}")]
    Join(#[from] ServerError),
    #[error("the call ended")]
    CallEnded,
}

/// The protocol a request path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/twilio`: Twilio Media Streams.
    Twilio,
    /// `/fork`: FreeSWITCH `mod_audio_fork` / jambonz `listen`; `events` when the query
    /// has `events=1` (Alerts and Utterances sent back as JSON text frames).
    Fork { events: bool },
    /// `/audiohook`: Genesys Cloud AudioHook v2.
    AudioHook,
}

impl Route {
    /// The route of a request target (`/fork?events=1`) and the call id its path names, if
    /// any: `/twilio/CA42` is the Twilio route for call `CA42`, which then names the call over
    /// what its first message says. A balancer can hash on the path, where it cannot read
    /// the messages (deploy/haproxy.cfg). The id is not checked here
    /// ([`super::security::check_call_id`] is). None for an unknown path.
    pub fn parse(target: &str) -> Option<(Route, Option<String>)> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let path = path.strip_suffix('/').unwrap_or(path);
        let rest = path.strip_prefix('/')?;
        let (name, id) = match rest.split_once('/') {
            Some((name, id)) if !id.is_empty() && !id.contains('/') => (name, Some(id)),
            Some(_) => return None,
            None => (rest, None),
        };
        let route = match name {
            "twilio" => Route::Twilio,
            "fork" => Route::Fork {
                events: query
                    .split('&')
                    .any(|kv| matches!(kv, "events=1" | "events=true")),
            },
            "audiohook" => Route::AudioHook,
            _ => return None,
        };
        Some((route, id.map(str::to_string)))
    }
}

/// Serves WebSocket media connections on `listener` until the task is dropped: `wss://`
/// when `accept` has TLS.
pub async fn serve(listener: TcpListener, calls: Arc<Calls>, cfg: WsConfig, accept: Accept) {
    let cfg = Arc::new(cfg);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let (calls, cfg, accept) = (calls.clone(), cfg.clone(), accept.clone());
                tokio::spawn(async move {
                    if let Err(e) = connection(stream, &accept, &calls, &cfg).await {
                        tracing::info!(%peer, error = %e, "WebSocket media connection ended");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "WebSocket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why an upgrade request lacked its path's credential (answered 401, logged, counted).
struct Unauthorized {
    /// The `callmood_client_faults_total` fault.
    fault: &'static str,
    /// What the client is told.
    answer: &'static str,
    /// What the log says.
    reason: String,
}

/// Checks the credential `route` asks for, where one is configured: AudioHook's API key
/// and signature, Twilio's `X-Twilio-Signature`, the audio fork's Basic credentials.
/// Returns the credential the request proved (None on a path configured open), which a
/// token file may map to a tenant ([`Calls::media_tenant_of`]).
fn admit(
    route: &Route,
    req: &Request,
    cfg: &WsConfig,
) -> Result<Option<MediaCredential>, Unauthorized> {
    let proved = |kind, id: String| Ok(Some(MediaCredential { kind, id }));
    match route {
        Route::AudioHook => match audiohook::admit(req, cfg, signature::unix_now_s()) {
            Ok(key) => proved(MediaKind::AudioHook, key),
            Err(why) => Err(Unauthorized {
                fault: why.fault(),
                answer: why.answer(),
                reason: why.to_string(),
            }),
        },
        Route::Twilio if !cfg.twilio_auth_tokens.is_empty() => {
            let public = cfg.twilio_public_url.as_deref();
            match twilio_signature::verify(req, &cfg.twilio_auth_tokens, public) {
                Ok(i) => proved(MediaKind::Twilio, cfg.twilio_auth_tokens[i].clone()),
                Err(why) => Err(Unauthorized {
                    fault: "twilio_signature",
                    answer: "missing or invalid X-Twilio-Signature",
                    reason: why.to_string(),
                }),
            }
        }
        Route::Fork { .. } if !cfg.fork_basic_auth.is_empty() => {
            match fork::basic_auth_user(req, &cfg.fork_basic_auth) {
                Some(user) => proved(MediaKind::Fork, user),
                None => Err(Unauthorized {
                    fault: "fork_auth",
                    answer: "missing or unknown Basic credentials",
                    reason: "missing or unknown Basic credentials".into(),
                }),
            }
        }
        _ => Ok(None),
    }
}

/// One connection: the TLS handshake if the listener has TLS, the WebSocket handshake
/// (404 for an unknown path, 401 for AudioHook without a known key or, where the key has a
/// client secret, without a valid signature, and for Twilio without a valid
/// `X-Twilio-Signature` where auth tokens are set, and for the audio fork without accepted
/// Basic credentials where some are set), both within the join
/// timeout, then the protocol of its path.
async fn connection(
    stream: TcpStream,
    accept: &Accept,
    calls: &Arc<Calls>,
    cfg: &WsConfig,
) -> Result<(), WsError> {
    let mut route = None;
    let mut path_id = None;
    let mut credential = None;
    // The callback's type is tungstenite's: its error is the HTTP response to send.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let target = req
            .uri()
            .path_and_query()
            .map_or(req.uri().path(), |p| p.as_str());
        let parsed = Route::parse(target);
        if let Some((r, _)) = &parsed {
            match admit(r, req, cfg) {
                Ok(c) => credential = c,
                Err(no) => {
                    tracing::info!(fault = no.fault, "WebSocket upgrade refused: {}", no.reason);
                    calls.metrics().client_fault(no.fault);
                    return Err(refuse(StatusCode::UNAUTHORIZED, no.answer));
                }
            }
        }
        match parsed {
            None => Err(refuse(StatusCode::NOT_FOUND, "no such path")),
            Some((_, Some(id))) if check_call_id(&id).is_err() => Err(refuse(
                StatusCode::BAD_REQUEST,
                "the call id in the path: at most 128 of A-Z a-z 0-9 . _ : @ + = -",
            )),
            Some((r, id)) => {
                route = Some(r);
                path_id = id;
                Ok(resp)
            }
        }
    };
    let ws_cfg = WebSocketConfig::default()
        .max_message_size(Some(cfg.max_message_bytes))
        .max_frame_size(Some(cfg.max_message_bytes));
    let join = calls.config().join_timeout;
    let handshakes = async {
        let stream = accept.accept(stream).await.map_err(WsError::Tls)?;
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_cfg))
            .await
            .map_err(WsError::Handshake)
    };
    let ws =
        tokio::time::timeout(join, handshakes)
            .await
            .map_err(|_| WsError::HandshakeTimeout {
                secs: join.as_secs(),
            })??;
    match route {
        Some(Route::Twilio) => twilio::run(ws, calls, cfg, path_id, credential.as_ref()).await,
        Some(Route::Fork { events }) => {
            fork::run(ws, calls, events, path_id, credential.as_ref()).await
        }
        Some(Route::AudioHook) => audiohook::run(ws, calls, path_id, credential.as_ref()).await,
        None => Ok(()), // the callback refused: no upgrade happened
    }
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_string()));
    *r.status_mut() = status;
    r
}

/// What the socket gave next.
enum Next {
    Message(WsMessage),
    /// The peer closed (a close frame or the end of the stream).
    Closed,
}

/// The next message before `deadline` (`wait` after the last one): missing it is
/// `idle` (or `not_named` before the call is named); a protocol error (such as a
/// message over the size limit) is an error.
async fn next_message(
    ws: &mut (impl futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
              + Unpin),
    deadline: tokio::time::Instant,
    wait: Duration,
    named: bool,
) -> Result<Next, WsError> {
    match tokio::time::timeout_at(deadline, ws.next()).await {
        Err(_) if named => Err(WsError::Idle {
            secs: wait.as_secs(),
        }),
        Err(_) => Err(WsError::NotNamed {
            secs: wait.as_secs(),
        }),
        Ok(None) | Ok(Some(Ok(WsMessage::Close(_)))) => Ok(Next::Closed),
        Ok(Some(Ok(m))) => Ok(Next::Message(m)),
        Ok(Some(Err(e))) => Err(e.into()),
    }
}

/// How one track of a socket becomes a leg.
struct Track {
    role: Role,
    encoding: Encoding,
    sample_rate_hz: u32,
    /// Jitter buffer depth for tracks whose frames go through it, ms.
    jitter_ms: u32,
}

/// Joins a socket's tracks as legs of call `call_id`, in order (the first starts the
/// call and takes its place under the cap), among the calls of the tenant `credential` is
/// mapped to ([`Calls::media_tenant_of`]). A failed join ends the legs joined before it.
async fn join_tracks(
    calls: &Arc<Calls>,
    call_id: &str,
    tracks: &[Track],
    transport: Transport,
    credential: Option<&MediaCredential>,
) -> Result<Vec<Leg>, WsError> {
    let mut legs = Vec::with_capacity(tracks.len());
    // Once for the socket: every track joins the same tenant's call.
    let tenant = calls.media_tenant_of(credential);
    for t in tracks {
        let req = LegRequest {
            call_id: call_id.to_string(),
            role: t.role,
            encoding: t.encoding,
            sample_rate_hz: t.sample_rate_hz,
            rtp: RtpSettings {
                jitter_ms: t.jitter_ms,
                ..RtpSettings::for_encoding(t.encoding)
            },
            transport,
            options: proto::CallOptions::default(),
            proved: credential.is_some(),
        };
        match calls.join_as(tenant.clone(), req).await {
            Ok(leg) => legs.push(leg),
            Err(e) => {
                end_legs(legs).await;
                return Err(e.into());
            }
        }
    }
    if let Some(leg) = legs.first() {
        tracing::info!(call = %leg.call.call_id(), legs = legs.len(), ?transport, "WebSocket legs joined");
    }
    if let Some(credential) = credential.cloned() {
        calls.end_on_remap(&mut legs, move |calls| {
            calls.media_tenant_of(Some(&credential)) == tenant
        });
    }
    Ok(legs)
}

/// Ends a socket's legs (and the call, if they were its last).
async fn end_legs(legs: Vec<Leg>) {
    for leg in legs {
        leg.end().await;
    }
}

/// Resolves when any of the legs is asked to end; never when there are none.
async fn any_closed(legs: &[Leg]) {
    match legs {
        [] => std::future::pending().await,
        [a] => a.closed().await,
        [a, b, ..] => tokio::select! { _ = a.closed() => {}, _ = b.closed() => {} },
    }
}

/// Counts `n` inputs of the leg as malformed; false when the call is gone.
async fn count_malformed(leg: &Leg, n: u64) -> bool {
    for _ in 0..n {
        let input = Input::Malformed {
            channel_id: leg.channel_id,
        };
        if leg.input.send(input).await.is_err() {
            return false;
        }
    }
    true
}

/// Splits interleaved stereo of `width`-byte samples (left, right, ...) into its two
/// channels' bytes: 2 for L16, 1 for G.711.
pub fn deinterleave(data: &[u8], width: usize) -> (Vec<u8>, Vec<u8>) {
    let mut left = Vec::with_capacity(data.len() / 2);
    let mut right = Vec::with_capacity(data.len() / 2);
    for frame in data.chunks_exact(2 * width) {
        left.extend_from_slice(&frame[..width]);
        right.extend_from_slice(&frame[width..]);
    }
    (left, right)
}

/// Waits, not reading the socket, while `bytes` more of `leg`'s audio would run beyond
/// the pace's allowance.
async fn hold_to_pace(pace: &mut LivePace, leg: &Leg, bytes: usize) {
    let wait = pace.admit_packet(leg.channel_id, bytes);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// Feeds one binary frame of audio to the socket's legs (two: stereo interleaved, the
/// first leg's sample first), held to `pace` first; false when it does not hold whole
/// samples of every leg.
async fn feed(
    legs: &[Leg],
    data: &[u8],
    width: usize,
    pace: &mut LivePace,
) -> Result<bool, WsError> {
    if data.is_empty() || !data.len().is_multiple_of(width * legs.len()) {
        return Ok(false);
    }
    // Every leg gets the same share of the frame: the first leg's pace is theirs.
    if let Some(first) = legs.first() {
        hold_to_pace(pace, first, data.len() / legs.len()).await;
    }
    let parts = if legs.len() == 2 {
        let (l, r) = deinterleave(data, width);
        vec![l, r]
    } else {
        vec![data.to_vec()]
    };
    for (leg, data) in legs.iter().zip(parts) {
        let input = Input::Audio {
            channel_id: leg.channel_id,
            data,
        };
        leg.input
            .send(input)
            .await
            .map_err(|_| WsError::CallEnded)?;
    }
    Ok(true)
}

/// The next text frame by `deadline`, before the call is named: other data frames are
/// counted in `dropped` (for the call's first leg, once it is named).
async fn text_before_start(
    ws: &mut (impl futures_util::Stream<Item = Result<WsMessage, tokio_tungstenite::tungstenite::Error>>
              + Unpin),
    deadline: tokio::time::Instant,
    wait: Duration,
    dropped: &mut u64,
) -> Result<Utf8Bytes, WsError> {
    loop {
        match next_message(ws, deadline, wait, false).await? {
            Next::Closed => return Err(WsError::ClosedBeforeStart),
            Next::Message(WsMessage::Text(t)) => return Ok(t),
            Next::Message(WsMessage::Ping(_) | WsMessage::Pong(_)) => {}
            Next::Message(_) => *dropped += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_the_credentials_each_protocol_takes() {
        let cfg = WsConfig {
            audiohook_api_keys: vec!["hook-key".into()],
            audiohook_client_secrets: audiohook::ClientSecrets::parse(&[
                "signed-key:c2VjcmV0".into()
            ])
            .unwrap(),
            twilio_auth_tokens: vec!["12345".into()],
            fork_basic_auth: vec!["fs1:pa:55".into()],
            ..WsConfig::default()
        };
        for (kind, id) in [
            (MediaKind::AudioHook, "hook-key"),
            (MediaKind::AudioHook, "signed-key"),
            (MediaKind::Twilio, "12345"),
            (MediaKind::Fork, "fs1"),
        ] {
            assert!(cfg.accepts(kind, id.as_bytes()), "{kind:?} {id}");
        }
        for (kind, id) in [
            (MediaKind::Fork, "hook-key"),
            (MediaKind::Twilio, "1234"),
            (MediaKind::Fork, "fs1:pa"),
            (MediaKind::AudioHook, "12345"),
        ] {
            assert!(!cfg.accepts(kind, id.as_bytes()), "{kind:?} {id}");
        }
    }

    /// Each route's check gives back the credential of its own kind (which a token file
    /// maps to a tenant), Twilio the token that verified, and an open path none.
    #[test]
    fn admit_returns_the_proved_credential_of_the_route() {
        use base64::Engine;
        let req = |target: &str, headers: &[(&str, &str)]| {
            let mut b = Request::builder()
                .uri(target)
                .header("Host", "callmood.example.com");
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        let open = WsConfig {
            audiohook_api_keys: vec!["hook-key".into()],
            ..WsConfig::default()
        };
        let fork = Route::Fork { events: false };
        for route in [Route::Twilio, fork.clone()] {
            assert_eq!(admit(&route, &req("/x", &[]), &open).ok(), Some(None));
        }
        let cfg = WsConfig {
            twilio_auth_tokens: vec!["other-token".into(), "12345".into()],
            fork_basic_auth: vec!["fs1:pa55".into()],
            ..open
        };
        let proved = |route: &Route, r: Request| admit(route, &r, &cfg).ok().flatten();
        // The signature of wss://callmood.example.com/twilio under token 12345 (Python's hmac).
        let twilio = req(
            "/twilio",
            &[("X-Twilio-Signature", "pM+Fyl76CH3HI37VUDSe34y6R+k=")],
        );
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("fs1:pa55")
        );
        let want = |kind, id: &str| {
            Some(MediaCredential {
                kind,
                id: id.into(),
            })
        };
        assert_eq!(
            proved(&Route::Twilio, twilio),
            want(MediaKind::Twilio, "12345")
        );
        assert_eq!(
            proved(&fork, req("/fork", &[("Authorization", &basic)])),
            want(MediaKind::Fork, "fs1")
        );
        assert_eq!(
            proved(
                &Route::AudioHook,
                req("/audiohook", &[("X-API-KEY", "hook-key")])
            ),
            want(MediaKind::AudioHook, "hook-key")
        );
        // Configured and not proved: refused, never a credential.
        assert!(admit(&Route::Twilio, &req("/twilio", &[]), &cfg).is_err());
        assert!(admit(&fork, &req("/fork", &[]), &cfg).is_err());
        assert!(admit(
            &Route::AudioHook,
            &req("/audiohook", &[("X-API-KEY", "nope")]),
            &cfg
        )
        .is_err());
    }

    #[test]
    fn the_start_line_says_what_each_path_asks_and_no_secret() {
        assert_eq!(
            WsConfig::default().access_summary(),
            "/twilio open, /fork open, /audiohook refused (no API key)"
        );
        let cfg = WsConfig {
            twilio_auth_tokens: vec!["tok-secret".into()],
            fork_basic_auth: vec!["u:pw-secret".into(), "v:pw2".into()],
            audiohook_api_keys: vec!["key-a".into(), "key-b".into()],
            audiohook_client_secrets: audiohook::ClientSecrets::parse(&[
                "key-b:c2VjcmV0".to_string()
            ])
            .unwrap(),
            ..WsConfig::default()
        };
        let line = cfg.access_summary();
        assert_eq!(
            line,
            "/twilio signed (1 auth token), /fork Basic credentials (2 pairs), \
             /audiohook 2 API keys, signed for 1"
        );
        assert!(!line.contains("secret") && !line.contains("key-"), "{line}");
    }

    #[test]
    fn routes_by_path_and_query() {
        assert_eq!(Route::parse("/twilio"), Some((Route::Twilio, None)));
        assert_eq!(Route::parse("/twilio/"), Some((Route::Twilio, None)));
        assert_eq!(
            Route::parse("/fork?events=1"),
            Some((Route::Fork { events: true }, None))
        );
        assert_eq!(
            Route::parse("/fork?x=2&events=0"),
            Some((Route::Fork { events: false }, None))
        );
        assert_eq!(Route::parse("/audiohook"), Some((Route::AudioHook, None)));
        assert_eq!(Route::parse("/"), None);
        assert_eq!(
            Route::parse("/twilio/CA42"),
            Some((Route::Twilio, Some("CA42".into())))
        );
        assert_eq!(
            Route::parse("/fork/abc/?events=1"),
            Some((Route::Fork { events: true }, Some("abc".into())))
        );
        assert_eq!(Route::parse("/twilio/a/b"), None);
        assert_eq!(Route::parse("/nope/a"), None);
        assert_eq!(Route::parse("/TWILIO"), None);
    }

    /// Valid messages of the three protocols with random bytes changed, inserted and
    /// removed (the fuzz targets' cheap cousin, run by `cargo test`): no parser panics,
    /// and what parses keeps its documented bounds.
    #[test]
    fn mutated_messages_never_panic_and_what_parses_is_bounded() {
        use crate::core::rng::SplitMix64;
        let seeds = [
            r#"{"event":"start","start":{"callSid":"CA1","tracks":["inbound","outbound"],"customParameters":{"k":"v"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#,
            r#"{"event":"media","media":{"track":"outbound","chunk":"7","timestamp":"140","payload":"//8A//8A"}}"#,
            r#"{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"5"}}"#,
            r#"{"callSid":"j1","sampleRate":"16000","mixType":"stereo"}"#,
            r#"{"version":"2","type":"open","seq":1,"id":"s","parameters":{"conversationId":"c","media":[{"type":"audio","format":"PCMU","channels":["external","internal"],"rate":8000}]}}"#,
            r#"{"version":"2","type":"resumed","seq":4,"parameters":{"start":"PT1S","discarded":"PT2.5S"}}"#,
        ];
        let mut rng = SplitMix64::new(22);
        for i in 0..20_000 {
            let mut b = seeds[i % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len() + 1);
                let byte = rng.next_u64() as u8;
                match rng.below(3) {
                    0 if at < b.len() => b[at] = byte,
                    1 => b.insert(at, byte),
                    _ if at < b.len() => {
                        b.remove(at);
                    }
                    _ => {}
                }
            }
            // Text frames are UTF-8 (tungstenite checks it).
            let text = String::from_utf8_lossy(&b);
            if let Ok(twilio::Msg::Media { media }) = twilio::parse(&text) {
                if let twilio::MediaFrame::Packet { track, packet } =
                    twilio::media_frame(&media, i % 2 == 0)
                {
                    let p = crate::core::rtp::parse(&packet).expect("a valid RTP packet");
                    assert!(track < 2 && !p.payload.is_empty() && p.payload.len() <= 8000);
                    assert_eq!(p.sequence, media.chunk as u16);
                }
            }
            if let Ok(twilio::Msg::Start { start }) = twilio::parse(&text) {
                if let Ok(tracks) = start.check() {
                    assert!(!tracks.is_empty() && tracks.iter().all(|&t| t < 2));
                }
            }
            if let Ok(m) = fork::parse_metadata(&text) {
                assert!(!m.call_id.is_empty() && matches!(m.channels, 1 | 2));
                assert!((8000..=48_000).contains(&m.sample_rate_hz));
            }
            if let Ok(m) = audiohook::parse(&text) {
                if let Some(media) = audiohook::choose_media(&m.parameters) {
                    assert!((1..=2).contains(&media.channels.len()) && media.format == "PCMU");
                }
                if let Some(d) = m.parameters.get("discarded").and_then(|d| d.as_str()) {
                    let _ = audiohook::duration_ms(d);
                }
            }
        }
    }

    #[test]
    fn stereo_splits_into_left_and_right() {
        let (l, r) = deinterleave(&[1, 2, 3, 4, 5, 6, 7, 8], 2);
        assert_eq!((l, r), (vec![1, 2, 5, 6], vec![3, 4, 7, 8]));
        let (l, r) = deinterleave(&[1, 2, 3, 4, 5, 6], 1);
        assert_eq!((l, r), (vec![1, 3, 5], vec![2, 4, 6]));
    }
}
