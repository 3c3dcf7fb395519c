//! `callmood asterisk-ari`: a small Asterisk ARI application that attaches every call
//! that enters it to callmood, caller and agent as two legs of one call, over AudioSocket
//! (TCP) or RTP (UDP legs opened with `OpenRtpLeg`, roles named).
//!
//! ```text
//!  dialplan: Stasis(callmood[,CALL_UUID]) ──StasisStart──► this client (events WebSocket)
//!    per call, on the caller's channel C:
//!      POST /channels/C/snoop?spy=in   (what the caller says)   ─┐ mixing bridge ─► ExternalMedia
//!      POST /channels/C/snoop?spy=out  (what the caller hears:  ─┘   (one each)     to callmood:
//!                                        the agent)                   AudioSocket/TCP (slin, the
//!                                                                     UUID) or RTP/UDP (ulaw, a
//!                                                                     leg from OpenRtpLeg)
//!      POST /channels/C/variable CALLMOOD_ID=<uuid>;  POST /channels/C/continue
//!    when a snoop or ExternalMedia channel ends (the caller hung up): DELETE the rest
//!    (and CloseLeg the RTP legs)
//! ```
//!
//! The app must stay connected to `/ari/events?app=NAME` for as long as calls run:
//! without a WebSocket for the app, Asterisk hangs up the channels it creates for it
//! (snoop, ExternalMedia) at once, and the next request fails with "Channel not found".
//! Every ARI resource is created under an id chosen here (`snoopId`, `channelId`,
//! `bridgeId`), so the whole dance is known in advance ([`CallPlan`]) and teardown needs
//! no answer from the setup. The event handling ([`App`]) is sans-I/O: it is given the
//! events and returns what to do; [`run`] owns the sockets.
//!
//! Roles: callmood gives an AudioSocket leg the role its call lacks, caller first, so
//! the caller's leg is set up (and its ExternalMedia channel connected) before the
//! agent's; RTP legs are opened with their role. Key presses do not reach callmood on
//! this path: a snoop channel carries audio only.
//!
//! Checked against Asterisk's ARI documentation (`channels.json`, `bridges.json`, the
//! "External Media and ARI" page); tested against a mock ARI server written from them,
//! never against a running Asterisk.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::core::rng::SplitMix64;

/// Default Stasis application name.
pub const DEFAULT_APP: &str = "callmood";
/// Longest wait for one ARI request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two attempts to reach the events WebSocket.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

/// How to reach Asterisk and callmood.
#[derive(Clone, Debug)]
pub struct AriConfig {
    /// Asterisk's HTTP server, e.g. `http://pbx:8088` (plain HTTP; `/ari` is added).
    pub url: String,
    /// ARI user (`ari.conf`).
    pub user: String,
    /// ARI password.
    pub password: String,
    /// Stasis application name: the dialplan sends calls to `Stasis(<app>)`.
    pub app: String,
    /// Where the ExternalMedia channels send the audio.
    pub target: Target,
}

/// Where the ExternalMedia channels send each party's audio.
#[derive(Clone, Debug)]
pub enum Target {
    /// callmood's AudioSocket listener as Asterisk reaches it, `host:port`: 16-bit
    /// 8 kHz (`format=slin`), the call's UUID as `data`. callmood gives the first leg
    /// of a call the caller role, so the caller's leg is set up first.
    AudioSocket {
        /// `host:port`.
        external_host: String,
    },
    /// An RTP leg per party opened on callmood's gRPC server (`OpenRtpLeg`, role named)
    /// before its ExternalMedia channel (`format=ulaw`) is pointed at it, and closed
    /// (`CloseLeg`) at the end.
    Rtp {
        /// callmood's gRPC URL.
        server: String,
        /// TLS and token for it.
        access: crate::client::stream::Access,
        /// callmood's RTP address as Asterisk reaches it (the port comes from
        /// `OpenRtpLeg`); none: the address `OpenRtpLeg` names (the replica's
        /// `serve --advertise-addr`, the one to use behind a load balancer).
        rtp_host: Option<String>,
    },
}

/// Where one party's ExternalMedia channel sends its audio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sink {
    /// `host:port`.
    pub external_host: String,
    /// RTP over UDP (μ-law) rather than AudioSocket over TCP (slin).
    pub rtp: bool,
}

/// Why an ARI request or the events socket failed.
#[derive(Debug, thiserror::Error)]
pub enum AriError {
    /// The URL is not `http://host[:port]`.
    #[error("ARI URL {0:?}: expected http://HOST:PORT (https is not supported; run this next to Asterisk)")]
    BadUrl(String),
    /// Asterisk answered with an error status; `message` is ARI's own words
    /// (e.g. "Channel not found").
    #[error("{method} {path}: HTTP {status}: {message}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// Request path, without the query.
        path: String,
        /// HTTP status.
        status: u16,
        /// ARI's `message`, or the body.
        message: String,
    },
    /// callmood's gRPC server refused or could not be reached (RTP legs).
    #[error("callmood: {0}")]
    Callmood(String),
    /// No answer, or a broken connection.
    #[error("{method} {path}: {reason}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Request path, without the query.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The events WebSocket could not be opened or broke.
    #[error("ARI events WebSocket: {0}")]
    Events(String),
}

impl AriError {
    /// Whether the resource was already gone (404), which teardown expects.
    pub fn is_not_found(&self) -> bool {
        matches!(self, AriError::Status { status: 404, .. })
    }
}

/// One ARI REST request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `POST` or `DELETE`.
    pub method: &'static str,
    /// Path under `/ari`, e.g. `/channels/abc/snoop`.
    pub path: String,
    /// Query parameters, in order.
    pub query: Vec<(&'static str, String)>,
}

impl Request {
    fn post(path: String, query: Vec<(&'static str, String)>) -> Self {
        Request {
            method: "POST",
            path,
            query,
        }
    }

    fn delete(path: String) -> Self {
        Request {
            method: "DELETE",
            path,
            query: Vec::new(),
        }
    }

    /// The path and query string, percent-encoded (`/channels/x/snoop?spy=in&app=a`).
    pub fn target(&self) -> String {
        let mut s = String::from("/ari");
        s.push_str(&self.path);
        for (i, (k, v)) in self.query.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            s.push_str(k);
            s.push('=');
            s.push_str(&percent_encode(v));
        }
        s
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One analysed party of a call: a snoop channel on the caller's channel, an
/// ExternalMedia channel to callmood, and the bridge that joins them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegPlan {
    /// `caller` or `agent` (for ids and logs).
    pub role: &'static str,
    /// The snoop's `spy` direction: `in` is what the caller's channel receives from the
    /// caller, `out` what it sends to the caller (the agent's voice).
    pub spy: &'static str,
    /// The snoop channel's id.
    pub snoop_id: String,
    /// The ExternalMedia channel's id.
    pub media_id: String,
    /// The mixing bridge's id.
    pub bridge_id: String,
}

/// Everything one call creates, under ids known in advance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallPlan {
    /// The caller's channel (the one that entered the Stasis app).
    pub channel_id: String,
    /// The call id callmood knows the call by: a UUID, AudioSocket's call identifier.
    pub call_id: String,
    /// Caller first: callmood gives the first AudioSocket leg of a call the caller role.
    pub legs: [LegPlan; 2],
}

impl CallPlan {
    /// The plan for the caller's channel `channel_id`, analysed as call `call_id`.
    pub fn new(channel_id: &str, call_id: &str) -> Self {
        let leg = |role: &'static str, spy: &'static str| LegPlan {
            role,
            spy,
            snoop_id: format!("callmood-{call_id}-{role}-snoop"),
            media_id: format!("callmood-{call_id}-{role}-media"),
            bridge_id: format!("callmood-{call_id}-{role}-bridge"),
        };
        CallPlan {
            channel_id: channel_id.to_string(),
            call_id: call_id.to_string(),
            legs: [leg("caller", "in"), leg("agent", "out")],
        }
    }

    /// The channels this plan creates (snoops and ExternalMedia).
    pub fn own_channels(&self) -> impl Iterator<Item = &str> {
        self.legs
            .iter()
            .flat_map(|l| [l.snoop_id.as_str(), l.media_id.as_str()])
    }

    /// The requests that attach the call, in order: per leg the snoop, the ExternalMedia
    /// channel, the bridge and the two channels into it; then `CALLMOOD_ID` on the
    /// caller's channel and back to the dialplan.
    pub fn setup(&self, app: &str, sinks: &[Sink; 2]) -> Vec<Request> {
        let c = &percent_encode(&self.channel_id);
        let mut out = Vec::new();
        for (leg, sink) in self.legs.iter().zip(sinks) {
            out.push(Request::post(
                format!("/channels/{c}/snoop"),
                vec![
                    ("spy", leg.spy.into()),
                    ("whisper", "none".into()),
                    ("app", app.to_string()),
                    ("appArgs", format!("callmood-{}", leg.role)),
                    ("snoopId", leg.snoop_id.clone()),
                ],
            ));
            let (encapsulation, transport, format) = if sink.rtp {
                ("rtp", "udp", "ulaw")
            } else {
                ("audiosocket", "tcp", "slin")
            };
            let mut q = vec![
                ("channelId", leg.media_id.clone()),
                ("app", app.to_string()),
                ("external_host", sink.external_host.clone()),
                ("encapsulation", encapsulation.into()),
                ("transport", transport.into()),
                ("connection_type", "client".into()),
                ("format", format.into()),
                ("direction", "both".into()),
            ];
            if !sink.rtp {
                q.push(("data", self.call_id.clone()));
            }
            out.push(Request::post("/channels/externalMedia".into(), q));
            out.push(Request::post(
                "/bridges".into(),
                vec![
                    ("type", "mixing".into()),
                    ("bridgeId", leg.bridge_id.clone()),
                    ("name", leg.bridge_id.clone()),
                ],
            ));
            out.push(Request::post(
                format!("/bridges/{}/addChannel", leg.bridge_id),
                vec![("channel", format!("{},{}", leg.snoop_id, leg.media_id))],
            ));
        }
        out.push(Request::post(
            format!("/channels/{c}/variable"),
            vec![
                ("variable", "CALLMOOD_ID".into()),
                ("value", self.call_id.clone()),
            ],
        ));
        out.push(Request::post(format!("/channels/{c}/continue"), Vec::new()));
        out
    }

    /// The requests that undo the plan: the ExternalMedia channels first (callmood sees
    /// the AudioSocket hang up and ends the legs), then the snoops, then the bridges.
    /// Asterisk may have removed some already; their 404s are expected.
    pub fn teardown(&self) -> Vec<Request> {
        let mut out: Vec<Request> = self
            .legs
            .iter()
            .map(|l| Request::delete(format!("/channels/{}", l.media_id)))
            .collect();
        out.extend(
            self.legs
                .iter()
                .map(|l| Request::delete(format!("/channels/{}", l.snoop_id))),
        );
        out.extend(
            self.legs
                .iter()
                .map(|l| Request::delete(format!("/bridges/{}", l.bridge_id))),
        );
        out
    }
}

/// What the app asks its shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run the plan's setup; on a failure, log it and run its teardown.
    Setup(CallPlan),
    /// Run the plan's teardown.
    Teardown(CallPlan),
}

/// The ARI application's state, sans-I/O: events in, [`Action`]s out.
pub struct App {
    app: String,
    rng: SplitMix64,
    /// Calls by the caller's channel id.
    calls: HashMap<String, CallPlan>,
    /// Channels this app created → their call's caller channel id.
    owned: HashMap<String, String>,
}

impl App {
    /// An app named `app`; `seed` feeds the call UUIDs made for calls that bring none.
    pub fn new(app: &str, seed: u64) -> Self {
        App {
            app: app.to_string(),
            rng: SplitMix64::new(seed),
            calls: HashMap::new(),
            owned: HashMap::new(),
        }
    }

    /// Calls attached now.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Handles one ARI event.
    pub fn on_event(&mut self, ev: &Value) -> Vec<Action> {
        let kind = ev.get("type").and_then(Value::as_str).unwrap_or("");
        let Some(channel) = ev
            .get("channel")
            .and_then(|c| c.get("id"))
            .and_then(Value::as_str)
        else {
            return Vec::new();
        };
        if ev
            .get("application")
            .and_then(Value::as_str)
            .is_some_and(|a| a != self.app)
        {
            return Vec::new();
        }
        match kind {
            "StasisStart" if !self.owned.contains_key(channel) => {
                if self.calls.contains_key(channel) {
                    // Back in the app after `continue`: already attached.
                    return Vec::new();
                }
                let asked = ev
                    .get("args")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                    .filter(|s| is_uuid(s))
                    .map(str::to_ascii_lowercase);
                let call_id = asked.unwrap_or_else(|| uuid_v4(&mut self.rng));
                let plan = CallPlan::new(channel, &call_id);
                for own in plan.own_channels() {
                    self.owned.insert(own.to_string(), channel.to_string());
                }
                self.calls.insert(channel.to_string(), plan.clone());
                vec![Action::Setup(plan)]
            }
            // One of ours ended: Asterisk hangs up a snoop when the channel it spies on
            // hangs up, so this is how the end of the call shows, whether or not the
            // caller's channel is still in the app.
            "StasisEnd" | "ChannelDestroyed" | "ChannelHangupRequest"
                if self.owned.contains_key(channel) =>
            {
                let caller = self.owned[channel].clone();
                self.end(&caller)
            }
            // The caller's channel itself (while it is still subscribed) hung up.
            "ChannelDestroyed" | "ChannelHangupRequest" if self.calls.contains_key(channel) => {
                self.end(channel)
            }
            _ => Vec::new(),
        }
    }

    /// Forgets the call of caller channel `caller` and asks for its teardown.
    fn end(&mut self, caller: &str) -> Vec<Action> {
        let Some(plan) = self.calls.remove(caller) else {
            return Vec::new();
        };
        for own in plan.own_channels() {
            self.owned.remove(own);
        }
        vec![Action::Teardown(plan)]
    }
}

/// Whether `s` is a UUID in its string form (8-4-4-4-12 hex digits).
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A random (version 4) UUID.
pub fn uuid_v4(rng: &mut SplitMix64) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    crate::core::audiosocket::uuid_string(&bytes)
}

/// ARI over HTTP: one client, Basic authentication.
pub struct Ari {
    base: String,
    auth: String,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
}

impl Ari {
    /// A client of the ARI at `cfg.url`.
    pub fn new(cfg: &AriConfig) -> Result<Self, AriError> {
        let base = cfg.url.trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| AriError::BadUrl(cfg.url.clone()))?;
        if rest.is_empty() || rest.contains('/') {
            return Err(AriError::BadUrl(cfg.url.clone()));
        }
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", cfg.user, cfg.password));
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Ok(Ari {
            base,
            auth: format!("Basic {auth}"),
            http,
        })
    }

    /// Sends one request; the JSON body of a 2xx answer (Null when empty).
    pub async fn send(&self, r: &Request) -> Result<Value, AriError> {
        let transport = |reason: String| AriError::Transport {
            method: r.method,
            path: r.path.clone(),
            reason,
        };
        let req = hyper::Request::builder()
            .method(r.method)
            .uri(format!("{}{}", self.base, r.target()))
            .header(hyper::header::AUTHORIZATION, &self.auth)
            .body(Full::new(Bytes::new()))
            .map_err(|e| transport(e.to_string()))?;
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(req))
            .await
            .map_err(|_| transport(format!("no answer within {REQUEST_TIMEOUT:?}")))?
            .map_err(|e| transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(REQUEST_TIMEOUT, resp.into_body().collect())
            .await
            .map_err(|_| transport("body timed out".into()))?
            .map_err(|e| transport(e.to_string()))?
            .to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let message = json
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Err(AriError::Status {
            method: r.method,
            path: r.path.clone(),
            status,
            message,
        })
    }

    /// The events WebSocket's URL: `ws://host:port/ari/events?app=NAME`.
    fn events_url(&self, app: &str) -> String {
        format!(
            "ws{}/ari/events?app={}&subscribeAll=false",
            self.base.trim_start_matches("http"),
            percent_encode(app)
        )
    }

    /// Runs a plan's setup in order, the ExternalMedia channels sending to `sinks`; on
    /// the first failure, logs it, runs the teardown and returns the error.
    pub async fn setup(
        &self,
        plan: &CallPlan,
        app: &str,
        sinks: &[Sink; 2],
    ) -> Result<(), AriError> {
        for r in plan.setup(app, sinks) {
            if let Err(e) = self.send(&r).await {
                tracing::error!(call = %plan.call_id, channel = %plan.channel_id, error = %e,
                    "cannot attach the call; undoing what was set up");
                self.teardown(plan).await;
                return Err(e);
            }
        }
        tracing::info!(call = %plan.call_id, channel = %plan.channel_id, rtp = sinks[0].rtp,
            "call attached: caller and agent snooped to callmood");
        Ok(())
    }

    /// Runs a plan's teardown, every request whatever the others do; what Asterisk had
    /// removed already (404) is expected.
    pub async fn teardown(&self, plan: &CallPlan) {
        for r in plan.teardown() {
            match self.send(&r).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    tracing::debug!(call = %plan.call_id, error = %e, "already gone")
                }
                Err(e) => {
                    tracing::warn!(call = %plan.call_id, error = %e, "teardown request failed")
                }
            }
        }
        tracing::info!(call = %plan.call_id, channel = %plan.channel_id, "call detached");
    }
}

/// Runs the ARI application until `shutdown` resolves: keeps the events WebSocket open
/// (reconnecting with a growing delay when it drops), attaches each call that enters
/// the app and detaches it when it ends. Calls still attached at shutdown are torn down.
/// Events are handled one at a time, each call's requests in order (ten to attach, six
/// to detach): simple and ordered, at the cost of one slow Asterisk answer delaying the
/// next call's setup.
pub async fn run(
    cfg: AriConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AriError> {
    let ari = Ari::new(&cfg)?;
    let mut legs = Legs::new(&cfg.target).await?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    let mut app = App::new(&cfg.app, seed);
    let mut attached: HashMap<String, CallPlan> = HashMap::new();
    let mut delay = Duration::from_millis(500);
    tokio::pin!(shutdown);
    loop {
        let session = async {
            let mut req = ari
                .events_url(&cfg.app)
                .into_client_request()
                .map_err(|e| AriError::Events(e.to_string()))?;
            req.headers_mut().insert(
                "Authorization",
                ari.auth
                    .parse()
                    .map_err(|_| AriError::Events("bad credentials".into()))?,
            );
            let (mut ws, _) = tokio_tungstenite::connect_async(req)
                .await
                .map_err(|e| AriError::Events(e.to_string()))?;
            tracing::info!(app = %cfg.app, url = %cfg.url, "ARI application registered");
            delay = Duration::from_millis(500);
            while let Some(m) = ws.next().await {
                let text = match m.map_err(|e| AriError::Events(e.to_string()))? {
                    Message::Text(t) => t,
                    Message::Close(_) => break,
                    _ => continue,
                };
                let Ok(ev) = serde_json::from_str::<Value>(&text) else {
                    tracing::warn!(event = %text, "ARI event is not JSON");
                    continue;
                };
                for action in app.on_event(&ev) {
                    match action {
                        Action::Setup(plan) => {
                            tracing::info!(call = %plan.call_id, channel = %plan.channel_id,
                                "call entered the app");
                            let sinks = match legs.open(&plan).await {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::error!(call = %plan.call_id, error = %e,
                                        "cannot open the call's legs on callmood");
                                    continue;
                                }
                            };
                            if ari.setup(&plan, &cfg.app, &sinks).await.is_ok() {
                                attached.insert(plan.channel_id.clone(), plan);
                            } else {
                                legs.close(&plan).await;
                            }
                        }
                        Action::Teardown(plan) => {
                            if attached.remove(&plan.channel_id).is_some() {
                                ari.teardown(&plan).await;
                                legs.close(&plan).await;
                            }
                        }
                    }
                }
            }
            Err::<(), _>(AriError::Events("closed by Asterisk".into()))
        };
        tokio::select! {
            r = session => {
                if let Err(e) = r {
                    tracing::warn!(error = %e, retry_in = ?delay, "ARI events WebSocket down");
                }
            }
            _ = &mut shutdown => break,
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut shutdown => break,
        }
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
    for plan in attached.values() {
        ari.teardown(plan).await;
        legs.close(plan).await;
    }
    Ok(())
}

/// callmood's side of each call's two legs: nothing to do for AudioSocket (the legs
/// come and go with their connections), `OpenRtpLeg` / `CloseLeg` for RTP.
enum Legs {
    AudioSocket {
        external_host: String,
    },
    Rtp {
        /// Boxed: a tonic client is large, and there is one `Legs` per app.
        client: Box<crate::client::stream::Client>,
        rtp_host: Option<String>,
        /// Open legs' channel ids by call id.
        open: HashMap<String, Vec<u32>>,
    },
}

impl Legs {
    async fn new(target: &Target) -> Result<Self, AriError> {
        Ok(match target {
            Target::AudioSocket { external_host } => Legs::AudioSocket {
                external_host: external_host.clone(),
            },
            Target::Rtp {
                server,
                access,
                rtp_host,
            } => Legs::Rtp {
                client: Box::new(
                    crate::client::stream::connect(server, access)
                        .await
                        .map_err(|e| AriError::Callmood(e.to_string()))?,
                ),
                rtp_host: rtp_host.clone(),
                open: HashMap::new(),
            },
        })
    }

    /// Where the call's caller and agent ExternalMedia channels send audio (for RTP,
    /// after opening a leg for each, role named).
    async fn open(&mut self, plan: &CallPlan) -> Result<[Sink; 2], AriError> {
        match self {
            Legs::AudioSocket { external_host } => Ok([0, 1].map(|_| Sink {
                external_host: external_host.clone(),
                rtp: false,
            })),
            Legs::Rtp {
                client,
                rtp_host,
                open,
            } => {
                let mut sinks = Vec::new();
                for role in [crate::proto::Role::Caller, crate::proto::Role::Agent] {
                    let req = crate::proto::OpenRtpLegRequest {
                        call_id: plan.call_id.clone(),
                        role: role as i32,
                        encoding: crate::proto::Encoding::Mulaw as i32,
                        ..Default::default()
                    };
                    match client
                        .open_rtp_leg(crate::client::stream::call_request(&plan.call_id, req))
                        .await
                    {
                        Ok(r) => {
                            let r = r.into_inner();
                            open.entry(plan.call_id.clone())
                                .or_default()
                                .push(r.channel_id);
                            let host = match rtp_host {
                                Some(h) => h.clone(),
                                None if !r.address.is_empty() => r.address.clone(),
                                None => {
                                    self.close(plan).await;
                                    return Err(AriError::Callmood(
                                        "OpenRtpLeg named no address to send RTP to \
                                         (serve binds every address and has no \
                                         --advertise-addr): give --rtp-host"
                                            .into(),
                                    ));
                                }
                            };
                            sinks.push(Sink {
                                external_host: format!("{host}:{}", r.port),
                                rtp: true,
                            });
                        }
                        Err(status) => {
                            self.close(plan).await;
                            return Err(AriError::Callmood(format!(
                                "OpenRtpLeg: {}: {}",
                                status.code(),
                                status.message()
                            )));
                        }
                    }
                }
                let [caller, agent]: [Sink; 2] = sinks
                    .try_into()
                    .map_err(|_| AriError::Callmood("two legs".into()))?;
                Ok([caller, agent])
            }
        }
    }

    /// Ends the call's RTP legs (what their jitter buffers hold is played out).
    async fn close(&mut self, plan: &CallPlan) {
        if let Legs::Rtp { client, open, .. } = self {
            for channel_id in open.remove(&plan.call_id).unwrap_or_default() {
                let req = crate::proto::CloseLegRequest {
                    call_id: plan.call_id.clone(),
                    channel_id,
                };
                if let Err(status) = client
                    .close_leg(crate::client::stream::call_request(&plan.call_id, req))
                    .await
                {
                    // Already ended (idle, or the call ended): nothing left to close.
                    tracing::debug!(call = %plan.call_id, channel_id, %status, "CloseLeg");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> AriConfig {
        AriConfig {
            url: "http://pbx:8088".into(),
            user: "u".into(),
            password: "p".into(),
            app: "callmood".into(),
            target: Target::AudioSocket {
                external_host: "callmood:9093".into(),
            },
        }
    }

    fn sinks(rtp: bool) -> [Sink; 2] {
        [40000, 40002].map(|port| Sink {
            external_host: format!("callmood:{}", if rtp { port } else { 9093 }),
            rtp,
        })
    }

    #[test]
    fn the_plan_snoops_both_directions_and_tears_down_everything_it_made() {
        let id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        let p = CallPlan::new("1700000000.1", id);
        let setup = p.setup(&cfg().app, &sinks(false));
        let targets: Vec<String> = setup.iter().map(Request::target).collect();
        assert_eq!(targets.len(), 10);
        assert_eq!(
            targets[0],
            format!("/ari/channels/1700000000.1/snoop?spy=in&whisper=none&app=callmood&appArgs=callmood-caller&snoopId=callmood-{id}-caller-snoop")
        );
        assert_eq!(
            targets[1],
            format!("/ari/channels/externalMedia?channelId=callmood-{id}-caller-media&app=callmood&external_host=callmood%3A9093&encapsulation=audiosocket&transport=tcp&connection_type=client&format=slin&direction=both&data={id}")
        );
        assert!(targets[4].contains("spy=out"), "{}", targets[4]);
        assert_eq!(
            targets[7],
            format!("/ari/bridges/callmood-{id}-agent-bridge/addChannel?channel=callmood-{id}-agent-snoop%2Ccallmood-{id}-agent-media")
        );
        assert_eq!(targets[9], "/ari/channels/1700000000.1/continue");
        // Over RTP: μ-law to each leg's own port, no data.
        let rtp: Vec<String> = p
            .setup("callmood", &sinks(true))
            .iter()
            .map(Request::target)
            .collect();
        assert_eq!(
            rtp[5],
            format!("/ari/channels/externalMedia?channelId=callmood-{id}-agent-media&app=callmood&external_host=callmood%3A40002&encapsulation=rtp&transport=udp&connection_type=client&format=ulaw&direction=both")
        );
        let down = p.teardown();
        assert_eq!(down.len(), 6);
        assert!(down.iter().all(|r| r.method == "DELETE"));
        // Everything created is deleted, ExternalMedia first.
        assert_eq!(
            down[0].path,
            format!("/channels/callmood-{id}-caller-media")
        );
        for own in p.own_channels() {
            assert!(down.iter().any(|r| r.path == format!("/channels/{own}")));
        }
    }

    #[test]
    fn calls_start_on_stasis_start_and_end_when_a_snoop_ends() {
        let mut app = App::new("callmood", 7);
        let start = |ch: &str, args: Value| {
            json!({"type": "StasisStart", "application": "callmood", "args": args,
                   "channel": {"id": ch, "name": "PJSIP/alice-00000001", "state": "Up"}})
        };
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let acts = app.on_event(&start("c1", json!([uuid])));
        let [Action::Setup(p)] = acts.as_slice() else {
            panic!("{acts:?}")
        };
        assert_eq!(p.call_id, uuid);
        // A call that brings no UUID gets one.
        let acts = app.on_event(&start("c2", json!(["not-a-uuid"])));
        let [Action::Setup(p2)] = acts.as_slice() else {
            panic!("{acts:?}")
        };
        assert!(is_uuid(&p2.call_id) && p2.call_id != uuid, "{}", p2.call_id);
        // Our own channels entering the app, another app's events: nothing.
        let snoop = p.legs[0].snoop_id.clone();
        assert!(app
            .on_event(&start(&snoop, json!(["callmood-caller"])))
            .is_empty());
        let mut other = start("c3", json!([]));
        other["application"] = json!("other");
        assert!(app.on_event(&other).is_empty());
        // The caller leaving the app after `continue`: nothing.
        let end = |ch: &str| json!({"type": "StasisEnd", "application": "callmood", "channel": {"id": ch}});
        assert!(app.on_event(&end("c1")).is_empty());
        assert_eq!(app.calls(), 2);
        // The snoop ending (the caller hung up): teardown, once.
        let acts = app.on_event(&end(&snoop));
        assert_eq!(acts, vec![Action::Teardown(p.clone())]);
        let destroyed = json!({"type": "ChannelDestroyed", "application": "callmood",
                               "channel": {"id": p.legs[1].media_id}});
        assert!(app.on_event(&destroyed).is_empty());
        assert_eq!(app.calls(), 1);
        // A caller still in the app that hangs up ends its call too.
        let hup = json!({"type": "ChannelHangupRequest", "application": "callmood", "channel": {"id": "c2"}});
        assert_eq!(app.on_event(&hup), vec![Action::Teardown(p2.clone())]);
        assert_eq!(app.calls(), 0);
        // Junk: no panic, nothing to do.
        assert!(app.on_event(&json!({"type": "StasisStart"})).is_empty());
        assert!(app.on_event(&json!(42)).is_empty());
    }

    #[test]
    fn uuids_and_urls() {
        let mut rng = SplitMix64::new(1);
        let u = uuid_v4(&mut rng);
        assert!(is_uuid(&u), "{u}");
        assert_eq!(&u[14..15], "4");
        assert!(!is_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c"));
        assert!(!is_uuid("6ba7b810x9dad-11d1-80b4-00c04fd430c8"));
        assert_eq!(percent_encode("a b/c:d,é"), "a%20b%2Fc%3Ad%2C%C3%A9");
        assert!(matches!(
            Ari::new(&AriConfig {
                url: "https://pbx:8089".into(),
                ..cfg()
            }),
            Err(AriError::BadUrl(_))
        ));
        let ari = Ari::new(&cfg()).unwrap();
        assert_eq!(
            ari.events_url("callmood"),
            "ws://pbx:8088/ari/events?app=callmood&subscribeAll=false"
        );
    }
}
