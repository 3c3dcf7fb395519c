//! `callmood loadtest`: many live calls at once against a running server, each sent at
//! real-time pace, with every event timed against the audio it answers. This module holds
//! the sans-I/O parts (the calls' audio, the figures); the CLI drives the gRPC calls.

use serde::Serialize;

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
    /// Audio sent, ms.
    pub audio_ms: u64,
    /// Why the call failed, if it did.
    pub error: Option<String>,
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
}
