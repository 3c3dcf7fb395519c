//! `callmood loadtest`: many live calls at once against a running server, each sent at
//! real-time pace, with every event timed against the audio it answers.
//!
//! [`plan`] (where each call starts in its recording, its audio and config) and the
//! figures ([`Latency`], [`LoadReport`], [`SoakReport`]) are sans-I/O; [`run`] (every call
//! once) and [`soak`] (calls back to back for a set time) drive the calls over gRPC with
//! the [`stream`](crate::client::stream) client.

use std::time::Duration;

use serde::Serialize;

use crate::client::stream::{self, call_audio, CallAudio, WireChannels};
use crate::core::codec::wav::WavAudio;
use crate::proto::{self, StreamCallRequest};

/// Calls at once unless told otherwise.
pub const DEFAULT_CALLS: usize = 4;
/// The p95 delay from the end of an utterance's speech to its full result within which a
/// server is said to keep up, unless told otherwise, ms.
pub const DEFAULT_MAX_DELAY_MS: u32 = 5000;

/// One call of a load test, ready to send.
#[derive(Clone, Debug)]
pub struct PlannedCall {
    /// Its first message (`CallConfig`).
    pub config: StreamCallRequest,
    /// Its audio, chunk by chunk.
    pub audio: CallAudio,
    /// Which recording it plays (index into the recordings given to [`plan`]).
    pub recording: usize,
    /// Where in the recording its audio starts, ms (it wraps around at the end).
    pub offset_ms: u64,
}

/// Plans `calls` calls over `recordings`: call k plays recording k modulo their number
/// (stereo: caller left, agent right), in the recording's own encoding, cut in chunks of
/// `chunk_ms`, with id `{id_prefix}-{k}` and `options`. The calls that play the same
/// recording are spread over it ([`start_frame`]). Each recording is encoded and
/// measured once, whatever number of calls play it.
pub fn plan(
    recordings: &[WavAudio],
    calls: usize,
    chunk_ms: u32,
    options: proto::CallOptions,
    id_prefix: &str,
) -> Vec<PlannedCall> {
    let prepared: Vec<(WireChannels, Vec<f32>)> = recordings
        .iter()
        .map(|wav| {
            let level: Vec<f32> = wav
                .samples
                .iter()
                .map(|ch| levels(ch, wav.sample_rate))
                .reduce(|a, b| a.iter().zip(b).map(|(x, y)| x.max(y)).collect())
                .unwrap_or_default();
            (WireChannels::of(wav, proto::Role::Caller), level)
        })
        .collect();
    let n = recordings.len();
    (0..if n == 0 { 0 } else { calls })
        .map(|k| {
            let f = k % n;
            let (wav, (wire, level)) = (&recordings[f], &prepared[f]);
            // The calls that play the same file are spread over it: this is the j-th of m.
            let (j, m) = (k / n, (calls - f).div_ceil(n));
            let start = start_frame(j, m, wav.frames(), wav.sample_rate, level);
            let audio = call_audio(
                &wire.bytes,
                wire.bytes_per_frame,
                wav.sample_rate,
                chunk_ms,
                start,
            );
            let config = stream::config_request(
                format!("{id_prefix}-{k}"),
                wire.configs.clone(),
                Some(options),
            );
            let offset_ms = start as u64 * 1000 / u64::from(wav.sample_rate.max(1));
            PlannedCall {
                config,
                audio,
                recording: f,
                offset_ms,
            }
        })
        .collect()
}

/// Runs every planned call against `server` at once, each at real-time pace, and returns
/// what each saw, in plan order. Fails only if a call's task panicked.
pub async fn run(
    server: &str,
    access: &stream::Access,
    calls: Vec<PlannedCall>,
    chunk_ms: u32,
) -> Result<Vec<CallResult>, tokio::task::JoinError> {
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|c| tokio::spawn(call(server.to_string(), access.clone(), c, chunk_ms)))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await?);
    }
    Ok(out)
}

/// How long a soak starts new calls, and how often it reports.
#[derive(Clone, Copy, Debug)]
pub struct SoakSchedule {
    /// New calls start until this long after the start.
    pub duration: Duration,
    /// A report (an [`Interval`]) this often, and one at the end.
    pub every: Duration,
}

/// Runs the planned calls back to back for `schedule.duration`: each is a slot that starts
/// its call again (with a fresh call id, `{id}-{n}`) as soon as it ends, until the duration
/// has passed since the start; calls in flight then finish. Every `schedule.every` (and
/// once at the end) the calls that ended since the last report are pooled into an
/// [`Interval`], with the server's resident memory as `rss_kib` says it, and given to
/// `on_interval` as it is made.
pub async fn soak(
    server: &str,
    access: &stream::Access,
    calls: Vec<PlannedCall>,
    chunk_ms: u32,
    schedule: SoakSchedule,
    mut rss_kib: impl FnMut() -> Option<u64>,
    mut on_interval: impl FnMut(&Interval),
) -> SoakReport {
    use tokio::time::Instant;
    let SoakSchedule { duration, every } = schedule;
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let slots = calls.len();
    // Bounded: a slot waits for the collector, which never falls far behind.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<CallResult>(slots.max(1) * 2);
    for planned in calls {
        let (tx, server, access) = (tx.clone(), server.to_string(), access.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let r = call(
                    server.clone(),
                    access.clone(),
                    renamed(&planned, n),
                    chunk_ms,
                )
                .await;
                let failed = r.error.is_some();
                if tx.send(r).await.is_err() {
                    return;
                }
                if failed {
                    // A refused or broken call ends at once: do not hammer the server.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                n += 1;
            }
        });
    }
    drop(tx);
    let mut report = SoakReport {
        calls_at_once: slots,
        duration_s: duration.as_secs_f64(),
        rss_start_mib: rss_kib().map(kib_to_mib),
        ..Default::default()
    };
    let mut tick = tokio::time::interval_at(t0 + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut pending, mut start) = (Vec::new(), 0.0);
    let mut close = |pending: &mut Vec<CallResult>, start: &mut f64, report: &mut SoakReport| {
        let end = t0.elapsed().as_secs_f64();
        let iv = Interval::of(*start, end, pending, rss_kib().map(kib_to_mib));
        on_interval(&iv);
        report.intervals.push(iv);
        pending.clear();
        *start = end;
    };
    loop {
        tokio::select! {
            r = rx.recv() => match r {
                Some(r) => pending.push(r),
                None => break,
            },
            _ = tick.tick() => close(&mut pending, &mut start, &mut report),
        }
    }
    if !pending.is_empty() || report.intervals.is_empty() {
        close(&mut pending, &mut start, &mut report);
    }
    report.finish();
    report
}

/// `planned` with call id `{id}-{n}`: the n-th call of its slot.
fn renamed(planned: &PlannedCall, n: u64) -> PlannedCall {
    let mut c = planned.clone();
    if let Some(proto::stream_call_request::Request::Config(cfg)) = &mut c.config.request {
        cfg.call_id = format!("{}-{n}", cfg.call_id);
    }
    c
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `VmRSS` of a Linux `/proc/PID/status`, KiB.
pub fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
}

/// The least-squares slope of `y` over `x` (as many of each); none with fewer than two
/// distinct `x`.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

/// One load-test call: sends its audio at real-time pace (tick k at k × `chunk_ms` after
/// the start, carrying the audio of the chunk just spoken) and times each event against
/// the moment its utterance's speech ended. A failure is recorded in the result.
pub async fn call(
    server: String,
    access: stream::Access,
    planned: PlannedCall,
    chunk_ms: u32,
) -> CallResult {
    use crate::proto::call_event::Event;
    use tokio::time::Instant;
    let PlannedCall { config, audio, .. } = planned;
    let mut r = CallResult {
        audio_ms: audio.duration_ms,
        ..Default::default()
    };
    let mut client = match stream::connect(&server, &access).await {
        Ok(c) => c,
        Err(e) => {
            r.error = Some(error_chain(&e));
            return r;
        }
    };
    let call_id = match &config.request {
        Some(proto::stream_call_request::Request::Config(cfg)) => cfg.call_id.clone(),
        _ => String::new(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tx.send(config).await.ok();
    let period = Duration::from_millis(chunk_ms.into());
    let t0 = Instant::now();
    let sender = tokio::spawn(stream::send_paced(tx, audio, t0, period));
    let mut events = match client
        .stream_call(stream::call_request(
            &call_id,
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => {
            sender.abort();
            r.error = Some(format!("{:?}: {}", s.code(), s.message()));
            return r;
        }
    };
    // Ms from audio time `ms` (in call time, sent at real-time pace) to now.
    let since = |ms: u64| {
        let (now, at) = (Instant::now(), t0 + Duration::from_millis(ms));
        if now >= at {
            (now - at).as_secs_f64() * 1000.0
        } else {
            -((at - now).as_secs_f64() * 1000.0)
        }
    };
    loop {
        match events.message().await {
            Ok(Some(ev)) => match ev.event {
                Some(Event::UtteranceProsody(p)) => r.prosody_ms.push(since(p.end_ms.into())),
                Some(Event::Utterance(u)) => {
                    r.full_ms.push(since(u.end_ms.into()));
                    r.heard.push(Heard {
                        channel_id: u.channel_id,
                        start_ms: u.start_ms,
                        end_ms: u.end_ms,
                        transcript: u.transcript,
                    });
                }
                Some(Event::Summary(s)) => {
                    r.summary_ms = Some(since(r.audio_ms));
                    r.transcripts_dropped = s.transcripts_dropped;
                }
                _ => {}
            },
            Ok(None) => break,
            Err(s) => {
                r.error = Some(format!("{:?}: {}", s.code(), s.message()));
                break;
            }
        }
    }
    sender.abort();
    if r.error.is_none() && r.summary_ms.is_none() {
        r.error = Some("the call ended without a summary".into());
    }
    r
}

/// An error and its causes on one line, as `{:#}` of an `anyhow` error prints them.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Where call `k` of `n` starts in a recording of `frames` frames: near `k / n` of the way
/// in, moved to the quietest 20 ms (by `level`, one value per 20 ms) within 2 s, so that
/// the wrap-around does not cut a word.
pub fn start_frame(k: usize, n: usize, frames: usize, rate_hz: u32, level: &[f32]) -> usize {
    if k == 0 || n == 0 || frames == 0 || level.is_empty() {
        return 0;
    }
    let hop = (rate_hz as usize / 50).max(1);
    let target = (frames as u128 * k as u128 / n as u128) as usize / hop;
    let lo = target.saturating_sub(100);
    let hi = (target + 100).min(level.len() - 1);
    let best = (lo..=hi)
        .min_by(|&a, &b| level[a].total_cmp(&level[b]).then(a.cmp(&b)))
        .unwrap_or(target);
    best * hop
}

/// Mean square of each 20 ms of `samples` (at `rate_hz`).
pub fn levels(samples: &[f32], rate_hz: u32) -> Vec<f32> {
    let hop = (rate_hz as usize / 50).max(1);
    samples
        .chunks(hop)
        .map(|c| c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32)
        .collect()
}

/// What one call saw.
#[derive(Clone, Debug, Default)]
pub struct CallResult {
    /// For each `UtteranceProsody`: ms from the end of the utterance's speech (in call
    /// time, sent at real-time pace) to the event's arrival.
    pub prosody_ms: Vec<f64>,
    /// The same for each `Utterance` (words, fused emotion, cues).
    pub full_ms: Vec<f64>,
    /// Ms from the end of the audio to the `CallSummary`'s arrival.
    pub summary_ms: Option<f64>,
    /// `CallSummary.transcripts_dropped`.
    pub transcripts_dropped: u32,
    /// Each `Utterance`'s transcript and times (call time), in arrival order.
    pub heard: Vec<Heard>,
    /// Audio sent, ms.
    pub audio_ms: u64,
    /// Why the call failed, if it did.
    pub error: Option<String>,
}

/// What a call heard in one utterance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Heard {
    pub channel_id: u32,
    /// Call time, ms.
    pub start_ms: u32,
    pub end_ms: u32,
    pub transcript: String,
}

/// One line of `loadtest --transcripts`: an utterance of a call with where it lies in the
/// call's recording, so that calls that started at different places of one recording can
/// be compared word for word (`tools/loadtest_wer.py`).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TranscriptLine<'a> {
    /// The call's index (call k plays recording k modulo their number).
    pub call: usize,
    pub recording: usize,
    pub channel_id: u32,
    /// Where the call's audio starts in its recording, ms.
    pub offset_ms: u64,
    pub start_ms: u32,
    pub end_ms: u32,
    /// The utterance's start in the recording's own time: (offset + start) modulo the
    /// recording's length.
    pub recording_ms: u64,
    pub transcript: &'a str,
}

/// Where a planned call lies in its recording: what `--transcripts` needs of it once
/// its audio has been sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    pub recording: usize,
    pub offset_ms: u64,
    /// The recording's length, ms.
    pub duration_ms: u64,
}

impl PlannedCall {
    /// Where this call lies in its recording.
    pub fn place(&self) -> Place {
        Place {
            recording: self.recording,
            offset_ms: self.offset_ms,
            duration_ms: self.audio.duration_ms,
        }
    }
}

/// The `--transcripts` lines of one call, in call time.
pub fn transcript_lines(k: usize, place: Place, result: &CallResult) -> Vec<TranscriptLine<'_>> {
    let mut lines: Vec<TranscriptLine<'_>> = result
        .heard
        .iter()
        .map(|h| TranscriptLine {
            call: k,
            recording: place.recording,
            channel_id: h.channel_id,
            offset_ms: place.offset_ms,
            start_ms: h.start_ms,
            end_ms: h.end_ms,
            recording_ms: (place.offset_ms + u64::from(h.start_ms)) % place.duration_ms.max(1),
            transcript: &h.transcript,
        })
        .collect();
    lines.sort_by_key(|l| (l.start_ms, l.channel_id));
    lines
}

/// p50, p95 and the largest of a set of latencies, ms (nearest rank).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Events timed.
    pub n: usize,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    /// The figures of `v` (zeros when empty).
    pub fn of(v: &[f64]) -> Self {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        if s.is_empty() {
            return Self::default();
        }
        s.sort_by(f64::total_cmp);
        let rank = |q: f64| s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        Self {
            n: s.len(),
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            max_ms: s[s.len() - 1],
        }
    }
}

/// The figures of a load test.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadReport {
    /// Calls started.
    pub calls: usize,
    /// Calls that ended with their summary.
    pub completed: usize,
    /// Why each failed call failed.
    pub failures: Vec<String>,
    /// Audio of the completed calls, s.
    pub audio_s: f64,
    /// `UtteranceProsody` events: end of speech to arrival.
    pub prosody: Latency,
    /// `Utterance` events (full results): end of speech to arrival.
    pub full: Latency,
    /// `CallSummary`: end of the audio to arrival.
    pub summary: Latency,
    /// Utterances sent without words because the recogniser queue was full.
    pub transcripts_dropped: u32,
}

impl LoadReport {
    /// Pools the results of every call.
    pub fn of(results: &[CallResult]) -> Self {
        Self {
            calls: results.len(),
            completed: results.iter().filter(|r| r.error.is_none()).count(),
            failures: results.iter().filter_map(|r| r.error.clone()).collect(),
            audio_s: results
                .iter()
                .filter(|r| r.error.is_none())
                .map(|r| r.audio_ms as f64 / 1000.0)
                .sum(),
            prosody: Latency::of(
                &results
                    .iter()
                    .flat_map(|r| r.prosody_ms.iter().copied())
                    .collect::<Vec<_>>(),
            ),
            full: Latency::of(
                &results
                    .iter()
                    .flat_map(|r| r.full_ms.iter().copied())
                    .collect::<Vec<_>>(),
            ),
            summary: Latency::of(
                &results
                    .iter()
                    .filter_map(|r| r.summary_ms)
                    .collect::<Vec<_>>(),
            ),
            transcripts_dropped: results.iter().map(|r| r.transcripts_dropped).sum(),
        }
    }

    /// Whether the server kept up: every call completed, every utterance got its words, and
    /// 95 % of the full results came within `max_delay_ms` of the end of their speech.
    pub fn kept_up(&self, max_delay_ms: f64) -> bool {
        self.completed == self.calls
            && self.transcripts_dropped == 0
            && self.full.p95_ms <= max_delay_ms
    }

    /// The report as text, a line per figure; `max_delay_ms` as in [`LoadReport::kept_up`].
    pub fn write_text(
        &self,
        out: &mut impl std::io::Write,
        max_delay_ms: f64,
    ) -> std::io::Result<()> {
        writeln!(
            out,
            "calls {} ({} completed, {} failed), {:.1} s of audio in the completed ones",
            self.calls,
            self.completed,
            self.failures.len(),
            self.audio_s
        )?;
        let mut reasons: Vec<&String> = self.failures.iter().collect();
        reasons.sort();
        reasons.dedup();
        for r in reasons {
            let n = self.failures.iter().filter(|f| *f == r).count();
            writeln!(out, "  failed ({n}): {r}")?;
        }
        for (name, l) in [
            ("prosody event after the end of speech", &self.prosody),
            ("full result after the end of speech", &self.full),
            ("summary after the end of the audio", &self.summary),
        ] {
            writeln!(
                out,
                "{name}: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms ({} events)",
                l.p50_ms, l.p95_ms, l.max_ms, l.n
            )?;
        }
        writeln!(
            out,
            "transcripts dropped (recogniser behind): {}",
            self.transcripts_dropped
        )?;
        let verdict = if self.kept_up(max_delay_ms) {
            "yes".to_string()
        } else if self.completed < self.calls {
            "no: calls failed".to_string()
        } else if self.transcripts_dropped > 0 {
            "no: utterances went without words".to_string()
        } else {
            format!("no: p95 of the full results over {max_delay_ms:.0} ms")
        };
        writeln!(out, "kept up: {verdict}")
    }
}

/// The calls of a soak that ended within one reporting interval.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Interval {
    /// Its start, s from the start of the soak.
    pub start_s: f64,
    /// Its end, s from the start of the soak.
    pub end_s: f64,
    /// Calls that ended with their summary.
    pub completed: usize,
    /// Calls that failed.
    pub failed: usize,
    /// Utterances (full results) of those calls.
    pub utterances: usize,
    /// Their `UtteranceProsody` events: end of speech to arrival.
    pub prosody: Latency,
    /// Their `Utterance` events: end of speech to arrival.
    pub full: Latency,
    /// Utterances sent without words because the recogniser queue was full.
    pub transcripts_dropped: u32,
    /// The server's resident memory at the end of the interval, MiB (none when not asked
    /// for or unreadable).
    pub rss_mib: Option<f64>,
}

impl Interval {
    /// Pools the calls that ended between `start_s` and `end_s`.
    pub fn of(start_s: f64, end_s: f64, results: &[CallResult], rss_mib: Option<f64>) -> Self {
        let r = LoadReport::of(results);
        Self {
            start_s,
            end_s,
            completed: r.completed,
            failed: r.failures.len(),
            utterances: r.full.n,
            prosody: r.prosody,
            full: r.full,
            transcripts_dropped: r.transcripts_dropped,
            rss_mib,
        }
    }

    /// One row of [`SoakReport::write_text`]'s table.
    pub fn write_row(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let rss = self.rss_mib.map_or("-".into(), |m| format!("{m:.1}"));
        writeln!(
            out,
            "{:>6.1} {:>6.1} {:>6} {:>6} {:>6} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8}",
            self.start_s / 60.0,
            self.end_s / 60.0,
            self.completed,
            self.failed,
            self.utterances,
            self.prosody.p50_ms,
            self.prosody.p95_ms,
            self.full.p50_ms,
            self.full.p95_ms,
            rss
        )
    }

    /// The header of the rows.
    pub fn write_header(out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "from", "to", "calls", "failed", "utts", "pros50", "pros95", "full50", "full95", "RSS"
        )?;
        writeln!(
            out,
            "{:>6} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "min", "min", "", "", "", "ms", "ms", "ms", "ms", "MiB"
        )
    }
}

/// The figures of a soak: calls back to back for a set time, reported per interval.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SoakReport {
    /// Calls at once (slots, each starting its next call when one ends).
    pub calls_at_once: usize,
    /// How long new calls were started, s.
    pub duration_s: f64,
    /// The server's resident memory before the first call, MiB.
    pub rss_start_mib: Option<f64>,
    /// The intervals, in order.
    pub intervals: Vec<Interval>,
    /// The least-squares slope of the intervals' resident memory over time, MiB per hour.
    pub rss_slope_mib_per_h: Option<f64>,
    /// The same over the intervals that end in the second half of the run: the first
    /// minutes' growth (allocator arenas and caches filling up) left out.
    pub rss_slope_second_half_mib_per_h: Option<f64>,
    /// Calls that ended with their summary, in all.
    pub completed: usize,
    /// Calls that failed, in all.
    pub failed: usize,
    /// Utterances, in all.
    pub utterances: usize,
}

impl SoakReport {
    /// Totals and the slope, from the intervals.
    pub fn finish(&mut self) {
        let iv = &self.intervals;
        self.completed = iv.iter().map(|i| i.completed).sum();
        self.failed = iv.iter().map(|i| i.failed).sum();
        self.utterances = iv.iter().map(|i| i.utterances).sum();
        let points: Vec<(f64, f64)> = iv
            .iter()
            .filter_map(|i| Some((i.end_s / 3600.0, i.rss_mib?)))
            .collect();
        self.rss_slope_mib_per_h = slope(&points);
        let half_h = self.duration_s / 2.0 / 3600.0;
        let late: Vec<(f64, f64)> = points.into_iter().filter(|p| p.0 > half_h).collect();
        self.rss_slope_second_half_mib_per_h = slope(&late);
    }

    /// The report as text: a table with a row per interval, then the totals and the slope.
    pub fn write_text(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        Interval::write_header(out)?;
        for i in &self.intervals {
            i.write_row(out)?;
        }
        writeln!(
            out,
            "{} calls at once for {:.0} s: {} calls completed, {} failed, {} utterances",
            self.calls_at_once, self.duration_s, self.completed, self.failed, self.utterances
        )?;
        match (self.rss_start_mib, self.rss_slope_mib_per_h) {
            (Some(s0), Some(k)) => {
                let late = self
                    .rss_slope_second_half_mib_per_h
                    .map_or("too few intervals".into(), |k| format!("{k:+.2} MiB/h"));
                writeln!(
                    out,
                    "server RSS: {s0:.1} MiB before the first call, slope {k:+.2} MiB/h (least squares over the intervals), over the second half {late}"
                )
            }
            (Some(s0), None) => writeln!(
                out,
                "server RSS: {s0:.1} MiB before the first call, too few intervals for a slope"
            ),
            _ => writeln!(out, "server RSS: not measured (--server-pid)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let l = Latency::of(&v);
        assert_eq!((l.n, l.p50_ms, l.p95_ms, l.max_ms), (20, 10.0, 19.0, 20.0));
        assert_eq!(Latency::of(&[]), Latency::default());
        let one = Latency::of(&[7.0, f64::NAN]);
        assert_eq!((one.n, one.p50_ms, one.p95_ms), (1, 7.0, 7.0));
    }

    #[test]
    fn plan_deals_the_recordings_round_robin() {
        use crate::core::codec::wav::WavEncoding;
        let wav = |encoding, channels: usize| WavAudio {
            sample_rate: 8000,
            channels: channels as u16,
            encoding,
            samples: vec![vec![0.25; 8000]; channels],
        };
        let wavs = [wav(WavEncoding::Mulaw, 1), wav(WavEncoding::PcmI16, 2)];
        let options = proto::CallOptions {
            disable_transcript: true,
            ..Default::default()
        };
        let calls = plan(&wavs, 3, 20, options, "lt");
        assert_eq!(calls.len(), 3);
        for (k, c) in calls.iter().enumerate() {
            let Some(proto::stream_call_request::Request::Config(cfg)) = &c.config.request else {
                panic!("not a config");
            };
            assert_eq!(cfg.call_id, format!("lt-{k}"));
            assert_eq!(cfg.options, Some(options));
            // Call k plays recording k mod 2: one μ-law channel, or two LINEAR16 ones.
            let (channels, bytes) = if k % 2 == 0 { (1, 160) } else { (2, 320) };
            assert_eq!(cfg.channels.len(), channels);
            assert_eq!(c.audio.duration_ms, 1000);
            assert_eq!(c.audio.ticks.len(), 50);
            assert!(c.audio.ticks.iter().all(|t| t.len() == channels));
            assert_eq!(c.audio.ticks[0][0].len(), bytes);
        }
        assert!(plan(&[], 3, 20, options, "lt").is_empty());
    }

    #[test]
    fn calls_start_at_a_quiet_place_near_their_share() {
        // 8 kHz, 10 s: loud everywhere but a quiet 20 ms at 5.4 s.
        let rate = 8000;
        let mut x = vec![0.5f32; 80_000];
        x[43_200..43_360].iter_mut().for_each(|v| *v = 0.0);
        let level = levels(&x, rate);
        assert_eq!(level.len(), 500);
        assert_eq!(start_frame(0, 2, x.len(), rate, &level), 0);
        assert_eq!(start_frame(1, 2, x.len(), rate, &level), 43_200);
        // Beyond 2 s of the share: the quiet place is not reached, the first of the loud
        // ones in reach is taken.
        assert_eq!(start_frame(1, 4, x.len(), rate, &level), 4_000);
    }

    #[test]
    fn report_pools_calls_and_says_whether_it_kept_up() {
        let ok = CallResult {
            prosody_ms: vec![500.0, 600.0],
            full_ms: vec![1500.0],
            summary_ms: Some(900.0),
            audio_ms: 60_000,
            ..CallResult::default()
        };
        let dropped = CallResult {
            transcripts_dropped: 2,
            ..ok.clone()
        };
        let failed = CallResult {
            error: Some("RESOURCE_EXHAUSTED: too many calls".into()),
            ..CallResult::default()
        };
        let r = LoadReport::of(&[ok.clone(), ok.clone()]);
        assert!(r.kept_up(1500.0));
        assert!(!r.kept_up(1499.0));
        let mut text = Vec::new();
        r.write_text(&mut text, 1000.0).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("kept up: no: p95 of the full results over 1000 ms"));
        assert_eq!((r.calls, r.completed, r.prosody.n, r.full.n), (2, 2, 4, 2));
        assert_eq!(r.audio_s, 120.0);
        assert!(!LoadReport::of(&[ok.clone(), dropped]).kept_up(5000.0));
        let r = LoadReport::of(&[ok, failed.clone(), failed]);
        assert!(!r.kept_up(5000.0));
        let mut text = Vec::new();
        r.write_text(&mut text, 5000.0).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("calls 3 (1 completed, 2 failed)"), "{text}");
        assert!(text.contains("failed (2): RESOURCE_EXHAUSTED"), "{text}");
        assert!(text.contains("kept up: no: calls failed"), "{text}");
    }

    #[test]
    fn transcript_lines_place_utterances_in_the_recording() {
        let planned = PlannedCall {
            config: StreamCallRequest::default(),
            audio: CallAudio {
                ticks: Vec::new(),
                duration_ms: 64_000,
            },
            recording: 1,
            offset_ms: 60_000,
        };
        let heard = |channel_id, start_ms, text: &str| Heard {
            channel_id,
            start_ms,
            end_ms: start_ms + 900,
            transcript: text.into(),
        };
        let result = CallResult {
            heard: vec![
                heard(1, 5_000, "after the wrap"),
                heard(0, 1_000, "before it"),
            ],
            ..Default::default()
        };
        let lines = transcript_lines(3, planned.place(), &result);
        let placed: Vec<(u64, &str)> = lines
            .iter()
            .map(|l| (l.recording_ms, l.transcript))
            .collect();
        // In call order; the second utterance lies past the recording's end, at its 1 s.
        assert_eq!(placed, [(61_000, "before it"), (1_000, "after the wrap")]);
        assert!(lines.iter().all(|l| l.call == 3 && l.recording == 1));
        let json = serde_json::to_string(&lines[1]).unwrap();
        assert!(json.contains("\"recording_ms\":1000"), "{json}");
    }

    #[test]
    fn slope_is_least_squares() {
        // y = 3x + 1 with noise that cancels.
        let pts = [(0.0, 1.0), (1.0, 4.5), (2.0, 6.5), (3.0, 10.0)];
        let k = slope(&pts).unwrap();
        assert!((k - 2.9).abs() < 1e-9, "{k}");
        assert_eq!(slope(&[(1.0, 2.0)]), None);
        assert_eq!(slope(&[(1.0, 2.0), (1.0, 3.0)]), None);
        assert_eq!(slope(&[(0.0, 5.0), (0.5, 5.0), (1.0, 5.0)]), Some(0.0));
    }

    #[test]
    fn vm_rss_is_read_from_proc_status() {
        let status = "Name:\tcallmood\nVmPeak:\t  900000 kB\nVmRSS:\t  123456 kB\nThreads:\t9\n";
        assert_eq!(vm_rss_kib(status), Some(123_456));
        assert_eq!(vm_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn soak_report_pools_intervals_and_fits_the_memory() {
        let ok = CallResult {
            prosody_ms: vec![500.0, 600.0],
            full_ms: vec![700.0, 800.0],
            summary_ms: Some(900.0),
            audio_ms: 10_000,
            ..CallResult::default()
        };
        let failed = CallResult {
            error: Some("Unavailable".into()),
            ..CallResult::default()
        };
        let mut r = SoakReport {
            calls_at_once: 2,
            duration_s: 1800.0,
            rss_start_mib: Some(90.0),
            intervals: vec![
                Interval::of(0.0, 900.0, &[ok.clone(), ok.clone()], Some(100.0)),
                Interval::of(900.0, 1800.0, &[ok.clone(), failed], Some(101.0)),
                Interval::of(1800.0, 1810.0, &[], None),
            ],
            ..Default::default()
        };
        r.finish();
        assert_eq!((r.completed, r.failed, r.utterances), (3, 1, 6));
        // 1 MiB in a quarter of an hour; the interval without a reading is left out, and
        // only one reading is in the second half (after 900 s).
        assert!((r.rss_slope_mib_per_h.unwrap() - 4.0).abs() < 1e-9);
        assert_eq!(r.rss_slope_second_half_mib_per_h, None);
        let mut text = Vec::new();
        r.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert_eq!(text.lines().count(), 2 + 3 + 2, "{text}");
        assert!(text.contains("slope +4.00 MiB/h"), "{text}");
        assert!(text.contains("second half too few intervals"), "{text}");
        // Growth that stops: steep over the whole run, flat over its second half.
        let mut flat = SoakReport {
            duration_s: 3600.0,
            intervals: [
                (900.0, 100.0),
                (1800.0, 110.0),
                (2700.0, 110.0),
                (3600.0, 110.0),
            ]
            .map(|(end, rss)| Interval::of(end - 900.0, end, &[], Some(rss)))
            .to_vec(),
            ..Default::default()
        };
        flat.finish();
        assert!(flat.rss_slope_mib_per_h.unwrap() > 5.0);
        assert_eq!(flat.rss_slope_second_half_mib_per_h, Some(0.0));
    }
}
