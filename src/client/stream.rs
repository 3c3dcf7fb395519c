//! A `StreamCall` client: the pieces `callmood stream`, `loadtest` and `listen` share to
//! put a call on the wire and read its events back.
//!
//! - [`WireChannels::of`] turns a recording into its channels' bytes in their own wire
//!   encoding (`LINEAR16`, `MULAW` or `ALAW`) with the `ChannelConfig`s that declare them;
//!   [`call_audio`] cuts them into the chunks sent at each tick; [`config_request`] and
//!   [`audio_request`] build the call's messages.
//! - [`connect`], [`send_paced`] and [`run_call`] are the I/O: a connection, audio sent at
//!   the pace it would be spoken, and the events handed to the caller as they arrive;
//!   [`run_recording`] does the same for a whole recording in one `AnalyzeRecording`
//!   (`callmood analyze --server`).
//!
//! Every request about one call carries its id in the [`CALL_ID_HEADER`] metadata too
//! ([`call_request`]), so that a load balancer in front of several replicas can send all
//! of a call's requests to the one that holds it.
//!
//! Errors are [`StreamError`]; what to do with each event (print it, time it) is the
//! caller's business.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::core::codec::{self, wav::WavAudio};
use crate::proto::{
    self, call_analyzer_client::CallAnalyzerClient, stream_call_request, CallEvent,
    StreamCallRequest,
};

/// The server the clients talk to unless told otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";
/// Audio sent per `AudioChunk` unless told otherwise, ms.
pub const DEFAULT_CHUNK_MS: u32 = 20;

/// The gRPC metadata key that carries the call id of `OpenRtpLeg`, `WatchCall`,
/// `CloseLeg`, `StreamCall` and `AnalyzeRecording`: a balancer hashes on it
/// (deploy/haproxy.cfg hashes it) so that every request of
/// one call reaches the replica that holds the call, without reading the messages.
pub const CALL_ID_HEADER: &str = "x-call-id";

/// `message` as a request about call `call_id`, with the id in [`CALL_ID_HEADER`].
/// An id a header cannot carry (not visible ASCII) goes without the header: the server
/// refuses such an id anyway, and says why.
pub fn call_request<T>(call_id: &str, message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    let visible = !call_id.is_empty() && call_id.bytes().all(|b| b.is_ascii_graphic());
    if let (true, Ok(v)) = (
        visible,
        tonic::metadata::AsciiMetadataValue::try_from(call_id),
    ) {
        req.metadata_mut().insert(CALL_ID_HEADER, v);
    }
    req
}

/// A `CallAnalyzer` client over one connection, sending its token (if any) with each call.
pub type Client = CallAnalyzerClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// How to reach a secured server: the CA that signed its TLS certificate, and a token.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// PEM file of the CA (or the self-signed certificate) to trust; with it the URL
    /// should be `https://`.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Sent as `authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// PEM files of a client certificate and its key (mutual TLS); needs `tls_ca`.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Adds `authorization: Bearer TOKEN` to every request (nothing without a token).
#[derive(Clone, Debug)]
pub struct Bearer(Option<tonic::metadata::AsciiMetadataValue>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// Why a call could not be made or did not finish. All of them end that call only.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// No connection to the server.
    #[error("cannot connect to {server}")]
    Connect {
        /// The server's URL as given.
        server: String,
        /// What the transport said.
        #[source]
        source: tonic::transport::Error,
    },
    /// `--tls-ca` or `--token` cannot be used (the token itself is never shown).
    #[error("{0}")]
    Access(String),
    /// The server answered the call with an error status before any event.
    #[error("server refused the call: {}: {}", .0.code(), .0.message())]
    Refused(tonic::Status),
    /// The event stream ended with an error status.
    #[error("call failed: {}: {}", .0.code(), .0.message())]
    Failed(tonic::Status),
    /// The caller's event handler failed (e.g. stdout closed); the I/O error is the
    /// source, so a closed pipe can be told apart.
    #[error("cannot write an event")]
    Output(#[source] std::io::Error),
}

/// A `StreamCall` client of `server` (a URL such as [`DEFAULT_SERVER`]), over TLS and
/// with a token as `access` says.
pub async fn connect(server: &str, access: &Access) -> Result<Client, StreamError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let connect_error = |source| StreamError::Connect {
        server: server.to_string(),
        source,
    };
    let bearer = match &access.token {
        Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
            StreamError::Access("the token holds characters a header cannot carry".into())
        })?),
        None => None,
    };
    let read = |flag: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| StreamError::Access(format!("cannot read {flag} {}: {e}", path.display())))
    };
    let mut endpoint = Endpoint::from_shared(server.to_string()).map_err(connect_error)?;
    match (&access.tls_ca, &access.client_cert) {
        (Some(ca), client) => {
            let mut tls =
                ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("--tls-ca", ca)?));
            if let Some((cert, key)) = client {
                tls = tls.identity(Identity::from_pem(
                    read("--tls-client-cert", cert)?,
                    read("--tls-client-key", key)?,
                ));
            }
            endpoint = endpoint.tls_config(tls).map_err(connect_error)?;
        }
        (None, Some(_)) => {
            return Err(StreamError::Access(
                "--tls-client-cert needs --tls-ca and an https:// server URL".into(),
            ))
        }
        (None, None) => {}
    }
    let channel = endpoint.connect().await.map_err(connect_error)?;
    Ok(CallAnalyzerClient::with_interceptor(
        channel,
        Bearer(bearer),
    ))
}

/// The first message of a call: its id, channels and options, in English.
pub fn config_request(
    call_id: String,
    channels: Vec<proto::ChannelConfig>,
    options: Option<proto::CallOptions>,
) -> StreamCallRequest {
    StreamCallRequest {
        request: Some(stream_call_request::Request::Config(proto::CallConfig {
            call_id,
            channels,
            language: "en".into(),
            options,
        })),
    }
}

/// One chunk of audio of channel `channel_id`, already in the channel's wire encoding.
pub fn audio_request(channel_id: u32, data: Vec<u8>) -> StreamCallRequest {
    StreamCallRequest {
        request: Some(stream_call_request::Request::Audio(proto::AudioChunk {
            channel_id,
            data,
        })),
    }
}

/// Appends `samples` (in -1..1) to `out` in `encoding`: one byte a sample for μ-law and
/// A-law, two (little-endian) for anything else, which is sent as `LINEAR16`.
pub fn encode(samples: &[f32], encoding: proto::Encoding, out: &mut Vec<u8>) {
    for s in samples {
        let v = codec::sample_to_i16(*s);
        match encoding {
            proto::Encoding::Mulaw => out.push(codec::g711::ulaw_encode(v)),
            proto::Encoding::Alaw => out.push(codec::g711::alaw_encode(v)),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

/// A recording's channels as they go on the wire.
#[derive(Clone, Debug)]
pub struct WireChannels {
    /// The channel configs that declare them, in channel order.
    pub configs: Vec<proto::ChannelConfig>,
    /// Each channel's bytes, in its wire encoding.
    pub bytes: Vec<Vec<u8>>,
    /// Bytes a frame (one sample) takes in each channel: 2 for `LINEAR16`, 1 for G.711.
    pub bytes_per_frame: usize,
}

impl WireChannels {
    /// `wav`'s channels in its own encoding (μ-law and A-law files stay G.711, anything
    /// else becomes `LINEAR16`), the left (or only) channel with `left_role` and a second
    /// one with the other role, as `analyze` reads recordings.
    pub fn of(wav: &WavAudio, left_role: proto::Role) -> Self {
        let encoding = match wav.encoding {
            codec::wav::WavEncoding::Mulaw => proto::Encoding::Mulaw,
            codec::wav::WavEncoding::Alaw => proto::Encoding::Alaw,
            _ => proto::Encoding::Linear16,
        };
        let configs =
            crate::call::recording_channels(wav.samples.len(), wav.sample_rate, left_role)
                .iter()
                .map(|s| proto::ChannelConfig {
                    channel_id: s.id,
                    role: s.role as i32,
                    encoding: encoding as i32,
                    sample_rate_hz: wav.sample_rate,
                    ..Default::default()
                })
                .collect();
        let bytes = wav
            .samples
            .iter()
            .map(|ch| {
                let mut out = Vec::new();
                encode(ch, encoding, &mut out);
                out
            })
            .collect();
        let bytes_per_frame = if encoding == proto::Encoding::Linear16 {
            2
        } else {
            1
        };
        WireChannels {
            configs,
            bytes,
            bytes_per_frame,
        }
    }
}

/// One call's audio as it goes on the wire: per tick (one chunk of `chunk_ms`), the bytes of
/// each channel in its own encoding.
#[derive(Clone, Debug)]
pub struct CallAudio {
    /// `ticks[k][channel]`: the bytes sent at tick `k + 1`, covering audio
    /// `k * chunk_ms .. (k + 1) * chunk_ms`.
    pub ticks: Vec<Vec<Vec<u8>>>,
    /// Length of the audio, ms.
    pub duration_ms: u64,
}

/// Splits a recording's channels (already in their wire encoding, `bytes_per_frame` bytes a
/// frame at `rate_hz`) into chunks of `chunk_ms`, starting `start_frame` frames in and
/// wrapping around to the beginning, so that calls started together are at different
/// places of the recording.
pub fn call_audio(
    channels: &[Vec<u8>],
    bytes_per_frame: usize,
    rate_hz: u32,
    chunk_ms: u32,
    start_frame: usize,
) -> CallAudio {
    let frames = channels
        .iter()
        .map(|c| c.len() / bytes_per_frame)
        .max()
        .unwrap_or(0);
    let chunk = (rate_hz as usize * chunk_ms as usize / 1000).max(1);
    let start = if frames == 0 { 0 } else { start_frame % frames };
    let mut ticks = Vec::with_capacity(frames.div_ceil(chunk));
    let mut pos = 0;
    while pos < frames {
        let n = chunk.min(frames - pos);
        let tick = channels
            .iter()
            .map(|c| {
                let mut out = Vec::with_capacity(n * bytes_per_frame);
                for f in pos..pos + n {
                    let at = ((start + f) % frames) * bytes_per_frame;
                    // A channel shorter than the longest is padded with silence-sized zeros
                    // (never read past its end).
                    match c.get(at..at + bytes_per_frame) {
                        Some(b) => out.extend_from_slice(b),
                        None => out.extend(std::iter::repeat_n(0, bytes_per_frame)),
                    }
                }
                out
            })
            .collect();
        ticks.push(tick);
        pos += n;
    }
    CallAudio {
        ticks,
        duration_ms: frames as u64 * 1000 / rate_hz.max(1) as u64,
    }
}

/// Sends `audio`'s chunks at `period` apart, tick k (k ≥ 1) at `t0` + k × `period`: each
/// chunk once its audio would have been spoken. Stops when the call's request stream is
/// gone; returns (dropping `tx`, which half-closes the call) after the last chunk.
pub async fn send_paced(
    tx: mpsc::Sender<StreamCallRequest>,
    audio: CallAudio,
    t0: tokio::time::Instant,
    period: Duration,
) {
    let mut tick = tokio::time::interval_at(t0 + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for chunks in audio.ticks {
        tick.tick().await;
        for (i, data) in chunks.into_iter().enumerate() {
            if tx.send(audio_request(i as u32, data)).await.is_err() {
                return;
            }
        }
    }
}

/// Runs `StreamCall` `call_id` whose requests (the config, then audio) come from
/// `requests`, handing each event to `on_event` as it arrives. Returns after the
/// server's last event (the summary, once every sender of `requests` is gone), or at
/// the first error of the call or of `on_event`.
pub async fn run_call(
    client: &mut Client,
    call_id: &str,
    requests: mpsc::Receiver<StreamCallRequest>,
    on_event: impl FnMut(CallEvent) -> std::io::Result<()>,
) -> Result<(), StreamError> {
    let requests = tokio_stream::wrappers::ReceiverStream::new(requests);
    let events = client
        .stream_call(call_request(call_id, requests))
        .await
        .map_err(StreamError::Refused)?
        .into_inner();
    read_events(events, on_event).await
}

/// Runs an `AnalyzeRecording` (a whole recording in one request, e.g. a file's bytes in
/// `audio.file`), handing each event to `on_event` as it arrives; returns after the
/// server's last event, or at the first error of the call or of `on_event`.
pub async fn run_recording(
    client: &mut Client,
    request: proto::AnalyzeRecordingRequest,
    on_event: impl FnMut(CallEvent) -> std::io::Result<()>,
) -> Result<(), StreamError> {
    let call_id = request.call_id.clone();
    let events = client
        .analyze_recording(call_request(&call_id, request))
        .await
        .map_err(StreamError::Refused)?
        .into_inner();
    read_events(events, on_event).await
}

/// A call's events, each to `on_event`, until the server ends the stream.
async fn read_events(
    mut events: tonic::Streaming<CallEvent>,
    mut on_event: impl FnMut(CallEvent) -> std::io::Result<()>,
) -> Result<(), StreamError> {
    while let Some(ev) = events.message().await.map_err(StreamError::Failed)? {
        on_event(ev).map_err(StreamError::Output)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(encoding: codec::wav::WavEncoding, channels: usize) -> WavAudio {
        WavAudio {
            sample_rate: 8000,
            channels: channels as u16,
            encoding,
            samples: vec![vec![0.0, 0.5, -0.5]; channels],
        }
    }

    #[test]
    fn recordings_keep_their_encoding_on_the_wire() {
        let w = WireChannels::of(&wav(codec::wav::WavEncoding::Mulaw, 1), proto::Role::Agent);
        assert_eq!(w.bytes_per_frame, 1);
        let ulaw = |v: i16| codec::g711::ulaw_encode(v);
        assert_eq!(w.bytes, vec![vec![ulaw(0), ulaw(16384), ulaw(-16384)]]);
        assert_eq!(w.configs.len(), 1);
        assert_eq!(w.configs[0].encoding, proto::Encoding::Mulaw as i32);
        assert_eq!(w.configs[0].role, proto::Role::Agent as i32);
        assert_eq!(w.configs[0].sample_rate_hz, 8000);

        let w = WireChannels::of(
            &wav(codec::wav::WavEncoding::PcmI16, 2),
            proto::Role::Caller,
        );
        assert_eq!(w.bytes_per_frame, 2);
        assert_eq!(w.bytes[0].len(), 6);
        assert_eq!(&w.bytes[0][2..4], &16384i16.to_le_bytes());
        let roles: Vec<i32> = w.configs.iter().map(|c| c.role).collect();
        assert_eq!(
            roles,
            [proto::Role::Caller as i32, proto::Role::Agent as i32]
        );
        let ids: Vec<u32> = w.configs.iter().map(|c| c.channel_id).collect();
        assert_eq!(ids, [0, 1]);
    }

    /// Chunks cover the audio once, in order from the start frame, wrapping around; a short
    /// channel is padded.
    #[test]
    fn call_audio_wraps_from_the_start_frame() {
        let left: Vec<u8> = (0..10).collect();
        let right: Vec<u8> = (100..106).collect();
        // 1000 Hz, 1 byte a frame, 4 ms chunks: 4 frames a chunk.
        let a = call_audio(&[left.clone(), right], 1, 1000, 4, 3);
        assert_eq!(a.duration_ms, 10);
        assert_eq!(a.ticks.len(), 3);
        let l: Vec<u8> = a.ticks.iter().flat_map(|t| t[0].clone()).collect();
        assert_eq!(l, [3, 4, 5, 6, 7, 8, 9, 0, 1, 2]);
        let r: Vec<u8> = a.ticks.iter().flat_map(|t| t[1].clone()).collect();
        assert_eq!(r, [103, 104, 105, 0, 0, 0, 0, 100, 101, 102]);
        // Two bytes a frame (LINEAR16): frames never split.
        let pcm: Vec<u8> = (0..12).collect();
        let b = call_audio(&[pcm], 2, 1000, 4, 5);
        let flat: Vec<u8> = b.ticks.iter().flat_map(|t| t[0].clone()).collect();
        assert_eq!(flat, [10, 11, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(call_audio(&[vec![]], 1, 8000, 20, 7).ticks.len(), 0);
    }

    #[test]
    fn requests_about_a_call_carry_its_id() {
        let r = call_request("a84b4c76e66710@pc33.example.com", ());
        assert_eq!(
            r.metadata().get(CALL_ID_HEADER).map(|v| v.to_str().ok()),
            Some(Some("a84b4c76e66710@pc33.example.com"))
        );
        // Ids a header cannot carry, and no id, go without the header.
        for id in ["", "caf\u{e9}", "a\nb", "a b"] {
            assert!(call_request(id, ())
                .metadata()
                .get(CALL_ID_HEADER)
                .is_none());
        }
    }

    #[test]
    fn config_then_audio_messages() {
        let c = config_request("c1".into(), Vec::new(), None);
        let Some(stream_call_request::Request::Config(cfg)) = c.request else {
            panic!("not a config");
        };
        assert_eq!((cfg.call_id.as_str(), cfg.language.as_str()), ("c1", "en"));
        let a = audio_request(1, vec![7]);
        let Some(stream_call_request::Request::Audio(chunk)) = a.request else {
            panic!("not audio");
        };
        assert_eq!((chunk.channel_id, chunk.data), (1, vec![7]));
    }
}
