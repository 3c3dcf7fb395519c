//! The `CallAnalyzer` RPCs: each request checked, turned into a call (or a leg of one)
//! and its events streamed back. Every error goes through [`status`].
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::legs::{CallPermit, Calls, LegRequest};
use super::limits::{stream_fault, LivePace, RecordingSlot};
use super::security::{
    check_call_id, revocation_of, revoked, shown, tenant_of, Auth, Revocation, Tenant,
};
use super::session::{self, Analyzer, AsrBackpressure, Input, SessionOptions, TICK};
use super::status::{status, ServerError};
use super::ServeConfig;
use crate::call::{check_language, CallError, CallSettings, ChannelSpec, Transport};
use crate::core::cidr::Cidr;
use crate::core::codec;
use crate::core::rtp::leg::RtpSettings;
use crate::proto::call_analyzer_server::CallAnalyzer;
use crate::proto::{self, stream_call_request, CallEvent};

type EventStream = Pin<Box<dyn Stream<Item = Result<CallEvent, Status>> + Send>>;

/// The `CallAnalyzer` implementation.
pub struct Service {
    analyzer: Analyzer,
    settings: CallSettings,
    idle_timeout: Duration,
    config_timeout: Duration,
    max_message_bytes: usize,
    max_ahead: Duration,
    legs: Arc<Calls>,
    /// The token file, if any: a `WatchCall` ends when a reload takes its token away.
    auth: Option<Arc<Auth>>,
}

impl Service {
    /// A service over shared analysis resources; `legs` holds the calls of
    /// joined RTP/AudioSocket legs and shares the cap on calls in flight. `auth`, the
    /// token file, also maps AudioSocket TLS clients' certificates to tenants.
    pub fn new(analyzer: Analyzer, cfg: &ServeConfig, auth: Option<Arc<Auth>>) -> Self {
        let calls = Arc::new(Semaphore::new(cfg.max_calls));
        let legs = Calls::new(
            analyzer.clone(),
            calls,
            cfg.max_calls,
            cfg.legs.clone(),
            cfg.max_ahead,
            cfg.call.clone(),
            cfg.alerts.clone(),
        )
        .with_tenants(
            cfg.security.tenant_max_calls,
            cfg.security.media_tenant.as_deref().map(Tenant::from),
        )
        .with_redaction(
            cfg.security.redact_all_numbers,
            cfg.security
                .payment_window_ms
                .unwrap_or(crate::contact::finish::PAYMENT_WINDOW_MS),
        )
        .with_auth(auth.clone());
        Self {
            analyzer,
            settings: cfg.call.clone(),
            idle_timeout: cfg.idle_timeout,
            config_timeout: cfg.config_timeout,
            max_message_bytes: cfg.max_message_bytes,
            max_ahead: cfg.max_ahead,
            legs,
            auth,
        }
    }

    /// The registry of joined legs (the AudioSocket listener joins through it).
    pub fn legs(&self) -> Arc<Calls> {
        self.legs.clone()
    }

    fn options(
        &self,
        o: Option<&proto::CallOptions>,
        backpressure: AsrBackpressure,
        tenant: Option<&Tenant>,
    ) -> SessionOptions {
        SessionOptions {
            settings: self.settings.clone(),
            backpressure,
            joining: None,
            finish: self.legs.finish_options(o),
            pack_scope: tenant.cloned(),
        }
    }
}

/// The client's call id, checked, or a new one when it gave none.
fn call_id_or_new(id: &str) -> Result<String, ServerError> {
    check_call_id(id)?;
    Ok(if id.is_empty() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("call-{t:x}")
    } else {
        id.to_string()
    })
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

/// Resolves once the service drains (or is gone).
async fn drained(signal: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = signal.wait_for(|d| *d).await;
}

/// Waits `wait` (a stream ahead of the wall clock is not read meanwhile); false when a
/// drain came first.
async fn hold(wait: Duration, drain: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    wait.is_zero()
        || tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = drained(drain) => false,
        }
}

/// Wraps a call's events as a gRPC stream that holds the call's permit.
fn into_stream(
    events: tokio::sync::mpsc::Receiver<Result<CallEvent, CallError>>,
    permit: CallPermit,
) -> EventStream {
    Box::pin(ReceiverStream::new(events).map(move |r| {
        let _held = &permit;
        r.map_err(status)
    }))
}

/// [`into_stream`] that also ends with `broken`'s status as soon as one comes: the
/// client's own stream broke (a message over a limit, bad protobuf), so the call ends
/// with that error rather than an OK without a summary.
fn into_stream_or_broken(
    events: tokio::sync::mpsc::Receiver<Result<CallEvent, CallError>>,
    permit: CallPermit,
    broken: tokio::sync::oneshot::Receiver<Status>,
) -> EventStream {
    let broken = futures_util::stream::once(broken).filter_map(|r| r.ok().map(Err));
    Box::pin(into_stream(events, permit).merge(broken))
}

/// Counts what a client did wrong, by [`super::metrics::Metrics::client_fault`]'s labels.
fn count_fault(metrics: &super::metrics::Metrics, e: &ServerError) {
    let fault = match e {
        // The server's decision, not the client's fault.
        ServerError::Revoked => return,
        ServerError::MessageTooLarge { .. } => "message_too_large",
        ServerError::ChunkTooLong { .. } => "chunk_too_long",
        ServerError::ConfigTimeout { .. } => "config_timeout",
        _ => "stream_broken",
    };
    metrics.client_fault(fault);
}

/// `events`, ended with `UNAUTHENTICATED` as soon as a reload of the token file leaves
/// the caller's token (or certificate) naming no tenant, or another one: a client whose
/// token was revoked must not go on reading a call's transcripts.
fn revocable(events: EventStream, revocation: Revocation) -> EventStream {
    let state = Some((events, revocation));
    Box::pin(futures_util::stream::unfold(state, |st| async move {
        let (mut events, mut revocation) = st?;
        tokio::select! {
            item = events.next() => item.map(|i| (i, Some((events, revocation)))),
            _ = revocation.revoked() => Some((Err(status(ServerError::Revoked)), None)),
        }
    }))
}

/// Most networks one `OpenRtpLeg` may name in `allow_from`.
const MAX_ALLOW_FROM: usize = 16;

/// `OpenRtpLeg.allow_from` read as networks; a malformed entry is refused by its index,
/// showing no more of it than [`shown`] does.
fn allow_from(entries: &[String]) -> Result<Vec<Cidr>, Status> {
    if entries.len() > MAX_ALLOW_FROM {
        return Err(Status::invalid_argument(format!(
            "allow_from: {} networks, at most {MAX_ALLOW_FROM}",
            entries.len()
        )));
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            e.parse::<Cidr>().map_err(|_| {
                Status::invalid_argument(format!(
                    "allow_from[{i}]: {:?} is not a network (CIDR such as 10.0.0.0/8, or an \
                     address, with no host bits below its prefix)",
                    shown(e)
                ))
            })
        })
        .collect()
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
        let tenant = tenant_of(&request);
        let revocation = revocation_of(self.auth.as_ref(), &request);
        let r = request.into_inner();
        check_call_id(&r.call_id).map_err(status)?;
        check_language(&r.language).map_err(status)?;
        // The same checks as a StreamCall channel, under OpenRtpLeg's own field names
        // (`payload_type`, not `config.channels[0].rtp_payload_type`).
        let spec = ChannelSpec::check(&proto::ChannelConfig {
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
        .map_err(|e| Status::invalid_argument(format!("{}: {e}", e.field().in_open_rtp_leg())))?;
        let allow_from = allow_from(&r.allow_from)?;
        let (channel_id, port) = self
            .legs
            .open_rtp_leg(
                tenant,
                allow_from,
                revocation,
                LegRequest {
                    call_id: r.call_id.clone(),
                    role: spec.role,
                    encoding: spec.encoding,
                    sample_rate_hz: spec.sample_rate_hz,
                    rtp: spec.rtp,
                    transport: Transport::RtpUdp,
                    options: r.options.unwrap_or_default(),
                    proved: true,
                },
            )
            .await
            .map_err(status)?;
        Ok(Response::new(proto::OpenRtpLegResponse {
            call_id: r.call_id,
            channel_id,
            port: port as u32,
            address: self.legs.config().rtp_host(),
        }))
    }

    async fn close_leg(
        &self,
        request: Request<proto::CloseLegRequest>,
    ) -> Result<Response<proto::CloseLegResponse>, Status> {
        let tenant = tenant_of(&request);
        let r = request.into_inner();
        check_call_id(&r.call_id).map_err(status)?;
        self.legs
            .close(tenant.as_ref(), &r.call_id, r.channel_id)
            .map_err(status)?;
        Ok(Response::new(proto::CloseLegResponse {}))
    }

    async fn watch_call(
        &self,
        request: Request<proto::WatchCallRequest>,
    ) -> Result<Response<Self::WatchCallStream>, Status> {
        let tenant = tenant_of(&request);
        let revocation = revocation_of(self.auth.as_ref(), &request);
        let r = request.into_inner();
        if r.call_id.is_empty() {
            return Err(status(ServerError::CallIdRequired));
        }
        check_call_id(&r.call_id).map_err(status)?;
        let call = self
            .legs
            .find(tenant.as_ref(), &r.call_id)
            .await
            .map_err(status)?;
        let watcher = self.legs.watcher();
        let events: EventStream = Box::pin(ReceiverStream::new(call.watch()).map(move |r| {
            let _counted = &watcher;
            r.map_err(status)
        }));
        Ok(Response::new(match revocation {
            Some(r) => revocable(events, r),
            None => events,
        }))
    }

    async fn stream_call(
        &self,
        request: Request<Streaming<proto::StreamCallRequest>>,
    ) -> Result<Response<Self::StreamCallStream>, Status> {
        let tenant = tenant_of(&request);
        let permit = self.legs.permit(tenant.as_ref()).map_err(status)?;
        // One watch for the input loop (the call aborted), one for the events (which go on
        // after the client's half-close).
        let mut revocation = revocation_of(self.auth.as_ref(), &request);
        let events_revocation = revocation_of(self.auth.as_ref(), &request);
        let metrics = self.analyzer.metrics.clone();
        let max_bytes = self.max_message_bytes;
        let refuse = |e: ServerError| {
            count_fault(&metrics, &e);
            status(e)
        };
        let mut inbound = request.into_inner();
        let first = match tokio::time::timeout(self.config_timeout, inbound.message()).await {
            Err(_) => {
                return Err(refuse(ServerError::ConfigTimeout {
                    secs: self.config_timeout.as_secs(),
                }))
            }
            Ok(Err(s)) => return Err(refuse(stream_fault(s, max_bytes))),
            Ok(Ok(None)) => return Err(status(ServerError::NoConfig)),
            Ok(Ok(Some(m))) => m,
        };
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
        let opts = self.options(cfg.options.as_ref(), AsrBackpressure::Drop, tenant.as_ref());
        let call_id = call_id_or_new(&cfg.call_id).map_err(status)?;
        let (handle, events) = self
            .analyzer
            .start_call(call_id.clone(), &specs, opts)
            .map_err(status)?;
        let idle = self.idle_timeout;
        let mut drain = self.legs.drain_signal();
        let mut pace = LivePace::new(&specs, self.max_ahead, metrics.clone());
        // How each channel's RTP is read, for the audio an `RtpPacket` carries.
        let rtp: Vec<(u32, RtpSettings)> = specs.iter().map(|s| (s.id, s.rtp)).collect();
        let (broken_tx, broken_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            // Once RTP flows, the jitter buffers are told the time every
            // TICK, so held packets play out while no message comes.
            let mut ticks: Option<tokio::time::Interval> = None;
            let mut last_message = tokio::time::Instant::now();
            // The client's stream broke or broke a limit: the call ends with this error
            // at once, without a summary.
            let broken = |e: ServerError| {
                count_fault(&metrics, &e);
                let _ = broken_tx.send(status(e));
                handle.abort();
            };
            loop {
                let next = tokio::select! {
                    m = inbound.message() => m,
                    // The service drains: the call ends here, as at a half-close, and
                    // finishes with its summary.
                    _ = drained(&mut drain) => return,
                    // The token that opened the stream was revoked: the call ends at
                    // once, without a summary.
                    _ = revoked(&mut revocation) => {
                        tracing::info!(call = %call_id, "token revoked: call aborted");
                        return broken(ServerError::Revoked);
                    }
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
                let input = match next {
                    Ok(Some(m)) => match m.request {
                        Some(stream_call_request::Request::Audio(a)) => {
                            let wait = match pace.admit(a.channel_id, a.data.len()) {
                                Ok(wait) => wait,
                                Err(e) => return broken(e),
                            };
                            // Ahead of the wall clock: the stream is not read (HTTP/2 flow
                            // control holds the client) until the clock catches up.
                            if !hold(wait, &mut drain).await {
                                return;
                            }
                            Input::Audio {
                                channel_id: a.channel_id,
                                data: a.data,
                            }
                        }
                        Some(stream_call_request::Request::Config(_)) => {
                            Input::Fail(CallError::ConfigTwice)
                        }
                        Some(stream_call_request::Request::Rtp(r)) => {
                            ticks.get_or_insert_with(|| {
                                let mut i = tokio::time::interval(TICK);
                                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                                i
                            });
                            // Paced by the audio it carries, as an AudioChunk (an RTP
                            // packet's length is bounded by the message limit alone).
                            let audio = rtp
                                .iter()
                                .find(|(id, _)| *id == r.channel_id)
                                .map_or(0, |(_, s)| s.audio_bytes(&r.packet));
                            if !hold(pace.admit_packet(r.channel_id, audio), &mut drain).await {
                                return;
                            }
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
                        return broken(stream_fault(e, max_bytes));
                    }
                };
                last_message = tokio::time::Instant::now();
                let fail = matches!(input, Input::Fail(_));
                if handle.input.send(input).await.is_err() || fail {
                    return;
                }
            }
        });
        let events = into_stream_or_broken(events, permit, broken_rx);
        // After the client's half-close the loop above has returned; the events (the
        // summary among them) must still stop at a revocation.
        Ok(Response::new(match events_revocation {
            Some(r) => revocable(events, r),
            None => events,
        }))
    }

    async fn analyze_recording(
        &self,
        request: Request<proto::AnalyzeRecordingRequest>,
    ) -> Result<Response<Self::AnalyzeRecordingStream>, Status> {
        // Taken by `SizedRpcs` before the body was read; held until the events end and
        // the audio is fed, so that no more recordings than the cap are in memory.
        let slot = request.extensions().get::<RecordingSlot>().cloned();
        let tenant = tenant_of(&request);
        let permit = self.legs.permit(tenant.as_ref()).map_err(status)?;
        let req = request.into_inner();
        let call_id = call_id_or_new(&req.call_id).map_err(status)?;
        check_language(&req.language).map_err(status)?;
        let left = proto::Role::try_from(req.left_role)
            .map_err(|_| status(ServerError::UnknownLeftRole(req.left_role)))?;
        let (rate, channels) = match req.audio {
            Some(proto::analyze_recording_request::Audio::Wav(bytes)) => {
                let wav = codec::wav::parse_wav(&bytes).map_err(status)?;
                check_recording_channels("wav", wav.samples.len())?;
                (wav.sample_rate, wav.samples)
            }
            Some(proto::analyze_recording_request::Audio::File(bytes)) => {
                // Decoding an hour of MP3 takes seconds of CPU: off the reactor.
                let audio = tokio::task::spawn_blocking(move || codec::decode_audio_file(&bytes))
                    .await
                    .map_err(|e| status(ServerError::DecoderFailed(e.to_string())))?
                    .map_err(status)?;
                (audio.sample_rate, audio.samples)
            }
            Some(proto::analyze_recording_request::Audio::Raw(raw)) => {
                check_recording_channels("raw.channels", raw.channels.max(1) as usize)?;
                decode_raw(&raw).map_err(status)?
            }
            None => return Err(status(ServerError::NoRecording)),
        };
        let specs = crate::call::recording_channels(channels.len(), rate, left);
        let opts = self.options(req.options.as_ref(), AsrBackpressure::Wait, tenant.as_ref());
        let (handle, events) = self
            .analyzer
            .start_call(call_id, &specs, opts)
            .map_err(status)?;
        let fed = slot.clone();
        tokio::spawn(async move {
            session::feed_recording(handle, channels, rate).await;
            drop(fed);
        });
        let events = into_stream(events, permit);
        Ok(Response::new(Box::pin(events.map(move |e| {
            let _held = &slot;
            e
        }))))
    }
}

/// Refuses a recording of more channels than a call has, naming the request's field
/// (not `config.channels`, which `AnalyzeRecording` has none of).
fn check_recording_channels(field: &'static str, got: usize) -> Result<(), Status> {
    if got > crate::call::MAX_CHANNELS {
        return Err(status(ServerError::RecordingChannels {
            field,
            got,
            max: crate::call::MAX_CHANNELS,
        }));
    }
    Ok(())
}

/// Decodes a raw recording (of at most `MAX_CHANNELS` channels) into per-channel samples.
fn decode_raw(raw: &proto::RawAudio) -> Result<(u32, Vec<Vec<f32>>), CallError> {
    let spec = ChannelSpec::from_proto(&proto::ChannelConfig {
        channel_id: 0,
        role: 0,
        encoding: raw.encoding,
        sample_rate_hz: raw.sample_rate_hz,
        ..Default::default()
    })?;
    let n = raw.channels.max(1) as usize;
    let mut interleaved = Vec::new();
    codec::Decoder::new(spec.encoding).decode_into(&raw.data, &mut interleaved);
    let mut channels = vec![Vec::with_capacity(interleaved.len() / n); n];
    for (i, s) in interleaved.into_iter().enumerate() {
        channels[i % n].push(s);
    }
    Ok((spec.sample_rate_hz, channels))
}
