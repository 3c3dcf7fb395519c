//! The shell around one [`CallCore`]: a dedicated thread runs the DSP, the
//! recogniser pool transcribes, and an async pump moves the results, in order, through
//! the call's [`Finisher`] to whoever listens (a gRPC stream or the CLI). Everything
//! an utterance becomes is decided in the core and in [`crate::contact::finish`]; this
//! module only moves messages.
//!
//! ```text
//!   Input (bounded) ──► call thread: CallCore ──► prosody event ─────────┐
//!                              │ utterance audio                         ▼
//!                              └──► AsrPool (bounded) ──► words ──► pump (bounded) ──► Finisher ──► events (bounded)
//! ```
//! A closed event receiver means the listener is gone: the call thread stops
//! at its next input and the call's memory is freed. A slow listener slows the call's
//! input (every channel is bounded); a recogniser worker never waits on a call, since
//! each job's reply has its place in the pump reserved before the job is queued.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::asr::pool::PackScope;
use crate::asr::{AsrError, AsrJob, AsrPool, Word};
use crate::call::{CallCore, CallError, CallSettings, ChannelSpec, Ended, Transport};
use crate::contact::finish::{FinishOptions, Finisher, Models, Recognised};
use crate::core::dsp::DspPlan;
use crate::emotion::voice::VoiceModel;
use crate::emotion::Words;
use crate::proto::{self, call_event::Event, CallEvent};
use crate::server::metrics::{CallGuard, Metrics, PacketCounts};

/// Inputs queued per call before the sender waits (backpressure), messages.
pub const INPUT_QUEUE: usize = 64;
/// Events queued per call before the pump waits for the listener, messages.
pub const EVENT_QUEUE: usize = 256;
/// Messages queued from a call's thread and its recogniser jobs to its pump before the
/// call thread waits, beyond the recogniser queue's own capacity (whose replies reserve
/// their places), messages.
pub const PUMP_QUEUE: usize = 256;
/// How often the shell tells a call's jitter buffers the time while RTP flows
/// (`Input::Tick`), so held packets play out when no packet comes.
pub const TICK: std::time::Duration = std::time::Duration::from_millis(20);
/// How often the call's time is passed on to the alerts (long silence), call ms.
const CLOCK_EVERY_MS: u64 = 1000;

/// One input to a call.
#[derive(Debug)]
pub enum Input {
    /// Encoded bytes in the channel's configured encoding.
    Audio { channel_id: u32, data: Vec<u8> },
    /// Decoded samples at the channel's configured rate.
    Samples { channel_id: u32, samples: Vec<f32> },
    /// One RTP datagram that arrived at `now_ms` (the process's monotonic
    /// clock, [`now_ms`]).
    Rtp {
        channel_id: u32,
        now_ms: u64,
        packet: Vec<u8>,
    },
    /// The time, so jitter buffers play out what is due while no packet comes.
    Tick { now_ms: u64 },
    /// A leg joins the call.
    Join {
        spec: ChannelSpec,
        transport: Transport,
    },
    /// A leg ended (hung up, closed, timed out).
    EndChannel(u32),
    /// A key press the transport reported itself.
    Dtmf { channel_id: u32, digit: char },
    /// An input of a channel was dropped as malformed.
    Malformed { channel_id: u32 },
    /// A datagram for an RTP channel came from another sender and was dropped.
    Foreign { channel_id: u32 },
    /// A datagram for an RTP channel came from outside the allowed networks and was dropped.
    NotAllowed { channel_id: u32 },
    /// A datagram for an RTP channel ran too far ahead of the wall clock and was dropped.
    AheadDropped { channel_id: u32 },
    /// The input side found the call broken (e.g. a second config): end it
    /// with this error.
    Fail(CallError),
}

/// Milliseconds on the process's monotonic clock: the time the shell tells
/// jitter buffers (the same clock for every leg of every call).
pub fn now_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// What to do when the recogniser queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsrBackpressure {
    /// Live calls: send the utterance without words and count it in the
    /// summary (`transcripts_dropped`), so latency stays bounded.
    Drop,
    /// Recordings: wait for room; nothing is dropped.
    Wait,
}

/// Options of one call as the shell sees them.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Endpointing and limits of the call core.
    pub settings: CallSettings,
    /// What a full recogniser queue does to this call.
    pub backpressure: AsrBackpressure,
    /// The call's channels are legs of a live call arriving on their own
    /// transport (RTP/UDP, AudioSocket); each starts at its first audio.
    pub joining: Option<Transport>,
    /// How its utterances are finished: transcript, prosody events, redaction, alerts.
    pub finish: FinishOptions,
    /// Which other live calls its utterances may share a Whisper window with when
    /// `asr.pack_across_calls` is on: its tenant's (the tenant itself; `None` without
    /// authentication), so that no two tenants' calls share a window.
    pub pack_scope: PackScope,
}

/// Shared, process-wide analysis resources.
#[derive(Clone)]
pub struct Analyzer {
    pub plan: Arc<DspPlan>,
    /// None when running without a recogniser (prosody only).
    pub asr: Option<Arc<AsrPool>>,
    /// None when running without the emotion model (no `emotion`, no cues).
    pub voice: Option<Arc<VoiceModel>>,
    /// None when the words are not scored (the voice alone decides).
    pub words: Option<Arc<Words>>,
    /// What the calls count for `/metrics` (counted whether or not it is served).
    pub metrics: Arc<Metrics>,
}

/// The sending side of a running call. Dropping it ends the call normally:
/// open utterances are closed, pending transcriptions finish, a summary is sent.
pub struct CallHandle {
    pub input: mpsc::Sender<Input>,
    abort: Arc<AtomicBool>,
}

impl CallHandle {
    /// Ends the call at once without a summary (the client vanished).
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Relaxed);
    }
}

/// When the input that ended an utterance reached the call thread (event latency).
type Arrived = Instant;

enum PumpMsg {
    Prosody(proto::UtteranceProsody, Arrived),
    Pending(Box<Ended>, Arrived),
    Words(String, Result<Vec<Word>, AsrError>),
    Dropped(String),
    Dtmf(proto::Dtmf),
    /// The call's audio reached this time, ms (about once a second), and
    /// whether someone is speaking then.
    Clock {
        ms: u32,
        speaking: bool,
    },
    Error(CallError),
    Done(proto::CallSummary),
}

/// What became of an utterance's transcription.
enum Answer {
    Words(Result<Vec<Word>, AsrError>),
    /// Never queued: the recogniser's queue was full.
    Dropped,
}

/// The utterances a pump has not finished yet, in the order they ended, each with the
/// recogniser's answer once it came: one is handed out only when every earlier one has
/// been, whichever answer comes first.
struct InOrder<T> {
    waiting: VecDeque<(String, T, Option<Answer>)>,
}

impl<T> InOrder<T> {
    fn new() -> Self {
        Self {
            waiting: VecDeque::new(),
        }
    }

    /// An utterance that ended, waiting for its answer.
    fn push(&mut self, id: String, item: T) {
        self.waiting.push_back((id, item, None));
    }

    /// The answer for the waiting utterance `id`; false (and ignored) when none such waits.
    fn answer(&mut self, id: &str, a: Answer) -> bool {
        match self.waiting.iter_mut().find(|w| w.0 == id) {
            Some(w) => {
                w.2 = Some(a);
                true
            }
            None => false,
        }
    }

    /// The oldest utterance, once it has its answer.
    fn next_ready(&mut self) -> Option<(String, T, Answer)> {
        self.waiting.front()?.2.as_ref()?;
        let (id, item, answer) = self.waiting.pop_front()?;
        Some((id, item, answer?))
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// Sends the finisher's events to the listener, draining `out`; `since`: when the audio
/// behind them arrived. Err when the listener is gone.
async fn send_events(
    out: &mut Vec<Event>,
    since: Option<Arrived>,
    call_id: &str,
    tx: &mpsc::Sender<Result<CallEvent, CallError>>,
    metrics: &Metrics,
) -> Result<(), ()> {
    for e in out.drain(..) {
        metrics.event_sent(&e, since);
        let ev = CallEvent {
            call_id: call_id.to_string(),
            event: Some(e),
        };
        tx.send(Ok(ev)).await.map_err(|_| ())?;
    }
    Ok(())
}

/// The call thread's side of the pump.
struct Pump(mpsc::Sender<PumpMsg>);

impl Pump {
    /// Sends, waiting while the pump is full; false when the pump is gone.
    fn send(&self, msg: PumpMsg) -> bool {
        self.0.blocking_send(msg).is_ok()
    }

    /// A place in the pump for a recogniser job's reply, reserved now (waiting while the
    /// pump is full) so that the worker that answers never waits; None when it is gone.
    fn reserve(&self) -> Option<mpsc::OwnedPermit<PumpMsg>> {
        tokio::runtime::Handle::current()
            .block_on(self.0.clone().reserve_owned())
            .ok()
    }
}

impl Analyzer {
    /// Starts a call: validates it, spawns its thread and pump, and returns
    /// the input handle and the event stream. Events are `Err` once, on a
    /// fatal error of the call, and then the stream ends.
    pub fn start_call(
        &self,
        call_id: String,
        channels: &[ChannelSpec],
        opts: SessionOptions,
    ) -> Result<(CallHandle, mpsc::Receiver<Result<CallEvent, CallError>>), CallError> {
        let mut core = CallCore::new(
            call_id.clone(),
            channels,
            opts.settings.clone(),
            self.plan.clone(),
        )?;
        core.set_voice_model(self.voice.clone());
        if let Some(t) = opts.joining {
            core.set_joining(t);
        }
        let transport = match opts.backpressure {
            AsrBackpressure::Wait => "recording".to_string(),
            AsrBackpressure::Drop => core
                .leg_stats()
                .first()
                .map_or_else(|| "grpc".to_string(), |l| l.transport.clone()),
        };
        let guard = self.metrics.call_started(transport);
        let metrics = self.metrics.clone();
        let (in_tx, in_rx) = mpsc::channel(INPUT_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let queue = self.asr.as_ref().map_or(0, |a| a.config().queue_capacity);
        let (pump_tx, pump_rx) = mpsc::channel(PUMP_QUEUE + queue);
        let abort = Arc::new(AtomicBool::new(false));
        let asr = self.asr.clone();
        let abort2 = abort.clone();
        let opts2 = opts.clone();
        // The call's packing group: a recording's utterances share windows only with
        // each other; a live call's share them with other calls' unless
        // `asr.pack_across_calls` is off, and no word crosses between groups.
        static NEXT_CALL: AtomicU64 = AtomicU64::new(0);
        let group = NEXT_CALL.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            call_thread(
                core,
                in_rx,
                Pump(pump_tx),
                asr,
                opts2,
                abort2,
                group,
                &metrics,
            )
        });
        let finisher = Finisher::new(
            opts.finish,
            Models {
                voice: self.voice.clone(),
                words: self.words.clone(),
            },
        );
        tokio::spawn(pump(
            call_id,
            pump_rx,
            ev_tx,
            finisher,
            abort.clone(),
            guard,
            self.asr.clone().map(|pool| (pool, group)),
        ));
        Ok((
            CallHandle {
                input: in_tx,
                abort,
            },
            ev_rx,
        ))
    }
}

#[allow(clippy::too_many_arguments)]
fn call_thread(
    mut core: CallCore,
    mut in_rx: mpsc::Receiver<Input>,
    pump: Pump,
    asr: Option<Arc<AsrPool>>,
    opts: SessionOptions,
    abort: Arc<AtomicBool>,
    group: u64,
    metrics: &Metrics,
) {
    let mut ended = Vec::new();
    let mut dtmf = Vec::new();
    let mut clock = 0u64;
    let mut pack = Pack::default();
    let mut packets = PacketReport::default();
    let asr = asr.filter(|_| !opts.finish.disable_transcript);
    loop {
        let input = in_rx.blocking_recv();
        let arrived = Instant::now();
        if abort.load(Ordering::Relaxed) {
            packets.report(&core, metrics);
            // No one wants this call's words any more: its queued jobs go unrun.
            if let Some(pool) = asr.as_deref() {
                pool.cancel_group(Some(group));
            }
            return;
        }
        let last = input.is_none();
        let r = match input {
            Some(Input::Audio { channel_id, data }) => {
                core.push_audio(channel_id, &data, &mut ended)
            }
            Some(Input::Samples {
                channel_id,
                samples,
            }) => core.push_samples(channel_id, &samples, &mut ended),
            Some(Input::Rtp {
                channel_id,
                now_ms,
                packet,
            }) => core.push_rtp(channel_id, now_ms, packet, &mut ended),
            Some(Input::Tick { now_ms }) => core.tick(now_ms, &mut ended),
            Some(Input::Join { spec, transport }) => core.add_channel(&spec, transport),
            Some(Input::EndChannel(id)) => core.end_channel(id, &mut ended),
            Some(Input::Dtmf { channel_id, digit }) => core.push_dtmf(channel_id, digit),
            Some(Input::Malformed { channel_id }) => {
                core.count_malformed(channel_id);
                Ok(())
            }
            Some(Input::Foreign { channel_id }) => {
                core.count_foreign(channel_id);
                Ok(())
            }
            Some(Input::NotAllowed { channel_id }) => {
                core.count_not_allowed(channel_id);
                Ok(())
            }
            Some(Input::AheadDropped { channel_id }) => {
                core.count_ahead_dropped(channel_id);
                Ok(())
            }
            Some(Input::Fail(e)) => Err(e),
            // All senders gone: the call ended normally.
            None => {
                core.finish(&mut ended);
                Ok(())
            }
        };
        core.take_dtmf(&mut dtmf);
        for d in dtmf.drain(..) {
            pump.send(PumpMsg::Dtmf(d));
        }
        let now = core.time_ms();
        if now >= clock + CLOCK_EVERY_MS {
            clock = now;
            packets.report(&core, metrics);
            pump.send(PumpMsg::Clock {
                ms: now.min(u32::MAX as u64) as u32,
                speaking: core.speaking(),
            });
        }
        dispatch(
            &mut ended,
            &pump,
            asr.as_deref(),
            &opts,
            group,
            &mut pack,
            arrived,
        );
        if last {
            if let Some(pool) = asr.as_deref() {
                pack.flush(pool, group, &pump);
                // Cancelled while that flush waited for room in the queue: what it queued
                // goes unrun too (the loop's own check comes only with the next input).
                if abort.load(Ordering::Relaxed) {
                    pool.cancel_group(Some(group));
                }
            }
        }
        if let Err(e) = r {
            packets.report(&core, metrics);
            // The call ends with an error and no more of its events: its queued words
            // would be for no one.
            if let Some(pool) = asr.as_deref() {
                pool.cancel_group(Some(group));
            }
            pump.send(PumpMsg::Error(e));
            return;
        }
        if last {
            break;
        }
    }
    packets.report(&core, metrics);
    pump.send(PumpMsg::Done(core.summary()));
}

/// A call's packet counts as last reported to the metrics, per channel.
#[derive(Default)]
struct PacketReport(Vec<PacketCounts>);

impl PacketReport {
    /// Adds what each leg counted since the last report.
    fn report(&mut self, core: &CallCore, metrics: &Metrics) {
        for (i, leg) in core.leg_stats().iter().enumerate() {
            let now = PacketCounts::of(leg);
            if i >= self.0.len() {
                self.0.resize(i + 1, PacketCounts::default());
            }
            metrics.packets(&leg.transport, &now.since(&self.0[i]));
            self.0[i] = now;
        }
    }
}

/// Utterances of a recording waiting to go to the recogniser together.
///
/// Recordings ([`AsrBackpressure::Wait`]) hand their utterances over in packs
/// that fill one Whisper window, so each is transcribed with its neighbours
/// as context and the result does not depend on how busy the workers were.
#[derive(Default)]
struct Pack {
    jobs: Vec<(String, AsrJob)>,
    samples: usize,
}

impl Pack {
    fn add(&mut self, pool: &AsrPool, group: u64, pump: &Pump, id: String, job: AsrJob) {
        let cfg = pool.config();
        // The recogniser puts a gap of silence before every piece.
        let need = cfg.gap_samples() + job.audio.len();
        if !self.jobs.is_empty() && self.samples + need > cfg.window_samples() {
            self.flush(pool, group, pump);
        }
        self.samples += need;
        self.jobs.push((id, job));
        if self.jobs.len() >= cfg.queue_capacity {
            self.flush(pool, group, pump);
        }
    }

    fn flush(&mut self, pool: &AsrPool, group: u64, pump: &Pump) {
        let (ids, jobs): (Vec<String>, Vec<AsrJob>) =
            std::mem::take(&mut self.jobs).into_iter().unzip();
        self.samples = 0;
        if let Err(e) = pool.submit_all_blocking_in(Some(group), jobs) {
            for id in ids {
                pump.send(PumpMsg::Words(id, Err(e.clone())));
            }
        }
    }
}

/// Sends the fast-path event of each ended utterance and hands its audio to
/// the recogniser: at once for live calls, in window-sized packs for
/// recordings. Without a recogniser the utterance goes on without words.
fn dispatch(
    ended: &mut Vec<Ended>,
    pump: &Pump,
    asr: Option<&AsrPool>,
    opts: &SessionOptions,
    group: u64,
    pack: &mut Pack,
    arrived: Arrived,
) {
    for mut e in ended.drain(..) {
        pump.send(PumpMsg::Prosody(e.prosody.clone(), arrived));
        let id = e.utterance.utterance_id.clone();
        let audio = std::mem::take(&mut e.audio);
        pump.send(PumpMsg::Pending(Box::new(e), arrived));
        let Some(pool) = asr else {
            pump.send(PumpMsg::Words(id, Ok(Vec::new())));
            continue;
        };
        let Some(place) = pump.reserve() else {
            return;
        };
        let id2 = id.clone();
        let job = AsrJob {
            audio,
            reply: Box::new(move |r| {
                place.send(PumpMsg::Words(id2, r));
            }),
        };
        match opts.backpressure {
            AsrBackpressure::Drop => {
                if pool
                    .try_submit_scoped(Some(group), opts.pack_scope.clone(), job)
                    .is_err()
                {
                    pump.send(PumpMsg::Dropped(id));
                }
            }
            AsrBackpressure::Wait => pack.add(pool, group, pump, id, job),
        }
    }
}

/// Moves a call's messages through its finisher to the listener, in order, and ends
/// with the summary once every utterance is finished.
async fn pump(
    call_id: String,
    mut rx: mpsc::Receiver<PumpMsg>,
    tx: mpsc::Sender<Result<CallEvent, CallError>>,
    mut finisher: Finisher,
    abort: Arc<AtomicBool>,
    call: CallGuard,
    jobs: Option<(Arc<AsrPool>, u64)>,
) {
    let metrics = call.metrics();
    // Stops the call's work, and takes its queued recogniser jobs off the queue now (the
    // call thread may be waiting for room there, and would see the abort only after the
    // jobs ahead of it had run); whether it had been stopped already.
    let stop = || {
        let was = abort.swap(true, Ordering::Relaxed);
        if let Some((pool, group)) = &jobs {
            pool.cancel_group(Some(*group));
        }
        was
    };
    // The listener is gone.
    let gone = || {
        if !stop() {
            metrics.client_fault("listener_gone");
        }
    };
    // The utterances not finished yet, in the order they ended: each is finished only
    // once every earlier one is, whichever answer comes first (two recogniser workers, or
    // an utterance dropped while an earlier one waits), because redaction and alerts
    // read each utterance in the light of the ones before it (a cue in one, the digits in
    // the next).
    let mut pending: InOrder<(Box<Ended>, Arrived)> = InOrder::new();
    let mut summary: Option<proto::CallSummary> = None;
    let mut out: Vec<Event> = Vec::new();
    loop {
        let msg = tokio::select! {
            m = rx.recv() => m,
            // The listener left before the summary (a cancelled call): stop the call's
            // work now, not at its next event.
            _ = tx.closed() => None,
        };
        let Some(msg) = msg else {
            if tx.is_closed() {
                gone();
            } else if !abort.load(Ordering::Relaxed) {
                // The call thread went without its summary or an error, and no one
                // stopped it (it panicked): the listener must not take the call for a
                // finished one.
                tracing::error!(call = %call_id, "the call's thread stopped before its summary");
                let _ = tx.send(Err(CallError::Stopped)).await;
                stop();
            }
            return;
        };
        let mut failed = None;
        // When the audio behind this message's events arrived.
        let mut since = None;
        match msg {
            PumpMsg::Prosody(p, t) => {
                since = Some(t);
                finisher.prosody(p, &mut out)
            }
            PumpMsg::Pending(e, t) => pending.push(e.utterance.utterance_id.clone(), (e, t)),
            // A transcript lost is counted when it is known to be, not when its turn to be
            // finished comes.
            PumpMsg::Words(id, r) => {
                let lost = matches!(r, Err(AsrError::Expired { .. } | AsrError::Displaced));
                if pending.answer(&id, Answer::Words(r)) && lost {
                    metrics.transcript_dropped();
                }
            }
            PumpMsg::Dropped(id) => {
                if pending.answer(&id, Answer::Dropped) {
                    metrics.transcript_dropped();
                }
            }
            PumpMsg::Dtmf(d) => finisher.dtmf(d, &mut out),
            PumpMsg::Clock { ms, speaking } => finisher.clock(ms, speaking, &mut out),
            PumpMsg::Error(e) => failed = Some(e),
            PumpMsg::Done(s) => summary = Some(s),
        };
        if send_events(&mut out, since, &call_id, &tx, &metrics)
            .await
            .is_err()
        {
            gone();
            return;
        }
        while let Some((id, (ended, arrived), answer)) = pending.next_ready() {
            let recognised = match answer {
                Answer::Words(Ok(w)) => Recognised::Words(w),
                // The recogniser is behind (or this call took more than its share of it):
                // sent without words, as when the queue is full, and counted with those.
                Answer::Words(Err(err @ (AsrError::Expired { .. } | AsrError::Displaced))) => {
                    tracing::debug!(utterance = %id, error = %err, "transcription skipped");
                    Recognised::Skipped
                }
                Answer::Words(Err(err)) => {
                    tracing::warn!(utterance = %id, error = %err, "transcription failed");
                    Recognised::Failed
                }
                Answer::Dropped => Recognised::Skipped,
            };
            finisher.utterance(*ended, recognised, &mut out);
            if send_events(&mut out, Some(arrived), &call_id, &tx, &metrics)
                .await
                .is_err()
            {
                gone();
                return;
            }
        }
        if let Some(e) = failed {
            let _ = tx.send(Err(e)).await;
            abort.store(true, Ordering::Relaxed);
            return;
        }
        if pending.is_empty() {
            if let Some(mut s) = summary.take() {
                finisher.summary(&mut s);
                let ev = CallEvent {
                    call_id: call_id.clone(),
                    event: Some(Event::Summary(s)),
                };
                let _ = tx.send(Ok(ev)).await;
                return;
            }
        }
    }
}

/// Feeds a whole decoded recording into a call, one second per channel at a
/// time, interleaved as a live stereo stream would be; then ends the call.
pub async fn feed_recording(handle: CallHandle, channels: Vec<Vec<f32>>, sample_rate_hz: u32) {
    let step = sample_rate_hz.max(1) as usize;
    let len = channels.iter().map(Vec::len).max().unwrap_or(0);
    let mut pos = 0;
    while pos < len {
        for (i, ch) in channels.iter().enumerate() {
            let lo = pos.min(ch.len());
            let hi = (pos + step).min(ch.len());
            if lo == hi {
                continue;
            }
            let input = Input::Samples {
                channel_id: i as u32,
                samples: ch[lo..hi].to_vec(),
            };
            if handle.input.send(input).await.is_err() {
                return;
            }
        }
        pos += step;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(q: &mut InOrder<u32>) -> Vec<(String, u32, bool)> {
        std::iter::from_fn(|| q.next_ready())
            .map(|(id, n, a)| (id, n, matches!(a, Answer::Dropped)))
            .collect()
    }

    #[test]
    fn utterances_are_finished_in_the_order_they_ended_whatever_answers_first() {
        let mut q = InOrder::new();
        for (i, id) in ["u0000", "u0001", "u0002"].into_iter().enumerate() {
            q.push(id.to_string(), i as u32);
        }
        // The second and third answer first (another worker, a full queue): nothing
        // may go before the first.
        assert!(q.answer("u0002", Answer::Dropped));
        assert!(q.answer("u0001", Answer::Words(Ok(Vec::new()))));
        assert!(ids(&mut q).is_empty());
        assert!(q.answer("u0000", Answer::Words(Ok(Vec::new()))));
        assert_eq!(
            ids(&mut q),
            vec![
                ("u0000".to_string(), 0, false),
                ("u0001".to_string(), 1, false),
                ("u0002".to_string(), 2, true),
            ]
        );
        assert!(q.is_empty());
        // An answer for no waiting utterance changes nothing.
        q.push("u0003".to_string(), 3);
        assert!(!q.answer("u9999", Answer::Dropped));
        assert!(ids(&mut q).is_empty());
        assert!(!q.is_empty());
    }
}
