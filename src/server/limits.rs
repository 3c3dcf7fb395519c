//! Limits on what one client may send, so that a broken or hostile client costs the
//! service no more than a live call does:
//!
//! - [`SizedRpcs`]: the largest request message per RPC. `AnalyzeRecording` carries a
//!   whole recording in one message; every other request is a config, an id or one
//!   chunk of live audio, and gets the small limit. tonic checks a message's length
//!   prefix before it buffers the message, so a message over the limit costs nothing.
//! - [`SizedRpcs`] also caps the `AnalyzeRecording` calls in flight
//!   (`server.max_recordings`, and with tokens `security.tenant_max_recordings` per
//!   tenant): a slot is taken before tonic reads the request body, and
//!   a call over the cap is refused `RESOURCE_EXHAUSTED` with its body unread, so no
//!   recording waits in memory for a slot. The slot ([`RecordingSlot`]) is held until the
//!   call's events end and its audio has been fed, so the recordings' bytes and samples in
//!   memory are at most `max_recordings` recordings' worth.
//! - [`Pace`]: one `AudioChunk` holds at most [`MAX_CHUNK_MS`] of audio, and a live call's
//!   audio runs at most `max_ahead` ahead of the wall clock (counted from its first
//!   chunk); beyond that its stream is not read until the clock catches up, so one
//!   client streaming far faster than real time cannot take the recogniser from the
//!   other calls. Together with the bounded input queue ([`super::session::INPUT_QUEUE`])
//!   they bound the audio one call holds. [`LivePace`] runs it on the clock for every live
//!   transport (an RTP packet counts the audio of its payload):
//!   `StreamCall`, AudioSocket and the WebSocket connectors wait (their stream
//!   is not read meanwhile: TCP and HTTP/2 flow control hold the sender back), and RTP
//!   over UDP, which cannot be held back, drops the datagrams beyond the allowance
//!   (`LegStats.packets_ahead_dropped`). Each counts `too_fast` once.
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{ready, Either, Ready};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::codegen::http;
use tonic::server::NamedService;

use super::metrics::Metrics;
use super::security::{Caller, Tenant, TenantCounts, TenantSlot};
use super::status::{status, ServerError};
use crate::call::ChannelSpec;

/// Longest audio one `AudioChunk` may carry, ms (clients send 20-100 ms; 10 s leaves
/// room for a catch-up after a network stall).
pub const MAX_CHUNK_MS: u64 = 10_000;

/// The path of the one RPC whose request carries a whole recording.
const RECORDING_PATH: &str = "/callmood.v1.CallAnalyzer/AnalyzeRecording";

/// One gRPC service as two instances with different message limits: `large` answers
/// `AnalyzeRecording`, `small` every other RPC. `AnalyzeRecording` needs one of the
/// `recordings` slots, taken before its body is read.
#[derive(Clone)]
pub struct SizedRpcs<S> {
    /// Every RPC but `AnalyzeRecording`.
    pub small: S,
    /// `AnalyzeRecording`.
    pub large: S,
    /// Slots of `AnalyzeRecording` calls in flight.
    pub recordings: RecordingSlots,
}

/// The caps on `AnalyzeRecording` calls in flight: `server.max_recordings` in all and,
/// with tokens, `security.tenant_max_recordings` per tenant.
#[derive(Clone)]
pub struct RecordingSlots {
    slots: Arc<Semaphore>,
    max: usize,
    tenants: TenantCounts,
    tenant_max: Option<usize>,
    metrics: Arc<Metrics>,
}

impl RecordingSlots {
    /// `max` slots in all, `tenant_max` per tenant; refusals are counted in `metrics`.
    pub fn new(max: usize, tenant_max: Option<usize>, metrics: Arc<Metrics>) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            tenants: TenantCounts::default(),
            tenant_max,
            metrics,
        }
    }

    /// A free slot for `tenant`'s recording, or the refusal (counted as
    /// `tenant_recordings_in_flight` or `recordings_in_flight`).
    pub fn try_take(&self, tenant: Option<&Tenant>) -> Result<RecordingSlot, ServerError> {
        let slot = match (tenant, self.tenant_max) {
            (Some(tenant), Some(max)) => match self.tenants.take(tenant, max) {
                Some(slot) => Some(slot),
                None => {
                    self.metrics.call_refused("tenant_recordings_in_flight");
                    return Err(ServerError::TenantRecordingsInFlight { max });
                }
            },
            _ => None,
        };
        // A refusal here drops the tenant's slot again.
        match self.slots.clone().try_acquire_owned() {
            Ok(p) => Ok(RecordingSlot(Arc::new((p, slot)))),
            Err(_) => {
                self.metrics.call_refused("recordings_in_flight");
                Err(ServerError::RecordingsInFlight { max: self.max })
            }
        }
    }
}

/// One `AnalyzeRecording` call's slot (in all, and its tenant's), put in its request's
/// extensions; free again once every clone is dropped (the call's event stream and its
/// feeder each hold one).
#[derive(Clone)]
pub struct RecordingSlot(#[allow(dead_code)] Arc<(OwnedSemaphorePermit, Option<TenantSlot>)>);

impl<S: NamedService> NamedService for SizedRpcs<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> tonic::codegen::Service<http::Request<B>> for SizedRpcs<S>
where
    S: tonic::codegen::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.small.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.large.poll_ready(cx),
            other => other,
        }
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        if req.uri().path() != RECORDING_PATH {
            return Either::Left(self.small.call(req));
        }
        // Set by the `Authenticate` interceptor, which runs first.
        let tenant = req.extensions().get::<Caller>().map(|c| c.tenant.clone());
        match self.recordings.try_take(tenant.as_ref()) {
            Ok(slot) => {
                req.extensions_mut().insert(slot);
                Either::Left(self.large.call(req))
            }
            // Answered at once: the body (the recording) is never read.
            Err(e) => Either::Right(ready(Ok(status(e).into_http()))),
        }
    }
}

/// The client's stream failed: a message over `max_bytes` (tonic's `OUT_OF_RANGE`,
/// refused before it is buffered) becomes [`ServerError::MessageTooLarge`], bytes that
/// are no protobuf message (tonic's `INTERNAL`, though the fault is the client's)
/// [`ServerError::BadMessage`]; anything else (a transport error, a cancel) is passed on.
pub fn stream_fault(s: tonic::Status, max_bytes: usize) -> ServerError {
    let detail = s.message().to_string();
    match s.code() {
        tonic::Code::OutOfRange if detail.contains("too large") => ServerError::MessageTooLarge {
            detail,
            max: max_bytes,
        },
        tonic::Code::Internal if detail.contains("failed to decode") => {
            ServerError::BadMessage(detail)
        }
        _ => ServerError::Stream(s),
    }
}

/// How a live call's `AudioChunk`s are paced: each chunk's length is checked, and the
/// audio of every channel is kept within `max_ahead` of the wall clock.
#[derive(Debug)]
pub struct Pace {
    /// Per channel: its id, bytes per second, bytes received.
    channels: Vec<(u32, u64, u64)>,
    max_ahead_ms: u64,
    held: bool,
}

/// What [`Pace::admit`] says of a chunk.
#[derive(Debug, PartialEq, Eq)]
pub struct Admit {
    /// How long to wait before passing the chunk on (and reading on).
    pub wait: Duration,
    /// This is the call's first wait (count the call once).
    pub first_hold: bool,
}

impl Pace {
    /// Pacing for a call of these channels.
    pub fn new(channels: &[ChannelSpec], max_ahead: Duration) -> Self {
        Self {
            channels: channels
                .iter()
                .map(|c| {
                    let per_s = c.sample_rate_hz as u64 * c.encoding.bytes_per_sample() as u64;
                    (c.id, per_s.max(1), 0)
                })
                .collect(),
            max_ahead_ms: max_ahead.as_millis() as u64,
            held: false,
        }
    }

    /// Admits a chunk of `bytes` for `channel_id` that arrived `elapsed_ms` after the
    /// call's first chunk, or refuses it if it alone is longer than [`MAX_CHUNK_MS`]. A
    /// channel the call does not have is left to the call to refuse.
    pub fn admit(
        &mut self,
        channel_id: u32,
        bytes: usize,
        elapsed_ms: u64,
    ) -> Result<Admit, ServerError> {
        if let Some(ch) = self.channels.iter().find(|c| c.0 == channel_id) {
            let chunk_ms = bytes as u64 * 1000 / ch.1;
            if chunk_ms > MAX_CHUNK_MS {
                return Err(ServerError::ChunkTooLong {
                    channel_id,
                    ms: chunk_ms,
                    max_ms: MAX_CHUNK_MS,
                });
            }
        }
        Ok(self.admit_packet(channel_id, bytes, elapsed_ms))
    }

    /// As [`Pace::admit`] for a packet of a transport that bounds its own length (an RTP
    /// packet, an AudioSocket or WebSocket message): no length check.
    pub fn admit_packet(&mut self, channel_id: u32, bytes: usize, elapsed_ms: u64) -> Admit {
        let Some(ch) = self.channels.iter_mut().find(|c| c.0 == channel_id) else {
            return self.hold(0);
        };
        ch.2 += bytes as u64;
        let audio_ms = ch.2 * 1000 / ch.1;
        let wait_ms = audio_ms.saturating_sub(elapsed_ms + self.max_ahead_ms);
        self.hold(wait_ms)
    }

    /// As [`Pace::admit`] for a datagram, which cannot wait: it is taken (and its audio
    /// counted) only if the channel's audio then stays within `max_ahead` of
    /// `elapsed_ms`; else `wait` says how far beyond it would be, and the caller drops
    /// it. No length limit: a datagram is at most 64 KiB.
    pub fn admit_datagram(&mut self, channel_id: u32, bytes: usize, elapsed_ms: u64) -> Admit {
        let Some(ch) = self.channels.iter_mut().find(|c| c.0 == channel_id) else {
            return self.hold(0);
        };
        let audio_ms = (ch.2 + bytes as u64) * 1000 / ch.1;
        let wait_ms = audio_ms.saturating_sub(elapsed_ms + self.max_ahead_ms);
        if wait_ms == 0 {
            ch.2 += bytes as u64;
        }
        self.hold(wait_ms)
    }

    fn hold(&mut self, wait_ms: u64) -> Admit {
        let first_hold = wait_ms > 0 && !self.held;
        self.held |= wait_ms > 0;
        Admit {
            wait: Duration::from_millis(wait_ms),
            first_hold,
        }
    }
}

/// A [`Pace`] on the wall clock, which starts at the first audio admitted; the first
/// hold of each counts `too_fast` in the metrics.
pub struct LivePace {
    pace: Pace,
    first_audio: Option<tokio::time::Instant>,
    metrics: Arc<Metrics>,
}

impl LivePace {
    /// Pacing for the audio of these channels (a call's, or one connection's legs).
    pub fn new(channels: &[ChannelSpec], max_ahead: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            pace: Pace::new(channels, max_ahead),
            first_audio: None,
            metrics,
        }
    }

    /// Ms since the first audio (which is now, if this is it).
    fn elapsed_ms(&mut self) -> u64 {
        let t0 = *self
            .first_audio
            .get_or_insert_with(tokio::time::Instant::now);
        t0.elapsed().as_millis() as u64
    }

    fn count(&self, a: &Admit) {
        if a.first_hold {
            self.metrics.client_fault("too_fast");
        }
    }

    /// `bytes` of `channel_id` arrived now: how long to wait (not reading on) before
    /// passing them on; an error for a chunk over [`MAX_CHUNK_MS`].
    pub fn admit(&mut self, channel_id: u32, bytes: usize) -> Result<Duration, ServerError> {
        let elapsed = self.elapsed_ms();
        let a = self.pace.admit(channel_id, bytes, elapsed)?;
        self.count(&a);
        Ok(a.wait)
    }

    /// As [`LivePace::admit`] for a packet of a transport that bounds its own length
    /// ([`Pace::admit_packet`]).
    pub fn admit_packet(&mut self, channel_id: u32, bytes: usize) -> Duration {
        let elapsed = self.elapsed_ms();
        let a = self.pace.admit_packet(channel_id, bytes, elapsed);
        self.count(&a);
        a.wait
    }

    /// A datagram of `bytes` of audio for `channel_id` arrived now: whether to take it
    /// (false: it is too far ahead; drop it).
    pub fn admit_datagram(&mut self, channel_id: u32, bytes: usize) -> bool {
        let elapsed = self.elapsed_ms();
        let a = self.pace.admit_datagram(channel_id, bytes, elapsed);
        self.count(&a);
        a.wait.is_zero()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto;

    fn mulaw_8k(id: u32) -> ChannelSpec {
        ChannelSpec::from_proto(&proto::ChannelConfig {
            channel_id: id,
            encoding: proto::Encoding::Mulaw as i32,
            sample_rate_hz: 8000,
            ..Default::default()
        })
        .expect("a valid channel")
    }

    #[test]
    fn chunks_over_ten_seconds_are_refused() {
        let mut p = Pace::new(&[mulaw_8k(0)], Duration::from_secs(3600));
        assert!(p.admit(0, 80_000, 0).is_ok());
        let e = p.admit(0, 80_008, 0).unwrap_err();
        assert!(e.to_string().contains("at most 10000 ms"), "{e}");
        // Unknown channels are the call's to refuse.
        assert!(p.admit(7, 10_000_000, 0).is_ok());
        // A packet of a transport that bounds its own length is not checked.
        assert_eq!(p.admit_packet(0, 80_008, 0).wait, Duration::ZERO);
    }

    #[test]
    fn audio_ahead_of_the_clock_waits() {
        let mut p = Pace::new(&[mulaw_8k(0), mulaw_8k(1)], Duration::from_secs(2));
        // 1 s of audio at once, twice: within 2 s ahead.
        for _ in 0..2 {
            assert_eq!(p.admit(0, 8000, 0).unwrap().wait, Duration::ZERO);
        }
        // A third second at 0 ms is 1 s too far ahead; the first hold is flagged once.
        let a = p.admit(0, 8000, 0).unwrap();
        assert_eq!((a.wait, a.first_hold), (Duration::from_secs(1), true));
        let a = p.admit(0, 8000, 500).unwrap();
        assert_eq!((a.wait, a.first_hold), (Duration::from_millis(1500), false));
        // The other channel has its own count; real time never waits.
        assert_eq!(p.admit(1, 8000, 1000).unwrap().wait, Duration::ZERO);
        assert_eq!(p.admit(0, 160, 4020).unwrap().wait, Duration::ZERO);
    }

    #[test]
    fn datagrams_ahead_of_the_clock_are_refused_and_not_counted() {
        let mut p = Pace::new(&[mulaw_8k(0)], Duration::from_secs(2));
        // 2 s of 20 ms packets at once: taken.
        for _ in 0..100 {
            assert_eq!(p.admit_datagram(0, 160, 0).wait, Duration::ZERO);
        }
        // The next one would be 20 ms beyond: refused, flagged once.
        let a = p.admit_datagram(0, 160, 0);
        assert_eq!((a.wait, a.first_hold), (Duration::from_millis(20), true));
        let a = p.admit_datagram(0, 160, 10);
        assert_eq!((a.wait, a.first_hold), (Duration::from_millis(10), false));
        // Refused audio was not counted: 20 ms later, one more packet fits exactly.
        assert_eq!(p.admit_datagram(0, 160, 20).wait, Duration::ZERO);
        assert!(!p.admit_datagram(0, 160, 20).wait.is_zero());
        // A sender at real time never is ahead.
        let mut p = Pace::new(&[mulaw_8k(0)], Duration::from_secs(1));
        for k in 0..10_000u64 {
            assert_eq!(p.admit_datagram(0, 160, k * 20).wait, Duration::ZERO);
        }
    }
}
