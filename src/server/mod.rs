//! The gRPC service `callmood.v1.CallAnalyzer`, with the standard health
//! service and server reflection.
//!
//! Every error a client can cause is mapped to a `tonic::Status` in exactly one
//! place, [`status`]. Calls in flight are capped by a semaphore; a call over
//! the cap gets `RESOURCE_EXHAUSTED` at once rather than a slow service for all.
pub mod legs;
pub mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::asr::{AsrConfig, AsrPool};
use crate::call::{check_language, CallError, CallSettings, ChannelSpec, Transport};
use crate::core::codec;
use crate::core::dsp::DspPlan;
use crate::emotion::voice::VoiceModel;
use crate::emotion::Words;
use crate::proto::call_analyzer_server::{CallAnalyzer, CallAnalyzerServer};
use crate::proto::{self, stream_call_request, CallEvent};
use legs::{Calls, LegRequest, LegsConfig};
use session::{Analyzer, AsrBackpressure, Input, SessionOptions, TICK};

/// Default listen address.
pub const DEFAULT_ADDR: &str = "0.0.0.0:50051";
/// Default path of the Whisper model.
pub const DEFAULT_MODEL: &str = "models/ggml-tiny.en.bin";
/// Default cap on calls in flight.
pub const DEFAULT_MAX_CALLS: usize = 64;
/// Default: how long a new stream may take to send its config.
pub const DEFAULT_CONFIG_TIMEOUT: Duration = Duration::from_secs(10);
/// Default: a live call with no message for this long is ended (a stalled
/// client must not hold a call slot forever).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest request message accepted, bytes (a recording for `AnalyzeRecording`
/// must fit: 64 MiB holds ~35 min of 16 kHz 16-bit stereo).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;

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
    /// Largest request message, bytes.
    pub max_message_bytes: usize,
    /// A live call with no message for this long is ended.
    pub idle_timeout: Duration,
    /// A new `StreamCall` that sends no config for this long is refused
    /// (`DEADLINE_EXCEEDED`), freeing its slot.
    pub config_timeout: Duration,
    /// Per-call analysis settings.
    pub call: CallSettings,
    /// RTP/UDP legs: bind address, port range, idle timeout.
    pub legs: LegsConfig,
    /// Where to accept Asterisk AudioSocket connections; `None`: not at all.
    pub audiosocket_addr: Option<SocketAddr>,
}

/// Maps every call error to its gRPC status: the one place that does.
pub fn status(e: CallError) -> Status {
    let msg = e.to_string();
    match e {
        CallError::CallTooLong { .. } => Status::resource_exhausted(msg),
        CallError::IdleTimeout { .. } => Status::deadline_exceeded(msg),
        CallError::ConfigFirst
        | CallError::ConfigTwice
        | CallError::EmptyMessage
        | CallError::NoChannels
        | CallError::TooManyChannels { .. }
        | CallError::DuplicateChannel(_)
        | CallError::UnspecifiedEncoding { .. }
        | CallError::BadSampleRate { .. }
        | CallError::UnsupportedLanguage(_)
        | CallError::UnknownChannel(_)
        | CallError::BadRtpConfig { .. }
        | CallError::MixedInput { .. }
        | CallError::ChannelEnded(_)
        | CallError::BadAudio(_) => Status::invalid_argument(msg),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<CallEvent, Status>> + Send>>;

/// The `CallAnalyzer` implementation.
pub struct Service {
    analyzer: Analyzer,
    calls: Arc<Semaphore>,
    max_calls: usize,
    settings: CallSettings,
    idle_timeout: Duration,
    config_timeout: Duration,
    legs: Arc<Calls>,
}

impl Service {
    /// A service over shared analysis resources; `legs` holds the calls of
    /// joined RTP/AudioSocket legs and shares the cap on calls in flight.
    pub fn new(analyzer: Analyzer, cfg: &ServeConfig) -> Self {
        let calls = Arc::new(Semaphore::new(cfg.max_calls));
        let legs = Calls::new(
            analyzer.clone(),
            calls.clone(),
            cfg.max_calls,
            cfg.legs.clone(),
            cfg.call.clone(),
        );
        Self {
            analyzer,
            calls,
            max_calls: cfg.max_calls,
            settings: cfg.call.clone(),
            idle_timeout: cfg.idle_timeout,
            config_timeout: cfg.config_timeout,
            legs,
        }
    }

    /// The registry of joined legs (the AudioSocket listener joins through it).
    pub fn legs(&self) -> Arc<Calls> {
        self.legs.clone()
    }

    fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.calls.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "{} calls are in flight, the limit: retry later",
                self.max_calls
            ))
        })
    }

    fn options(
        &self,
        o: Option<&proto::CallOptions>,
        backpressure: AsrBackpressure,
    ) -> SessionOptions {
        let o = o.cloned().unwrap_or_default();
        SessionOptions {
            settings: self.settings.clone(),
            backpressure,
            disable_transcript: o.disable_transcript,
            disable_prosody_events: o.disable_prosody_events,
            joining: None,
            redact_pii: !o.disable_pii_redaction,
            send_alerts: !o.disable_alerts,
        }
    }
}

fn call_id_or_new(id: &str) -> String {
    if id.is_empty() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("call-{t:x}")
    } else {
        id.to_string()
    }
}

/// The next tick of a live RTP call, or else the idle deadline.
async fn tick(ticks: &mut Option<tokio::time::Interval>, deadline: tokio::time::Instant) {
    match ticks {
        Some(i) => {
            i.tick().await;
        }
        None => tokio::time::sleep_until(deadline).await,
    }
}

/// Wraps a call's events as a gRPC stream that holds the call's permit.
fn into_stream(
    events: tokio::sync::mpsc::Receiver<Result<CallEvent, CallError>>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> EventStream {
    Box::pin(ReceiverStream::new(events).map(move |r| {
        let _held = &permit;
        r.map_err(status)
    }))
}

#[tonic::async_trait]
impl CallAnalyzer for Service {
    type StreamCallStream = EventStream;
    type AnalyzeRecordingStream = EventStream;
    type WatchCallStream = EventStream;

    async fn open_rtp_leg(
        &self,
        request: Request<proto::OpenRtpLegRequest>,
    ) -> Result<Response<proto::OpenRtpLegResponse>, Status> {
        let r = request.into_inner();
        check_language(&r.language).map_err(status)?;
        // The same checks as a StreamCall channel, with the same field names.
        let spec = ChannelSpec::from_proto(&proto::ChannelConfig {
            channel_id: 0,
            role: r.role,
            encoding: if r.encoding == 0 {
                proto::Encoding::Mulaw as i32
            } else {
                r.encoding
            },
            sample_rate_hz: r.sample_rate_hz,
            rtp_payload_type: r.payload_type,
            rtp_dtmf_payload_type: r.dtmf_payload_type,
            jitter_buffer_ms: r.jitter_buffer_ms,
        })
        .map_err(status)?;
        let (channel_id, port) = self
            .legs
            .open_rtp_leg(LegRequest {
                call_id: r.call_id.clone(),
                role: spec.role,
                encoding: spec.encoding,
                sample_rate_hz: spec.sample_rate_hz,
                rtp: spec.rtp,
                transport: Transport::RtpUdp,
                options: r.options.unwrap_or_default(),
            })
            .await?;
        Ok(Response::new(proto::OpenRtpLegResponse {
            call_id: r.call_id,
            channel_id,
            port: port as u32,
        }))
    }

    async fn close_leg(
        &self,
        request: Request<proto::CloseLegRequest>,
    ) -> Result<Response<proto::CloseLegResponse>, Status> {
        let r = request.into_inner();
        self.legs.close(&r.call_id, r.channel_id)?;
        Ok(Response::new(proto::CloseLegResponse {}))
    }

    async fn watch_call(
        &self,
        request: Request<proto::WatchCallRequest>,
    ) -> Result<Response<Self::WatchCallStream>, Status> {
        let r = request.into_inner();
        if r.call_id.is_empty() {
            return Err(Status::invalid_argument("call_id: required"));
        }
        let call = self.legs.find(&r.call_id).await?;
        Ok(Response::new(Box::pin(ReceiverStream::new(call.watch()))))
    }

    async fn stream_call(
        &self,
        request: Request<Streaming<proto::StreamCallRequest>>,
    ) -> Result<Response<Self::StreamCallStream>, Status> {
        let permit = self.permit()?;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(self.config_timeout, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no config within {} s of opening the stream",
                    self.config_timeout.as_secs()
                ))
            })??
            .ok_or_else(|| Status::invalid_argument("the stream ended before its config"))?;
        let cfg = match first.request {
            Some(stream_call_request::Request::Config(c)) => c,
            _ => return Err(status(CallError::ConfigFirst)),
        };
        check_language(&cfg.language).map_err(status)?;
        let specs = cfg
            .channels
            .iter()
            .map(ChannelSpec::from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(status)?;
        let opts = self.options(cfg.options.as_ref(), AsrBackpressure::Drop);
        let (handle, events) = self
            .analyzer
            .start_call(call_id_or_new(&cfg.call_id), &specs, opts)
            .map_err(status)?;
        let idle = self.idle_timeout;
        tokio::spawn(async move {
            // Once RTP flows, the jitter buffers are told the time every
            // TICK, so held packets play out while no message comes.
            let mut ticks: Option<tokio::time::Interval> = None;
            let mut last_message = tokio::time::Instant::now();
            loop {
                let next = tokio::select! {
                    m = inbound.message() => m,
                    _ = tick(&mut ticks, last_message + idle) => {
                        if last_message.elapsed() >= idle {
                            let secs = idle.as_secs();
                            let _ = handle
                                .input
                                .send(Input::Fail(CallError::IdleTimeout { secs }))
                                .await;
                            return;
                        }
                        if handle.input.send(Input::Tick { now_ms: session::now_ms() }).await.is_err() {
                            return;
                        }
                        continue;
                    }
                };
                last_message = tokio::time::Instant::now();
                let input = match next {
                    Ok(Some(m)) => match m.request {
                        Some(stream_call_request::Request::Audio(a)) => Input::Audio {
                            channel_id: a.channel_id,
                            data: a.data,
                        },
                        Some(stream_call_request::Request::Config(_)) => {
                            Input::Fail(CallError::ConfigTwice)
                        }
                        Some(stream_call_request::Request::Rtp(r)) => {
                            ticks.get_or_insert_with(|| {
                                let mut i = tokio::time::interval(TICK);
                                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                                i
                            });
                            Input::Rtp {
                                channel_id: r.channel_id,
                                now_ms: session::now_ms(),
                                packet: r.packet,
                            }
                        }
                        None => Input::Fail(CallError::EmptyMessage),
                    },
                    // Half-close: the call ended normally.
                    Ok(None) => return,
                    Err(e) => {
                        tracing::info!(error = %e, "client stream broke off: call aborted");
                        handle.abort();
                        return;
                    }
                };
                let fail = matches!(input, Input::Fail(_));
                if handle.input.send(input).await.is_err() || fail {
                    return;
                }
            }
        });
        Ok(Response::new(into_stream(events, permit)))
    }

    async fn analyze_recording(
        &self,
        request: Request<proto::AnalyzeRecordingRequest>,
    ) -> Result<Response<Self::AnalyzeRecordingStream>, Status> {
        let permit = self.permit()?;
        let req = request.into_inner();
        check_language(&req.language).map_err(status)?;
        let (rate, channels) = match req.audio {
            Some(proto::analyze_recording_request::Audio::Wav(bytes)) => {
                let wav = codec::wav::parse_wav(&bytes)
                    .map_err(|e| status(CallError::BadAudio(e.to_string())))?;
                (wav.sample_rate, wav.samples)
            }
            Some(proto::analyze_recording_request::Audio::Raw(raw)) => {
                decode_raw(&raw).map_err(status)?
            }
            None => {
                return Err(Status::invalid_argument(
                    "audio: a wav or raw recording is required",
                ))
            }
        };
        let left = proto::Role::try_from(req.left_role).unwrap_or(proto::Role::Unspecified);
        let specs = session::recording_channels(channels.len(), rate, left);
        let opts = self.options(req.options.as_ref(), AsrBackpressure::Wait);
        let (handle, events) = self
            .analyzer
            .start_call(call_id_or_new(&req.call_id), &specs, opts)
            .map_err(status)?;
        tokio::spawn(session::feed_recording(handle, channels, rate));
        Ok(Response::new(into_stream(events, permit)))
    }
}

/// Decodes a raw recording into per-channel samples.
fn decode_raw(raw: &proto::RawAudio) -> Result<(u32, Vec<Vec<f32>>), CallError> {
    let spec = ChannelSpec::from_proto(&proto::ChannelConfig {
        channel_id: 0,
        role: 0,
        encoding: raw.encoding,
        sample_rate_hz: raw.sample_rate_hz,
        ..Default::default()
    })?;
    let n = raw.channels.max(1) as usize;
    if n > crate::call::MAX_CHANNELS {
        return Err(CallError::TooManyChannels {
            max: crate::call::MAX_CHANNELS,
            got: n,
        });
    }
    let mut interleaved = Vec::new();
    codec::Decoder::new(spec.encoding).decode_into(&raw.data, &mut interleaved);
    let mut channels = vec![Vec::with_capacity(interleaved.len() / n); n];
    for (i, s) in interleaved.into_iter().enumerate() {
        channels[i % n].push(s);
    }
    Ok((spec.sample_rate_hz, channels))
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
    serve_on(listener, audiosocket, analyzer, &cfg, shutdown_signal()).await
}

/// Serves on bound listeners (gRPC, and AudioSocket if given) until
/// `shutdown` completes (tests use this).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    audiosocket: Option<tokio::net::TcpListener>,
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
    let service = Service::new(analyzer, cfg);
    // Dropped (and with it the accept loop) when serving ends.
    let _audiosocket =
        audiosocket.map(|l| AbortOnDrop(tokio::spawn(service.legs().serve_audiosocket(l))));
    let svc = CallAnalyzerServer::new(service).max_decoding_message_size(cfg.max_message_bytes);
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(svc)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await?;
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
    eprintln!("callmood: shutting down");
}
