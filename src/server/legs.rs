//! Calls whose legs arrive on their own transports, joined by call id:
//! RTP over UDP (a leg opened with `OpenRtpLeg`, e.g. Asterisk
//! ExternalMedia) and Asterisk AudioSocket over TCP. Their events are watched
//! by call id (`WatchCall`).
//!
//! ```text
//!  UDP port (one per leg) ─┐                          ┌─► history ─► WatchCall streams
//!  AudioSocket TCP conn  ──┼─► Input (bounded) ─► call thread ─► events ┘
//!  CloseLeg / idle timer ──┘   (one CallCore per call id: legs are its channels)
//! ```
//! A call starts with its first leg and ends when its last leg ends (closed,
//! hung up, or idle); then its summary is the last event. Each connection's or UDP
//! leg's audio is paced like `StreamCall`'s ([`LivePace`], `server.max_ahead_s`): an
//! AudioSocket connection is not read while ahead of the wall clock, a UDP datagram
//! beyond the allowance is dropped and counted (`LegStats.packets_ahead_dropped`).
//! Events are kept in a bounded history, so a watcher that attaches late still sees
//! the call from its start, and an ended call stays watchable for [`ENDED_CALL_KEEP`].
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::call::{CallError, CallSettings, ChannelSpec, Transport, MAX_CHANNELS};
use crate::contact::alerts::AlertConfig;
use crate::contact::finish::FinishOptions;
use crate::core::audiosocket::{self, AudioSocketError, FrameDecoder, Message};
use crate::core::cidr::{self, Cidr};
use crate::core::codec::Encoding;
use crate::proto::{self, CallEvent, Role};
use crate::server::limits::LivePace;
use crate::server::security::{
    check_call_id, revoked, until_broken, Auth, CertTenant, MediaCredential, Revocation, Tenant,
    TenantCounts, TenantSlot,
};
use crate::server::session::{now_ms, Analyzer, AsrBackpressure, Input, SessionOptions, TICK};
use crate::server::status::ServerError;
use crate::server::tls::Accept;

/// Default address RTP legs bind: every interface.
pub const DEFAULT_RTP_ADDR: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
/// Default first and last UDP port for RTP legs.
pub const DEFAULT_RTP_PORTS: RangeInclusive<u16> = 40000..=40999;
/// Default: a leg with no packet (or AudioSocket message) for this long ends.
pub const DEFAULT_LEG_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
/// An ended call's events stay watchable this long.
pub const ENDED_CALL_KEEP: Duration = Duration::from_secs(60);
/// Most events kept per call for late watchers; older ones are dropped first.
pub const MAX_HISTORY: usize = 20_000;
/// Default: how long `WatchCall` waits for a call id that has no leg yet, and an
/// AudioSocket connection for its UUID message.
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest UDP datagram read; longer ones are truncated (and then fail to parse).
const MAX_DATAGRAM: usize = 8192;

/// Why an AudioSocket connection ended other than by a hang-up or `CloseLeg` (logged;
/// the call's own events say what it lost).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("first message {0:?} is not the UUID")]
    NotUuidFirst(Message),
    #[error(transparent)]
    Framing(#[from] AudioSocketError),
    #[error("no UUID within {secs} s")]
    NoUuid { secs: u64 },
    #[error("TLS handshake: {0}")]
    Tls(#[source] std::io::Error),
    #[error("closed before its UUID")]
    ClosedBeforeUuid,
    #[error("the client certificate's names map to more than one tenant in the token file")]
    AmbiguousCert,
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("cannot join: {0}")]
    Join(#[from] ServerError),
    #[error("the peer sent an error ({0:?})")]
    Peer(Option<u8>),
    #[error("the call ended")]
    CallEnded,
    #[error("no data for {secs} s")]
    Idle { secs: u64 },
    #[error("closed in the middle of a message")]
    Truncated,
    #[error(
        "the audio is not 16-bit linear PCM but looks like G.711 bytes sent as kind 0x10: \
             give the AudioSocket channel c(slin) (Dial(AudioSocket/HOST:PORT/UUID/c(slin))), \
             or ExternalMedia format=slin"
    )]
    NotLinear,
}

/// Settings of the RTP and AudioSocket transports.
#[derive(Clone, Debug)]
pub struct LegsConfig {
    /// Address RTP legs bind (their port comes from `rtp_ports`).
    pub rtp_addr: IpAddr,
    /// The host (IP address or DNS name) `OpenRtpLeg` tells clients to send RTP to, when
    /// `rtp_addr` is not what they should use (a wildcard, or an address behind NAT):
    /// e.g. the pod's IP behind a load balancer. See [`LegsConfig::rtp_host`].
    pub advertise_addr: Option<String>,
    /// UDP ports handed out to RTP legs.
    pub rtp_ports: RangeInclusive<u16>,
    /// Networks RTP may come from; datagrams from elsewhere are dropped and counted
    /// (`LegStats.packets_not_allowed`). Empty: every address.
    pub rtp_allow: Vec<Cidr>,
    /// A leg silent for this long ends.
    pub idle_timeout: Duration,
    /// How long `WatchCall` waits for a call id that has no leg yet, and an
    /// AudioSocket connection for its UUID message.
    pub join_timeout: Duration,
}

impl Default for LegsConfig {
    fn default() -> Self {
        Self {
            rtp_addr: DEFAULT_RTP_ADDR,
            advertise_addr: None,
            rtp_ports: DEFAULT_RTP_PORTS,
            rtp_allow: Vec::new(),
            idle_timeout: DEFAULT_LEG_IDLE_TIMEOUT,
            join_timeout: DEFAULT_JOIN_TIMEOUT,
        }
    }
}

impl LegsConfig {
    /// The host `OpenRtpLeg` answers with: `advertise_addr`, else `rtp_addr` unless it is
    /// a wildcard (0.0.0.0, ::), else empty (the client uses the host it reached us at).
    pub fn rtp_host(&self) -> String {
        match &self.advertise_addr {
            Some(host) => host.clone(),
            None if self.rtp_addr.is_unspecified() => String::new(),
            None => self.rtp_addr.to_string(),
        }
    }
}

/// Checks an advertised host: an IP address, or a DNS name (labels of letters, digits and
/// `-`, 253 bytes at most). Clients put it in a socket address, so nothing else passes.
pub fn check_advertise_addr(host: &str) -> Result<(), String> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.len() <= 253 && host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is neither an IP address nor a DNS name (a port goes nowhere: RTP ports come from --rtp-ports)"
        ))
    }
}

/// What a new leg carries and, if it starts the call, how the call runs.
#[derive(Clone, Debug)]
pub struct LegRequest {
    pub call_id: String,
    /// `Unspecified` takes the role the call does not have yet (caller first).
    pub role: Role,
    pub encoding: Encoding,
    pub sample_rate_hz: u32,
    pub rtp: crate::core::rtp::leg::RtpSettings,
    pub transport: Transport,
    pub options: proto::CallOptions,
    /// Whether the client proved who it is: a bearer token or mapped certificate
    /// (`OpenRtpLeg`), a verified TLS client certificate (AudioSocket), a WebSocket media
    /// credential. With tokens on, a leg joins only a call whose first leg proved as much
    /// ([`ServerError::MixedCredentials`]).
    pub proved: bool,
}

/// The events of one call so far.
#[derive(Default)]
struct History {
    events: VecDeque<CallEvent>,
    /// Index (since the call began) of `events[0]`.
    base: usize,
    /// Set when the call is over: `Ok` after its summary, `Err` if it failed.
    end: Option<Result<(), CallError>>,
}

struct LegState {
    channel_id: u32,
    role: Role,
    open: bool,
    close: Arc<Notify>,
}

struct CallState {
    /// Input of the call; dropped when the last leg ends, which ends the call.
    input: Option<mpsc::Sender<Input>>,
    legs: Vec<LegState>,
}

/// A call's place in the registry: its id within its tenant's namespace (no tenant:
/// the service runs without tokens, or the call came over a transport without one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CallKey {
    tenant: Option<Tenant>,
    call_id: String,
}

/// One live call of joined legs.
pub struct LiveCall {
    call_id: String,
    key: CallKey,
    state: Mutex<CallState>,
    history: Mutex<History>,
    /// Bumped on every new event (and at the end): watchers wait on it.
    changed: watch::Sender<u64>,
    /// Its first leg proved who it was ([`LegRequest::proved`]).
    started_proved: bool,
}

/// The live calls of joined legs, by call id.
pub struct Calls {
    analyzer: Analyzer,
    permits: Arc<Semaphore>,
    max_calls: usize,
    cfg: LegsConfig,
    /// How far a leg's live audio may run ahead of the wall clock (`server.max_ahead_s`).
    max_ahead: Duration,
    settings: CallSettings,
    /// Alert settings of the calls legs start.
    alerts: AlertConfig,
    /// `security.redact_all_numbers` for the calls legs start.
    redact_all_numbers: bool,
    /// `security.payment_window_s` of every call, ms.
    payment_window_ms: u32,
    calls: Mutex<HashMap<CallKey, Arc<LiveCall>>>,
    /// Calls in flight per tenant, and the cap on them (`None`: none).
    tenant_calls: TenantCounts,
    tenant_max_calls: Option<usize>,
    /// The tenant that owns calls started by AudioSocket and WebSocket legs.
    media_tenant: Option<Tenant>,
    /// The token file, whose `cert:NAME` lines give an AudioSocket TLS client's calls to
    /// its certificate's tenant instead.
    auth: Option<Arc<Auth>>,
    /// A call id got its first leg (wakes `WatchCall`s waiting for it).
    appeared: Notify,
    /// Set once the service drains: new calls and legs are refused, and each
    /// `StreamCall` ends its call where its audio has come to.
    draining: watch::Sender<bool>,
    /// `WatchCall` streams open (a drain waits for them to deliver the summaries).
    watchers: Arc<AtomicUsize>,
}

/// How often a drain looks whether the calls in flight have finished.
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// An open `WatchCall` stream, counted until dropped.
pub struct Watcher(Arc<AtomicUsize>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A call's place under the caps on calls in flight (all, and its tenant's), held until
/// the call ends.
pub struct CallPermit {
    _all: OwnedSemaphorePermit,
    _tenant: Option<TenantSlot>,
}

/// A leg that was admitted: where to send its input.
pub struct Leg {
    pub call: Arc<LiveCall>,
    pub channel_id: u32,
    pub input: mpsc::Sender<Input>,
    close: Arc<Notify>,
    /// The leg's channel as the call has it (encoding, rate, RTP settings).
    spec: ChannelSpec,
    /// The watch that ends the leg when a reload maps its credential elsewhere
    /// ([`Calls::end_on_remap`]), shared by a connection's legs; stopped with the last.
    _remap: Option<Arc<AbortOnDrop>>,
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// 32 bits no client can foresee: the SipHash of nothing under std's `RandomState` keys,
/// which are drawn from the operating system and differ from one `RandomState` to the
/// next. Not for cryptography; enough that the next RTP port cannot be guessed.
fn unpredictable_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish() as u32
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Calls {
    /// The registry; `permits` caps calls in flight together with `StreamCall`;
    /// `max_ahead` paces the legs' live audio as `StreamCall`'s.
    pub fn new(
        analyzer: Analyzer,
        permits: Arc<Semaphore>,
        max_calls: usize,
        cfg: LegsConfig,
        max_ahead: Duration,
        settings: CallSettings,
        alerts: AlertConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            analyzer,
            permits,
            max_calls,
            cfg,
            max_ahead,
            settings,
            alerts,
            // fail closed until the server's settings say otherwise (`with_redaction`)
            redact_all_numbers: true,
            payment_window_ms: crate::contact::finish::PAYMENT_WINDOW_MS,
            calls: Mutex::new(HashMap::new()),
            tenant_calls: TenantCounts::default(),
            tenant_max_calls: None,
            media_tenant: None,
            auth: None,
            appeared: Notify::new(),
            draining: watch::channel(false).0,
            watchers: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The same registry with tenants: each tenant has at most `tenant_max_calls` calls
    /// in flight, and calls started by AudioSocket and WebSocket legs (which carry no
    /// token) belong to `media_tenant`.
    pub fn with_tenants(
        mut self: Arc<Self>,
        tenant_max_calls: Option<usize>,
        media_tenant: Option<Tenant>,
    ) -> Arc<Self> {
        let calls = Arc::get_mut(&mut self).expect("set up before it is shared");
        calls.tenant_max_calls = tenant_max_calls;
        calls.media_tenant = media_tenant;
        self
    }

    /// The same registry reading client certificates' tenants from `auth`'s token file.
    pub fn with_auth(mut self: Arc<Self>, auth: Option<Arc<Auth>>) -> Arc<Self> {
        Arc::get_mut(&mut self)
            .expect("set up before it is shared")
            .auth = auth;
        self
    }

    /// The tenant of an AudioSocket connection: its client certificate's if the token
    /// file maps it, else the media tenant; an error for a certificate whose names map to
    /// two tenants (refused).
    fn audiosocket_tenant(&self, cert: Option<&[u8]>) -> Result<Option<Tenant>, ConnError> {
        let (Some(auth), Some(cert)) = (&self.auth, cert) else {
            return Ok(self.media_tenant.clone());
        };
        match auth.tokens().leaf_tenant(cert) {
            CertTenant::Unmapped => Ok(self.media_tenant.clone()),
            CertTenant::Tenant(t) => Ok(Some(t)),
            CertTenant::Ambiguous => Err(ConnError::AmbiguousCert),
        }
    }

    /// The same registry with the server's redaction settings: every number redacted in
    /// every call and redaction not to be turned off (`security.redact_all_numbers`), and
    /// the payment window, ms (`security.payment_window_s`).
    pub fn with_redaction(
        mut self: Arc<Self>,
        all_numbers: bool,
        payment_window_ms: u32,
    ) -> Arc<Self> {
        let me = Arc::get_mut(&mut self).expect("set up before it is shared");
        me.redact_all_numbers = all_numbers;
        me.payment_window_ms = payment_window_ms;
        self
    }

    /// The finishing options of a call on this server: the client's `o`, with the server's
    /// alert rules, its `security.redact_all_numbers` and its payment window (StreamCall,
    /// AnalyzeRecording and the calls legs start alike).
    pub fn finish_options(&self, o: Option<&proto::CallOptions>) -> FinishOptions {
        FinishOptions::on_server(
            o,
            &self.alerts,
            self.redact_all_numbers,
            self.payment_window_ms,
        )
    }

    /// A place for one more call in flight of `tenant` (`StreamCall`, `AnalyzeRecording`
    /// and joined legs share the caps), held until the call ends.
    pub fn permit(&self, tenant: Option<&Tenant>) -> Result<CallPermit, ServerError> {
        if *self.draining.borrow() {
            self.analyzer.metrics.call_refused("draining");
            return Err(ServerError::Draining);
        }
        let slot = match (tenant, self.tenant_max_calls) {
            (Some(tenant), Some(max)) => match self.tenant_calls.take(tenant, max) {
                Some(slot) => Some(slot),
                None => {
                    self.analyzer.metrics.call_refused("tenant_calls_in_flight");
                    return Err(ServerError::TenantCallsInFlight { max });
                }
            },
            _ => None,
        };
        // A refusal here drops the tenant's slot again.
        let all = self.permits.clone().try_acquire_owned().map_err(|_| {
            self.analyzer.metrics.call_refused("calls_in_flight");
            ServerError::CallsInFlight {
                max: self.max_calls,
            }
        })?;
        Ok(CallPermit {
            _all: all,
            _tenant: slot,
        })
    }

    /// Turns true when the service begins to drain.
    pub fn drain_signal(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Counts an open `WatchCall` stream until the returned guard drops.
    pub fn watcher(&self) -> Watcher {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher(self.watchers.clone())
    }

    /// Drains: refuses new calls and legs, ends every leg (its call then finishes
    /// and sends its summary; each `StreamCall` ends its own call on the same signal)
    /// and waits up to `timeout` for the calls in flight and their watchers to be
    /// done. Returns how many calls were still in flight at the end.
    pub async fn drain(&self, timeout: Duration) -> usize {
        self.draining.send_replace(true);
        // Under the registry's lock, as `join` decides: a leg admitted before this
        // is ended here, one after it is refused.
        for call in lock(&self.calls).values() {
            for leg in lock(&call.state).legs.iter().filter(|l| l.open) {
                leg.close.notify_one();
            }
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let calls = self.max_calls - self.permits.available_permits();
            let done = calls == 0 && self.watchers.load(Ordering::Relaxed) == 0;
            if done || tokio::time::Instant::now() >= deadline {
                return calls;
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }

    /// Admits a leg of a transport without tokens (AudioSocket, WebSocket media): joins
    /// the live call with its id among the media tenant's calls, or starts one.
    pub async fn join(self: &Arc<Self>, req: LegRequest) -> Result<Leg, ServerError> {
        self.join_as(self.media_tenant.clone(), req).await
    }

    /// The tenant of a WebSocket media client that proved `credential` before its upgrade:
    /// the one the token file maps that credential to (the file as it is now; a reload that
    /// changes it ends the socket, [`Calls::end_on_remap`]), else the media tenant. A socket
    /// asks once and joins every one of its tracks as that tenant
    /// ([`Calls::join_as`]), so a reload between its tracks cannot split it.
    pub fn media_tenant_of(&self, credential: Option<&MediaCredential>) -> Option<Tenant> {
        let mapped = match (&self.auth, credential) {
            (Some(auth), Some(c)) => auth.tokens().media_tenant(c),
            _ => None,
        };
        mapped.or_else(|| self.media_tenant.clone())
    }

    /// Whether the server has a token file (`security.auth_tokens`).
    pub fn has_tokens(&self) -> bool {
        self.auth.is_some()
    }

    /// Admits a leg of `tenant`: joins that tenant's live call with its id, or starts one.
    pub async fn join_as(
        self: &Arc<Self>,
        tenant: Option<Tenant>,
        req: LegRequest,
    ) -> Result<Leg, ServerError> {
        if req.call_id.is_empty() {
            return Err(ServerError::CallIdRequiredToJoin);
        }
        check_call_id(&req.call_id)?;
        let key = CallKey {
            tenant,
            call_id: req.call_id.clone(),
        };
        // Decide under the lock; send the join (which may wait) outside it.
        let (call, input, close, spec, joining) = {
            let mut calls = lock(&self.calls);
            if *self.draining.borrow() {
                self.analyzer.metrics.call_refused("draining");
                return Err(ServerError::Draining);
            }
            // A live call (its input still open) takes the leg; the input is read under
            // the same lock of the call's state that adds the leg, since a call's last
            // leg can end it (`Leg::end`, `collect`) without the calls lock.
            let joined = calls.get(&key).cloned().and_then(|call| {
                // Media that proved nothing (an open `/fork`, plain AudioSocket) would
                // otherwise add its audio to the media tenant's calls that a token holder
                // or a credentialed PBX started, knowing no more than the call id; or,
                // having started a call of that id first, hear their legs' words. Checked
                // against an ended call kept for late watchers too: a leg of the other kind
                // must not replace it and feed those watchers.
                if self.auth.is_some() && req.proved != call.started_proved {
                    self.analyzer.metrics.call_refused("mixed_credentials");
                    return Some(Err(ServerError::MixedCredentials {
                        call_id: req.call_id.clone(),
                        proved: req.proved,
                    }));
                }
                let mut st = lock(&call.state);
                let input = st.input.clone()?;
                if st.legs.len() >= MAX_CHANNELS {
                    return Some(Err(ServerError::TooManyLegs {
                        call_id: req.call_id.clone(),
                        max: MAX_CHANNELS,
                    }));
                }
                let channel_id = st.legs.len() as u32;
                let role = pick_role(req.role, &st.legs);
                let close = Arc::new(Notify::new());
                st.legs.push(LegState {
                    channel_id,
                    role,
                    open: true,
                    close: close.clone(),
                });
                let spec = spec(channel_id, role, &req);
                drop(st);
                Some(Ok((call, input, close, spec)))
            });
            match joined {
                Some(Ok((call, input, close, spec))) => (call, input, close, spec, true),
                Some(Err(e)) => return Err(e),
                None => {
                    let permit = self.permit(key.tenant.as_ref())?;
                    let role = pick_role(req.role, &[]);
                    let opts = SessionOptions {
                        settings: self.settings.clone(),
                        backpressure: AsrBackpressure::Drop,
                        joining: Some(req.transport),
                        finish: self.finish_options(Some(&req.options)),
                        pack_scope: key.tenant.clone(),
                    };
                    let spec = spec(0, role, &req);
                    let (handle, events) =
                        self.analyzer
                            .start_call(req.call_id.clone(), &[spec], opts)?;
                    let close = Arc::new(Notify::new());
                    let (changed, _) = watch::channel(0);
                    let call = Arc::new(LiveCall {
                        call_id: req.call_id.clone(),
                        key: key.clone(),
                        state: Mutex::new(CallState {
                            input: Some(handle.input.clone()),
                            legs: vec![LegState {
                                channel_id: 0,
                                role,
                                open: true,
                                close: close.clone(),
                            }],
                        }),
                        history: Mutex::new(History::default()),
                        changed,
                        started_proved: req.proved,
                    });
                    calls.insert(key, call.clone());
                    tokio::spawn(collect(self.clone(), call.clone(), handle, events, permit));
                    self.appeared.notify_waiters();
                    let input = lock(&call.state).input.clone().expect("just set");
                    (call, input, close, spec, false)
                }
            }
        };
        if joining {
            let transport = req.transport;
            if input.send(Input::Join { spec, transport }).await.is_err() {
                return Err(ServerError::EndedWhileJoining {
                    call_id: req.call_id.clone(),
                });
            }
        }
        Ok(Leg {
            call,
            channel_id: spec.id,
            input,
            close,
            spec,
            _remap: None,
        })
    }

    /// Ends `legs` (their transport sees them closed, as at `CloseLeg`) at the first
    /// reload of the token file after which `same_tenant` is false: a media connection
    /// whose credential a reload maps to another tenant, or to none, must not go on as the
    /// old tenant's. The watch stops when the last of the legs is dropped; without a token
    /// file there is none.
    pub fn end_on_remap(
        self: &Arc<Self>,
        legs: &mut [Leg],
        same_tenant: impl Fn(&Calls) -> bool + Send + Sync + 'static,
    ) {
        let Some(auth) = &self.auth else {
            return;
        };
        // The tenant was looked up before this: a reload since then counts (`reloads`).
        let mut reloads = auth.reloads();
        let closers: Vec<Arc<Notify>> = legs.iter().map(|l| l.close.clone()).collect();
        let call_id = legs
            .first()
            .map(|l| l.call.call_id.clone())
            .unwrap_or_default();
        let calls = self.clone();
        let task = tokio::spawn(async move {
            until_broken(&mut reloads, || same_tenant(&calls)).await;
            tracing::info!(call = %call_id, legs = closers.len(), "a reload of the token file remapped a media credential: its legs end");
            closers.iter().for_each(|c| c.notify_one());
        });
        let guard = Arc::new(AbortOnDrop(task.abort_handle()));
        for leg in legs {
            leg._remap = Some(guard.clone());
        }
    }

    /// The transports' settings.
    pub fn config(&self) -> &LegsConfig {
        &self.cfg
    }

    /// What the calls and their transports count for `/metrics`.
    pub fn metrics(&self) -> &Arc<crate::server::metrics::Metrics> {
        &self.analyzer.metrics
    }

    /// Pacing of the live audio of `legs` (one connection's), on the wall clock from its
    /// first audio: see [`LivePace`].
    pub fn pace<'a>(&self, legs: impl IntoIterator<Item = &'a Leg>) -> LivePace {
        let specs: Vec<ChannelSpec> = legs.into_iter().map(|l| l.spec).collect();
        LivePace::new(&specs, self.max_ahead, self.analyzer.metrics.clone())
    }

    /// The registry key of `tenant`'s call `call_id`.
    fn key(tenant: Option<&Tenant>, call_id: &str) -> CallKey {
        CallKey {
            tenant: tenant.cloned(),
            call_id: call_id.to_string(),
        }
    }

    /// Asks a leg of `tenant`'s call to end (`CloseLeg`). With a tenant, a call id it
    /// does not have is `NotPermitted`, whether or not another tenant has it.
    pub fn close(
        &self,
        tenant: Option<&Tenant>,
        call_id: &str,
        channel_id: u32,
    ) -> Result<(), ServerError> {
        let call = lock(&self.calls)
            .get(&Self::key(tenant, call_id))
            .cloned()
            .ok_or_else(|| match tenant {
                Some(_) => ServerError::NotPermitted {
                    call_id: call_id.to_string(),
                },
                None => ServerError::NoCall {
                    call_id: call_id.to_string(),
                },
            })?;
        let st = lock(&call.state);
        let leg = st
            .legs
            .iter()
            .find(|l| l.channel_id == channel_id && l.open)
            .ok_or_else(|| ServerError::NoOpenLeg {
                call_id: call_id.to_string(),
                channel_id,
            })?;
        leg.close.notify_one();
        Ok(())
    }

    /// `tenant`'s call with this id, waiting up to `join_timeout` for its first leg.
    /// With a tenant, an id it has no call with is `NotPermitted` after the same wait,
    /// whether or not another tenant has it.
    pub async fn find(
        &self,
        tenant: Option<&Tenant>,
        call_id: &str,
    ) -> Result<Arc<LiveCall>, ServerError> {
        let key = Self::key(tenant, call_id);
        let deadline = tokio::time::Instant::now() + self.cfg.join_timeout;
        loop {
            let appeared = self.appeared.notified();
            if let Some(c) = lock(&self.calls).get(&key) {
                return Ok(c.clone());
            }
            if tokio::time::timeout_at(deadline, appeared).await.is_err() {
                if tenant.is_some() {
                    return Err(ServerError::NotPermitted {
                        call_id: call_id.to_string(),
                    });
                }
                return Err(ServerError::NotStarted {
                    call_id: call_id.to_string(),
                    secs: self.cfg.join_timeout.as_secs(),
                });
            }
        }
    }

    /// Opens an RTP/UDP leg: binds a port from the range and starts its task.
    /// `tenant`'s leg joins (or starts) that tenant's call with the id. `allow_from`
    /// (empty: any): the networks the leg takes RTP from, within `rtp_allow`.
    pub async fn open_rtp_leg(
        self: &Arc<Self>,
        tenant: Option<Tenant>,
        allow_from: Vec<Cidr>,
        revocation: Option<Revocation>,
        req: LegRequest,
    ) -> Result<(u32, u16), ServerError> {
        check_call_id(&req.call_id)?;
        let socket = self.bind_port().await?;
        let port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
        let leg = self.join_as(tenant, req).await?;
        let channel_id = leg.channel_id;
        tracing::info!(call = %leg.call.call_id, channel_id, port, "RTP leg opened");
        let pace = self.pace([&leg]);
        tokio::spawn(run_udp_leg(
            socket,
            leg,
            self.cfg.idle_timeout,
            [self.cfg.rtp_allow.clone(), allow_from],
            pace,
            revocation,
        ));
        Ok((channel_id, port))
    }

    /// Binds a free even port of the range (RTP on even ports, the odd one above left for
    /// the sender's RTCP, as RFC 3550 §11 suggests): the first free one from an
    /// unpredictable place in the range. Handed out in order, the next leg's port could be
    /// guessed, and a client that sent RTP to it first would be latched as that leg's
    /// sender, its audio in someone else's call.
    async fn bind_port(&self) -> Result<UdpSocket, ServerError> {
        let (lo, hi) = (
            *self.cfg.rtp_ports.start() as u32,
            *self.cfg.rtp_ports.end() as u32,
        );
        let first_even = lo + lo % 2;
        let n = if hi >= first_even {
            (hi - first_even) / 2 + 1
        } else {
            0
        };
        let start = unpredictable_u32();
        for k in 0..n {
            let port = first_even + 2 * (start.wrapping_add(k) % n);
            if let Ok(s) = UdpSocket::bind(SocketAddr::new(self.cfg.rtp_addr, port as u16)).await {
                return Ok(s);
            }
        }
        Err(ServerError::NoFreePort { lo, hi })
    }

    /// Serves Asterisk AudioSocket connections on `listener` until the task is dropped,
    /// over TLS when `accept` has it (a TLS-terminating proxy beside Asterisk).
    pub async fn serve_audiosocket(self: Arc<Self>, listener: TcpListener, accept: Accept) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let (calls, accept) = (self.clone(), accept.clone());
                    tokio::spawn(async move {
                        match calls.audiosocket_conn(stream, &accept).await {
                            // A configuration mistake on the PBX: say it where it is seen.
                            Err(e @ ConnError::NotLinear) => {
                                tracing::error!(%peer, error = %e, "AudioSocket connection refused")
                            }
                            Err(e) => {
                                tracing::info!(%peer, error = %e, "AudioSocket connection ended")
                            }
                            Ok(()) => {}
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "AudioSocket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn audiosocket_conn(
        self: &Arc<Self>,
        stream: TcpStream,
        accept: &Accept,
    ) -> Result<(), ConnError> {
        let mut decoder = FrameDecoder::new();
        let mut buf = vec![0u8; 4096];
        // The TLS handshake, if any, and then the first message, which must name the
        // call, within the join timeout.
        let deadline = tokio::time::Instant::now() + self.cfg.join_timeout;
        let no_uuid = || ConnError::NoUuid {
            secs: self.cfg.join_timeout.as_secs(),
        };
        let mut stream = tokio::time::timeout_at(deadline, accept.accept(stream))
            .await
            .map_err(|_| no_uuid())?
            .map_err(ConnError::Tls)?;
        let leaf: Option<Vec<u8>> = stream.client_cert().map(|c| c.to_vec());
        let tenant = self.audiosocket_tenant(leaf.as_deref())?;
        let uuid = loop {
            match decoder.next_message() {
                Ok(Some(Message::Uuid(id))) => break audiosocket::uuid_string(&id),
                Ok(Some(other)) => return Err(ConnError::NotUuidFirst(other)),
                Ok(None) => {}
                Err(e) => return Err(e.into()),
            }
            let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
                .await
                .map_err(|_| no_uuid())??;
            if n == 0 {
                return Err(ConnError::ClosedBeforeUuid);
            }
            decoder.push(&buf[..n]);
        };
        let mut leg = self
            .join_as(
                tenant.clone(),
                LegRequest {
                    call_id: uuid,
                    role: Role::Unspecified,
                    encoding: Encoding::Linear16,
                    sample_rate_hz: audiosocket::AUDIO_RATE_HZ,
                    rtp: crate::core::rtp::leg::RtpSettings::for_encoding(Encoding::Linear16),
                    transport: Transport::AudioSocket,
                    options: proto::CallOptions::default(),
                    proved: leaf.is_some(),
                },
            )
            .await?;
        if leaf.is_some() {
            self.end_on_remap(std::slice::from_mut(&mut leg), move |calls| {
                matches!(calls.audiosocket_tenant(leaf.as_deref()), Ok(t) if t == tenant)
            });
        }
        tracing::info!(call = %leg.call.call_id, channel_id = leg.channel_id, "AudioSocket leg joined");
        let idle = self.cfg.idle_timeout;
        let id = leg.channel_id;
        let mut linear = audiosocket::LinearCheck::new();
        let mut pace = self.pace([&leg]);
        let result = async {
            loop {
                loop {
                    let input = match decoder.next_message() {
                        Ok(None) => break,
                        Ok(Some(Message::Audio(data))) => {
                            if linear.push(&data) == Some(false) {
                                let _ = leg.input.send(Input::Malformed { channel_id: id }).await;
                                return Err(ConnError::NotLinear);
                            }
                            // Ahead of the wall clock: the socket is not read (TCP flow
                            // control holds the sender) until the clock catches up.
                            let wait = pace.admit_packet(id, data.len());
                            if !wait.is_zero() {
                                tokio::select! {
                                    _ = tokio::time::sleep(wait) => {}
                                    _ = leg.close.notified() => return Ok(()),
                                }
                            }
                            Input::Audio {
                                channel_id: id,
                                data,
                            }
                        }
                        Ok(Some(Message::Dtmf(digit))) => Input::Dtmf {
                            channel_id: id,
                            digit,
                        },
                        Ok(Some(Message::Hangup)) => return Ok(()),
                        Ok(Some(Message::Error(code))) => return Err(ConnError::Peer(code)),
                        Ok(Some(Message::Uuid(_) | Message::Unknown { .. })) => {
                            Input::Malformed { channel_id: id }
                        }
                        Err(e) => {
                            let _ = leg.input.send(Input::Malformed { channel_id: id }).await;
                            return Err(e.into());
                        }
                    };
                    if leg.input.send(input).await.is_err() {
                        return Err(ConnError::CallEnded);
                    }
                }
                let n = tokio::select! {
                    r = tokio::time::timeout(idle, stream.read(&mut buf)) => match r {
                        Err(_) => {
                            if decoder.pending() > 0 {
                                let _ = leg.input.send(Input::Malformed { channel_id: id }).await;
                            }
                            return Err(ConnError::Idle { secs: idle.as_secs() });
                        }
                        Ok(Err(e)) => return Err(e.into()),
                        Ok(Ok(n)) => n,
                    },
                    _ = leg.close.notified() => return Ok(()),
                };
                if n == 0 {
                    if decoder.pending() > 0 {
                        let _ = leg.input.send(Input::Malformed { channel_id: id }).await;
                        return Err(ConnError::Truncated);
                    }
                    return Ok(());
                }
                decoder.push(&buf[..n]);
            }
        }
        .await;
        leg.end().await;
        result
    }
}

/// The role a joining leg gets: the asked one, or else the one the call lacks.
fn pick_role(asked: Role, legs: &[LegState]) -> Role {
    if asked != Role::Unspecified {
        return asked;
    }
    if legs.iter().any(|l| l.role == Role::Caller) && !legs.iter().any(|l| l.role == Role::Agent) {
        Role::Agent
    } else {
        Role::Caller
    }
}

fn spec(channel_id: u32, role: Role, req: &LegRequest) -> ChannelSpec {
    let mut s = ChannelSpec::new(channel_id, role, req.encoding, req.sample_rate_hz);
    s.rtp = req.rtp;
    s
}

impl Leg {
    /// Resolves when the leg is asked to end (`CloseLeg`, or its call failed).
    pub async fn closed(&self) {
        self.close.notified().await
    }

    /// The leg is over: its channel is ended, and the call too if it was the last leg.
    pub async fn end(self) {
        let _ = self.input.send(Input::EndChannel(self.channel_id)).await;
        let mut st = lock(&self.call.state);
        if let Some(l) = st.legs.iter_mut().find(|l| l.channel_id == self.channel_id) {
            l.open = false;
        }
        if st.legs.iter().all(|l| !l.open) {
            // The last sender besides this leg's own: dropping both ends the call.
            st.input = None;
        }
    }
}

/// Reads one RTP leg's UDP port until it is closed, idle or the call ends.
/// Audio more than `max_ahead` ahead of the leg's wall clock (from its first audio
/// packet) is dropped and counted ([`LivePace::admit_datagram`]). A datagram from outside
/// either of the `allow` lists (the server's, the leg's; empty allows all) is dropped and
/// counted as not allowed.
async fn run_udp_leg(
    socket: UdpSocket,
    leg: Leg,
    idle: Duration,
    allow: [Vec<Cidr>; 2],
    mut pace: LivePace,
    mut revocation: Option<Revocation>,
) {
    let id = leg.channel_id;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut peer: Option<SocketAddr> = None;
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = tokio::time::Instant::now();
    loop {
        let input = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((_, from)) if !allow.iter().all(|a| cidr::allowed(a, from.ip())) => {
                    Input::NotAllowed { channel_id: id }
                }
                Ok((n, from)) => {
                    // Latch onto the first sender of a valid RTP packet (symmetric
                    // RTP); datagrams from anyone else are dropped.
                    if peer.is_none() && crate::core::rtp::parse(&buf[..n]).is_ok() {
                        peer = Some(from);
                    }
                    if peer.is_some_and(|p| p != from) {
                        Input::Foreign { channel_id: id }
                    } else {
                        last = tokio::time::Instant::now();
                        let audio_bytes = leg.spec.rtp.audio_bytes(&buf[..n]);
                        if audio_bytes > 0 && !pace.admit_datagram(id, audio_bytes) {
                            // A datagram cannot be held back: beyond the allowance, it goes.
                            Input::AheadDropped { channel_id: id }
                        } else {
                            Input::Rtp { channel_id: id, now_ms: now_ms(), packet: buf[..n].to_vec() }
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "RTP leg receive error");
                    continue;
                }
            },
            _ = ticks.tick() => {
                if last.elapsed() >= idle {
                    tracing::info!(call = %leg.call.call_id, channel_id = id, "RTP leg idle: ended");
                    break;
                }
                Input::Tick { now_ms: now_ms() }
            }
            _ = leg.close.notified() => break,
            // The token that opened the leg was revoked: the leg ends (the call goes on
            // with its other legs, or finishes with its summary).
            _ = revoked(&mut revocation) => {
                tracing::info!(call = %leg.call.call_id, channel_id = id, "RTP leg ended: its token was revoked");
                break;
            }
        };
        if leg.input.send(input).await.is_err() {
            break;
        }
    }
    leg.end().await;
}

/// Takes a call's events into its history until the call ends, then keeps
/// the history for late watchers a while.
async fn collect(
    calls: Arc<Calls>,
    call: Arc<LiveCall>,
    handle: crate::server::session::CallHandle,
    mut events: mpsc::Receiver<Result<CallEvent, CallError>>,
    permit: CallPermit,
) {
    // The registry holds the call's input; this task only needs the events.
    drop(handle);
    let mut n = 0u64;
    let end = loop {
        match events.recv().await {
            Some(Ok(ev)) => {
                let mut h = lock(&call.history);
                h.events.push_back(ev);
                if h.events.len() > MAX_HISTORY {
                    h.events.pop_front();
                    h.base += 1;
                }
                drop(h);
                n += 1;
                call.changed.send_replace(n);
            }
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    if let Err(e) = &end {
        tracing::info!(call = %call.call_id, error = %e, "joined call failed");
    }
    // A failed call ends all its legs.
    {
        let mut st = lock(&call.state);
        st.input = None;
        for l in st.legs.iter() {
            l.close.notify_one();
        }
    }
    lock(&call.history).end = Some(end);
    call.changed.send_replace(n + 1);
    drop(permit);
    tokio::time::sleep(ENDED_CALL_KEEP).await;
    let mut map = lock(&calls.calls);
    if map.get(&call.key).is_some_and(|c| Arc::ptr_eq(c, &call)) {
        map.remove(&call.key);
    }
}

/// Events a `WatchCall` copies out of a call's history at a time.
const WATCH_BATCH: usize = 64;

impl LiveCall {
    /// The call's events from its start (or the oldest kept), then live ones
    /// until it ends; a failed call ends the stream with its status.
    pub fn watch(self: Arc<Self>) -> mpsc::Receiver<Result<CallEvent, CallError>> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut changed = self.changed.subscribe();
            let mut next = 0usize;
            loop {
                // A bounded batch at a time: a watcher that does not read holds at most
                // WATCH_BATCH copied events beside its channel, not the whole history.
                let (batch, end, more) = {
                    let h = lock(&self.history);
                    next = next.max(h.base);
                    let from = (next - h.base).min(h.events.len());
                    let batch: Vec<CallEvent> = h
                        .events
                        .iter()
                        .skip(from)
                        .take(WATCH_BATCH)
                        .cloned()
                        .collect();
                    let more = h.events.len() - from > batch.len();
                    (batch, h.end.clone(), more)
                };
                next += batch.len();
                for ev in batch {
                    if tx.send(Ok(ev)).await.is_err() {
                        return; // the watcher left; the call goes on
                    }
                }
                if more {
                    continue;
                }
                if let Some(end) = end {
                    if let Err(s) = end {
                        let _ = tx.send(Err(s)).await;
                    }
                    return;
                }
                if changed.changed().await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// The call id.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> CallEvent {
        CallEvent {
            call_id: format!("e{i}"),
            event: None,
        }
    }

    /// A watcher copies the history a batch at a time and still gets every event, in
    /// order, then the live ones, then the end.
    #[tokio::test]
    async fn a_watcher_gets_a_long_history_in_order_then_live_events_then_the_end() {
        let n = WATCH_BATCH * 3 + 5;
        let (changed, _) = watch::channel(0u64);
        let call = Arc::new(LiveCall {
            call_id: "c".into(),
            key: CallKey {
                tenant: None,
                call_id: "c".into(),
            },
            state: Mutex::new(CallState {
                input: None,
                legs: Vec::new(),
            }),
            history: Mutex::new(History {
                events: (0..n).map(event).collect(),
                base: 0,
                end: None,
            }),
            changed,
            started_proved: false,
        });
        let mut rx = call.clone().watch();
        for i in 0..n {
            let ev = rx.recv().await.expect("an event").expect("not an error");
            assert_eq!(ev.call_id, format!("e{i}"));
        }
        {
            let mut h = lock(&call.history);
            h.events.push_back(event(n));
            h.end = Some(Ok(()));
        }
        call.changed.send_replace(1);
        let ev = rx
            .recv()
            .await
            .expect("the live event")
            .expect("not an error");
        assert_eq!(ev.call_id, format!("e{n}"));
        assert!(rx.recv().await.is_none(), "the stream ends with the call");
    }

    #[test]
    fn the_advertised_host_is_the_flag_else_a_bound_address_else_nothing() {
        let mut cfg = LegsConfig::default();
        assert_eq!(cfg.rtp_host(), "", "0.0.0.0 is no address to send to");
        cfg.rtp_addr = IpAddr::from([10, 0, 0, 7]);
        assert_eq!(cfg.rtp_host(), "10.0.0.7");
        cfg.rtp_addr = "::".parse().unwrap();
        assert_eq!(cfg.rtp_host(), "");
        cfg.advertise_addr = Some("rtp-1.callmood.svc".into());
        assert_eq!(cfg.rtp_host(), "rtp-1.callmood.svc");
    }

    #[test]
    fn advertised_hosts_are_addresses_or_dns_names() {
        for ok in [
            "10.1.2.3",
            "::1",
            "fd00::7",
            "callmood-0.callmood",
            "rtp-1.example.com",
        ] {
            assert_eq!(check_advertise_addr(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "10.1.2.3:4000",
            "a..b",
            "-x.example",
            "sp ace",
            "x_y.example",
        ] {
            assert!(check_advertise_addr(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}.example", "a".repeat(64));
        assert!(check_advertise_addr(&long).is_err());
    }
}
