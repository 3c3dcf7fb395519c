//! The shell: the gRPC service `callmood.v1.CallAnalyzer` with the standard health
//! service and server reflection, the transports whose legs join calls, and the
//! threads and channels around each call.
//!
//! - [`grpc`]: the RPCs.
//! - [`legs`]: calls whose legs come over RTP/UDP or AudioSocket/TCP, joined by call id.
//! - [`session`]: one call's thread, recogniser jobs and event pump; it only moves
//!   messages.
//! - [`status`]: the one place where an error becomes a `tonic::Status`.
//! - [`metrics`]: what the calls count, served to Prometheus on `--metrics-addr`.
//! - [`ws`]: WebSocket media connectors (Twilio Media Streams, audio fork, AudioHook),
//!   whose sockets join calls as legs.
//!
//! Calls in flight are capped by a semaphore; a call over the cap gets
//! `RESOURCE_EXHAUSTED` at once rather than a slow service for all.
//!
//! On SIGTERM or Ctrl-C the service drains: health turns `NOT_SERVING`, new calls
//! get `UNAVAILABLE`, every call in flight is ended where its audio has come to (as if
//! its client had hung up) and finishes, so each listener gets its last utterances and
//! its summary; after that, or after the drain timeout, the service stops.
pub mod grpc;
pub mod legs;
pub mod limits;
pub mod metrics;
pub mod security;
pub mod session;
pub mod status;
pub mod tls;
pub mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::asr::{AsrConfig, AsrPool};
use crate::call::CallSettings;
use crate::core::dsp::DspPlan;
use crate::emotion::voice::VoiceModel;
use crate::emotion::Words;
use crate::proto::{self, call_analyzer_server::CallAnalyzerServer};
use grpc::Service;
use legs::LegsConfig;
use session::Analyzer;

/// Default listen address.
pub const DEFAULT_ADDR: &str = "0.0.0.0:50051";
/// Default path of the Whisper model.
pub const DEFAULT_MODEL: &str = "models/ggml-tiny.en.bin";
/// Default cap on calls in flight.
pub const DEFAULT_MAX_CALLS: usize = 64;
/// Default: how long a new stream may take to send its config (a client sends it at
/// once; a stream that does not holds a call slot for nothing).
pub const DEFAULT_CONFIG_TIMEOUT: Duration = Duration::from_secs(5);
/// Default: a live call with no message for this long is ended (a stalled
/// client must not hold a call slot forever).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// glibc malloc arenas at most, by default (`server.malloc_arena_max`, applied by `serve`
/// as `MALLOC_ARENA_MAX`): with glibc's own limit (8 per core) a one-hour soak's RSS crept
/// by 4–6 MiB/h in arenas, not live objects; capped at 2 it sat 55 MiB lower and flat
/// (docs/measurements.md, "Soak").
pub const DEFAULT_MALLOC_ARENA_MAX: usize = 2;

/// Largest request message accepted but for `AnalyzeRecording`, bytes: a config, an id
/// or one chunk of live audio (10 s of 48 kHz 16-bit audio, the longest chunk, is
/// 960,000 bytes).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Largest `AnalyzeRecording` request accepted, bytes: the whole recording is one
/// message (64 MiB holds ~35 min of 16 kHz 16-bit stereo).
pub const DEFAULT_MAX_RECORDING_BYTES: usize = 64 << 20;
/// Default cap on `AnalyzeRecording` calls in flight: each may hold up to
/// `max_recording_bytes` of request and its decoded samples (4 × 64 MiB of 16-bit audio is
/// about 0.8 GB with the samples as `f32`), and the recogniser runs recordings' windows one
/// at a time beside the live calls anyway.
pub const DEFAULT_MAX_RECORDINGS: usize = 4;
/// Default: how far a live call's audio may run ahead of the wall clock before its
/// stream (`StreamCall`, AudioSocket, WebSocket) is read no further until the clock
/// catches up; RTP over UDP, which cannot be held back, is dropped beyond it.
pub const DEFAULT_MAX_AHEAD: Duration = Duration::from_secs(10);
/// How often the gRPC server pings a connection that has been quiet (HTTP/2 PING).
pub const GRPC_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection, and its calls, end.
pub const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Default: how long a drain waits for the calls in flight to finish and deliver
/// their summaries before the service stops anyway.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// After the drain, how long open connections get to close before serving ends anyway.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Service configuration; CLI flags map onto it.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// GGML Whisper model file.
    pub model: PathBuf,
    /// Voice emotion model file; `None` serves without emotion scores.
    pub emotion_model: Option<PathBuf>,
    /// Words model file and lexicon directory; `None` scores the voice alone.
    pub words_model: Option<(PathBuf, PathBuf)>,
    /// Recogniser settings (workers, threads, queue).
    pub asr: AsrConfig,
    /// Calls in flight at most; more get `RESOURCE_EXHAUSTED`.
    pub max_calls: usize,
    /// Largest request message but for `AnalyzeRecording`, bytes.
    pub max_message_bytes: usize,
    /// Largest `AnalyzeRecording` request message, bytes.
    pub max_recording_bytes: usize,
    /// `AnalyzeRecording` calls in flight at most; more are refused before their
    /// recording is read.
    pub max_recordings: usize,
    /// How far a live call's audio may run ahead of the wall clock (from its first
    /// chunk) before its stream is held back: `StreamCall`, AudioSocket and WebSocket
    /// are not read until the clock catches up, RTP over UDP is dropped and counted.
    pub max_ahead: Duration,
    /// A live call with no message for this long is ended.
    pub idle_timeout: Duration,
    /// A new `StreamCall` that sends no config for this long is refused
    /// (`DEADLINE_EXCEEDED`), freeing its slot.
    pub config_timeout: Duration,
    /// Per-call analysis settings.
    pub call: CallSettings,
    /// Alert thresholds, evidence and cool-down of every call.
    pub alerts: crate::contact::alerts::AlertConfig,
    /// RTP/UDP legs: bind address, port range, idle timeout.
    pub legs: LegsConfig,
    /// Where to accept Asterisk AudioSocket connections; `None`: not at all.
    pub audiosocket_addr: Option<SocketAddr>,
    /// Where to serve Prometheus metrics (`GET /metrics`); `None`: not at all.
    pub metrics_addr: Option<SocketAddr>,
    /// On SIGTERM / Ctrl-C, how long the calls in flight get to finish.
    pub drain_timeout: Duration,
    /// Where to accept WebSocket media connections (`/twilio`, `/fork`, `/audiohook`);
    /// `None`: not at all.
    pub ws_addr: Option<SocketAddr>,
    /// Settings of the WebSocket media connectors.
    pub ws: ws::WsConfig,
    /// Tokens, tenants and their caps (default: none, as an open service).
    pub security: security::SecurityConfig,
}

/// Loads the model and serves until Ctrl-C / SIGTERM.
pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    let plan = DspPlan::new();
    let asr = AsrPool::new(&cfg.model, cfg.asr.clone()).map_err(|e| {
        anyhow::anyhow!(
            "cannot load the Whisper model {}: {e} (run models/fetch.sh to fetch and convert it)",
            cfg.model.display()
        )
    })?;
    let voice = match &cfg.emotion_model {
        Some(path) => Some(Arc::new(VoiceModel::load(path).map_err(|e| {
            anyhow::anyhow!("{e} (train one with `callmood train`, or run with --no-emotion)")
        })?)),
        None => None,
    };
    if let (Some(v), Some(path)) = (&voice, &cfg.emotion_model) {
        if let Some(note) = v.uncalibrated_note(path) {
            eprintln!("callmood: {note}");
        }
    }
    if let Some(c) = voice.as_ref().and_then(|v| v.calibration.as_ref()) {
        tracing::info!(
            source = %c.source,
            utterances = c.calm.utterances,
            onto = %c.neutral.condition,
            "voice emotion model calibrated to a line (callmood calibrate)"
        );
    }
    let words = match &cfg.words_model {
        Some((model, lexicon)) => Some(Arc::new(Words::load(model, lexicon).map_err(|e| {
            anyhow::anyhow!("{e} (run with --no-emotion to serve without emotion)")
        })?)),
        None => None,
    };
    let analyzer = Analyzer {
        plan,
        asr: Some(Arc::new(asr)),
        voice,
        words,
        metrics: Arc::new(metrics::Metrics::new()),
    };
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cfg.addr))?;
    let local = listener.local_addr()?;
    let audiosocket = match cfg.audiosocket_addr {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for AudioSocket on {a}: {e}"))?,
        ),
        None => None,
    };
    tracing::info!(addr = %local, model = %cfg.model.display(), "callmood serving");
    eprintln!("callmood: serving callmood.v1.CallAnalyzer on {local}");
    eprintln!(
        "callmood: RTP legs on {} ports {}-{}",
        cfg.legs.rtp_addr,
        cfg.legs.rtp_ports.start(),
        cfg.legs.rtp_ports.end()
    );
    if let Some(a) = &audiosocket {
        eprintln!("callmood: AudioSocket on {}", a.local_addr()?);
    }
    let websocket = match cfg.ws_addr {
        Some(a) => {
            let l = tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for WebSocket media on {a}: {e}"))?;
            eprintln!(
                "callmood: WebSocket media on {} ({})",
                l.local_addr()?,
                cfg.ws.access_summary()
            );
            Some(l)
        }
        None => None,
    };
    // Dropped (and with it the metrics endpoint) when serving ends.
    let _metrics = match cfg.metrics_addr {
        Some(a) => {
            let l = metrics::bind(a).await?;
            eprintln!(
                "callmood: Prometheus metrics on http://{}/metrics",
                l.local_addr()?
            );
            let task = metrics::serve_metrics(l, analyzer.metrics.clone(), analyzer.asr.clone());
            Some(AbortOnDrop(tokio::spawn(task)))
        }
        None => None,
    };
    serve_on(
        listener,
        audiosocket,
        websocket,
        analyzer,
        &cfg,
        shutdown_signal(),
    )
    .await
}

/// Serves on bound listeners (gRPC, and AudioSocket and WebSocket media if given)
/// until `shutdown` completes and the calls in flight have drained (tests use this).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    audiosocket: Option<tokio::net::TcpListener>,
    websocket: Option<tokio::net::TcpListener>,
    analyzer: Analyzer,
    cfg: &ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<CallAnalyzerServer<Service>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let auth = match &cfg.security.auth_tokens {
        Some(path) => Some(security::Auth::load(path)?),
        None => None,
    };
    match &auth {
        Some(a) => {
            let t = a.tokens();
            eprintln!(
                "callmood: authentication on: {} of {} tenants from {} (reloaded on SIGHUP)",
                t.summary(),
                t.tenants(),
                a.path().display()
            );
            for (kind, n) in
                t.unaccepted_media(|k, id| cfg.ws_addr.is_some() && cfg.ws.accepts(k, id))
            {
                eprintln!(
                    "callmood: warning: {n} `{}` lines of {} name a credential {}: they can \
                     never match",
                    kind.prefix(),
                    a.path().display(),
                    if cfg.ws_addr.is_some() {
                        "the WebSocket media settings do not accept"
                    } else {
                        "for WebSocket media, which is off"
                    }
                );
            }
        }
        None => eprintln!("callmood: authentication off: any client may use every call"),
    }
    // Dropped (and with it the SIGHUP handler) when serving ends.
    let _reload = auth
        .clone()
        .map(|a| AbortOnDrop(tokio::spawn(security::reload_on_sighup(a))));
    let authenticate = security::Authenticate(auth.clone());
    let metrics = analyzer.metrics.clone();
    let service = Service::new(analyzer, cfg, auth.clone());
    let legs = service.legs();
    // Dropped (and with it the accept loop) when serving ends.
    let _audiosocket = match audiosocket {
        Some(l) => {
            let accept = tls::audiosocket_accept(&cfg.security)?;
            eprintln!("callmood: AudioSocket {}", accept.describe());
            let task = service.legs().serve_audiosocket(l, accept);
            Some(AbortOnDrop(tokio::spawn(task)))
        }
        None => None,
    };
    let _websocket = match websocket {
        Some(l) => {
            let accept = tls::ws_accept(&cfg.security)?;
            eprintln!("callmood: WebSocket media {}", accept.describe());
            let task = ws::serve(l, service.legs(), cfg.ws.clone(), accept);
            Some(AbortOnDrop(tokio::spawn(task)))
        }
        None => None,
    };
    let service = Arc::new(service);
    let svc = limits::SizedRpcs {
        small: CallAnalyzerServer::from_arc(service.clone())
            .max_decoding_message_size(cfg.max_message_bytes),
        large: CallAnalyzerServer::from_arc(service)
            .max_decoding_message_size(cfg.max_recording_bytes),
        recordings: limits::RecordingSlots::new(
            cfg.max_recordings,
            cfg.security.tenant_max_recordings,
            metrics.clone(),
        ),
    };
    let svc = tonic::service::interceptor::InterceptedService::new(svc, authenticate.clone());
    // Health stays open to probes; reflection needs a token like the calls.
    let reflection = tonic::service::interceptor::InterceptedService::new(reflection, authenticate);
    let drain_timeout = cfg.drain_timeout;
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    // The listener stays open while draining, so that a new call is told UNAVAILABLE
    // rather than finding no one there.
    let drained = async move {
        shutdown.await;
        health
            .set_not_serving::<CallAnalyzerServer<Service>>()
            .await;
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        metrics.set_draining();
        let left = legs.drain(drain_timeout).await;
        if left > 0 {
            eprintln!(
                "callmood: drain timeout ({} s): {left} calls still in flight are cut off",
                drain_timeout.as_secs()
            );
        } else {
            eprintln!("callmood: drained: every call finished");
        }
        let _ = drained_tx.send(());
    };
    // A peer that vanished without a reset (a dead NAT entry, a pulled cable) would hold
    // its calls' slots as long as their input waits on it; HTTP/2 pings find it:
    // unanswered for GRPC_KEEPALIVE_TIMEOUT, the connection and its calls end.
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT));
    match &cfg.security.tls {
        Some(tls) => {
            builder = builder.tls_config(tls.server_config()?)?;
            eprintln!("callmood: gRPC {}", tls.describe());
        }
        None => eprintln!("callmood: gRPC TLS off: plaintext (loopback and development only)"),
    }
    let server = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(svc)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            drained,
        );
    // Connections that stay open after the drain (a call cut off at the timeout, a
    // client that keeps its stream) do not hold the process.
    let closed_or_grace = async {
        if drained_rx.await.is_ok() {
            tokio::time::sleep(CLOSE_GRACE).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = server => r?,
        _ = closed_or_grace => tracing::info!("connections still open after the drain: stopping"),
    }
    Ok(())
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    eprintln!("callmood: shutting down: draining the calls in flight");
}
