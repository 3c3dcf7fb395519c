//! Packet loss concealment by pitch repetition, after ITU-T G.711 Appendix I.
//!
//! A lost packet's time is filled with the last pitch period of the audio before it,
//! repeated, instead of silence: a vowel cut by a lost 20 ms packet goes on as a vowel,
//! which is what the recogniser and the prosody read. As in Appendix I:
//! - the pitch period is the lag of 5 to 15 ms (66 to 200 Hz) whose normalised
//!   correlation with the last 20 ms of history is highest;
//! - the period's last quarter is cross-faded with the quarter before it, so that the
//!   repetition loops without a click;
//! - the repeated signal is kept at full level for 10 ms, then attenuated by 20 % per
//!   10 ms, to silence at 60 ms (a long loss must not buzz);
//! - the first audio after a loss is cross-faded with the continued repetition, over
//!   4 ms plus 4 ms per further 10 ms lost, at most 10 ms.
//!
//! Unlike Appendix I, the output is not delayed by 3.75 ms to smooth the start of a loss
//! (the audio before it has been handed on already), and the repetition stays one
//! period long (Appendix I moves to two and three periods after 10 and 20 ms).
//!
//! Sans-I/O: samples in, samples out, lengths scaled from 8 kHz to the leg's rate.

/// History kept for the pitch search, ms (Appendix I keeps 48.75 ms).
const HISTORY_MS: u32 = 50;
/// Pitch period searched, ms: 5 ms (200 Hz) to 15 ms (66.7 Hz), as Appendix I.
const MIN_PITCH_MS: f32 = 5.0;
const MAX_PITCH_MS: f32 = 15.0;
/// Length correlated in the pitch search, ms.
const CORR_MS: u32 = 20;
/// Concealment stays at full level this long, ms.
const FULL_LEVEL_MS: u32 = 10;
/// Then its level falls by 20 % per 10 ms: silent after this long, ms.
const SILENT_AFTER_MS: u32 = 60;
/// The first audio after a loss is cross-faded over this much, ms, plus the same per
/// further 10 ms lost, at most [`MAX_FADE_IN_MS`].
const FADE_IN_MS: u32 = 4;
const MAX_FADE_IN_MS: u32 = 10;

/// One leg's concealment state: its recent audio and, during a loss, where the
/// repetition has got to.
#[derive(Clone, Debug)]
pub struct Concealer {
    rate_hz: u32,
    /// The last [`HISTORY_MS`] of what was played out (audio and concealment), oldest first.
    history: Vec<f32>,
    /// The period being repeated during a loss (empty: no loss going on).
    period: Vec<f32>,
    /// Next sample of `period` to play.
    phase: usize,
    /// Samples concealed in the current loss so far.
    concealed: usize,
}

impl Concealer {
    /// A concealer for audio at `rate_hz`.
    pub fn new(rate_hz: u32) -> Self {
        let rate_hz = rate_hz.max(1000);
        Self {
            rate_hz,
            history: Vec::with_capacity(ms(HISTORY_MS, rate_hz) * 2),
            period: Vec::new(),
            phase: 0,
            concealed: 0,
        }
    }

    /// Good audio, about to be played: the first samples after a loss are cross-faded
    /// with the continued concealment (in place), and it becomes history.
    pub fn audio(&mut self, samples: &mut [f32]) {
        if !self.period.is_empty() {
            let lost_10ms = self.concealed / ms(10, self.rate_hz).max(1);
            let fade_ms = (FADE_IN_MS * (1 + lost_10ms as u32)).min(MAX_FADE_IN_MS);
            let n = ms(fade_ms, self.rate_hz).min(samples.len());
            for (i, s) in samples.iter_mut().take(n).enumerate() {
                let w = (i + 1) as f32 / (n + 1) as f32;
                let synthetic = self.next_synthetic();
                *s = w * *s + (1.0 - w) * synthetic;
            }
            self.end_loss();
        }
        self.remember(samples);
    }

    /// The sender sent nothing for `n` samples (silence suppression): silence, which is
    /// history too.
    pub fn silence(&mut self, n: usize, out: &mut Vec<f32>) {
        self.end_loss();
        let start = out.len();
        out.resize(start + n, 0.0);
        self.remember(&out[start..]);
    }

    /// `n` samples of lost packets: appended to `out`, concealed.
    pub fn conceal(&mut self, n: usize, out: &mut Vec<f32>) {
        if self.period.is_empty() && !self.start_loss() {
            // Too little history to find a pitch: silence, as without concealment.
            return self.silence(n, out);
        }
        let start = out.len();
        out.reserve(n);
        for _ in 0..n {
            let s = self.next_synthetic();
            out.push(s);
        }
        self.remember(&out[start..]);
    }

    /// Whether a loss is being concealed now.
    pub fn in_loss(&self) -> bool {
        !self.period.is_empty()
    }

    /// The next repeated sample with its level, advancing the loss.
    fn next_synthetic(&mut self) -> f32 {
        let full = ms(FULL_LEVEL_MS, self.rate_hz);
        let silent = ms(SILENT_AFTER_MS, self.rate_hz);
        let gain = if self.concealed < full {
            1.0
        } else {
            1.0 - (self.concealed - full) as f32 / (silent - full).max(1) as f32
        }
        .max(0.0);
        let s = self.period[self.phase] * gain;
        self.phase = (self.phase + 1) % self.period.len();
        self.concealed += 1;
        s
    }

    /// Finds the pitch period in the history and prepares its repetition; false when
    /// the history is too short.
    fn start_loss(&mut self) -> bool {
        let h = &self.history;
        let min_lag = ms_f(MIN_PITCH_MS, self.rate_hz);
        let max_lag = ms_f(MAX_PITCH_MS, self.rate_hz);
        let corr = ms(CORR_MS, self.rate_hz);
        if h.len() < corr + max_lag || h.iter().all(|&s| s == 0.0) {
            return false;
        }
        let p = best_lag(h, corr, min_lag, max_lag);
        // The last period, its last quarter cross-faded with the quarter before the
        // period, so that its end leads smoothly back to its start.
        let q = (p / 4).max(1);
        let end = h.len();
        let mut period = h[end - p..].to_vec();
        for i in 0..q {
            let w = (i + 1) as f32 / (q + 1) as f32;
            let before = h[end - p - q + i];
            period[p - q + i] = (1.0 - w) * period[p - q + i] + w * before;
        }
        self.period = period;
        self.phase = 0;
        self.concealed = 0;
        true
    }

    fn end_loss(&mut self) {
        self.period.clear();
        self.phase = 0;
        self.concealed = 0;
    }

    /// Appends played samples to the history, keeping its last [`HISTORY_MS`].
    fn remember(&mut self, samples: &[f32]) {
        let keep = ms(HISTORY_MS, self.rate_hz);
        if samples.len() >= keep {
            self.history.clear();
            self.history
                .extend_from_slice(&samples[samples.len() - keep..]);
            return;
        }
        let over = (self.history.len() + samples.len()).saturating_sub(keep);
        self.history.drain(..over);
        self.history.extend_from_slice(samples);
    }
}

/// Samples in `ms` milliseconds at `rate_hz`.
fn ms(ms: u32, rate_hz: u32) -> usize {
    (ms as u64 * rate_hz as u64 / 1000) as usize
}

fn ms_f(ms: f32, rate_hz: u32) -> usize {
    (ms * rate_hz as f32 / 1000.0).round() as usize
}

/// The lag in `min..=max` whose window of the last `len` samples, shifted back by the
/// lag, correlates best (normalised by the shifted window's energy) with the last `len`
/// samples; `h` holds at least `len + max` samples.
fn best_lag(h: &[f32], len: usize, min: usize, max: usize) -> usize {
    let end = h.len();
    let target = &h[end - len..];
    let mut best = (f32::NEG_INFINITY, min);
    for lag in min..=max {
        let past = &h[end - len - lag..end - lag];
        let (mut dot, mut energy) = (0.0f32, 0.0f32);
        for (a, b) in target.iter().zip(past) {
            dot += a * b;
            energy += b * b;
        }
        let score = if energy > 0.0 {
            dot / energy.sqrt()
        } else {
            f32::NEG_INFINITY
        };
        if score > best.0 {
            best = (score, lag);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A voiced vowel-like signal: F0 `f0` Hz with decaying harmonics, at 8 kHz.
    fn voiced(n: usize, f0: f32, rate: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                (1..=6)
                    .map(|k| {
                        let k = k as f32;
                        0.3 / k * (2.0 * std::f32::consts::PI * f0 * k * t + 0.3 * k).sin()
                    })
                    .sum()
            })
            .collect()
    }

    fn snr_db(reference: &[f32], got: &[f32]) -> f32 {
        let signal: f32 = reference.iter().map(|x| x * x).sum();
        let noise: f32 = reference
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b) * (a - b))
            .sum();
        10.0 * (signal / noise.max(1e-12)).log10()
    }

    /// Plays `signal` in 20 ms packets, concealing the packets in `lost`.
    fn play(signal: &[f32], rate: u32, lost: &[usize]) -> Vec<f32> {
        let frame = ms(20, rate);
        let mut plc = Concealer::new(rate);
        let mut out = Vec::new();
        for (k, chunk) in signal.chunks(frame).enumerate() {
            if lost.contains(&k) {
                plc.conceal(chunk.len(), &mut out);
            } else {
                let mut c = chunk.to_vec();
                plc.audio(&mut c);
                out.extend_from_slice(&c);
            }
        }
        out
    }

    #[test]
    fn a_lost_packet_of_a_vowel_is_concealed_better_than_silence() {
        for (rate, f0) in [(8000, 120.0), (8000, 173.0), (16000, 210.0), (8000, 90.0)] {
            let signal = voiced(ms(400, rate), f0, rate);
            let frame = ms(20, rate);
            let lost = 10;
            let out = play(&signal, rate, &[lost]);
            assert_eq!(out.len(), signal.len(), "audio time stays true");
            let span = lost * frame..(lost + 1) * frame;
            let concealed = snr_db(&signal[span.clone()], &out[span.clone()]);
            eprintln!("{rate} Hz, F0 {f0} Hz: concealed SNR {concealed:.1} dB (silence: 0 dB)");
            // Silence has an SNR of exactly 0 dB.
            assert!(
                concealed > 6.0,
                "{rate} Hz, F0 {f0} Hz: concealed SNR {concealed:.1} dB"
            );
            // The packet after the loss is faded in, not clicked in.
            let after = (lost + 1) * frame..(lost + 2) * frame;
            assert!(snr_db(&signal[after.clone()], &out[after]) > 10.0);
            // Good packets pass untouched.
            assert_eq!(&out[..span.start], &signal[..span.start]);
        }
    }

    #[test]
    fn long_losses_fade_to_silence_by_60_ms() {
        let rate = 8000;
        let signal = voiced(ms(400, rate), 140.0, rate);
        let out = play(&signal, rate, &[5, 6, 7, 8, 9]);
        let frame = ms(20, rate);
        let start = 5 * frame;
        let level = |r: std::ops::Range<usize>| out[r].iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let before = level(start - frame..start);
        // Full level over the first 10 ms, lower by 40 ms, silent from 60 ms.
        assert!(level(start..start + ms(10, rate)) > 0.8 * before);
        assert!(level(start + ms(40, rate)..start + ms(50, rate)) < 0.5 * before);
        assert!(level(start + ms(60, rate)..start + ms(100, rate)) == 0.0);
    }

    #[test]
    fn silence_and_no_history_stay_silent() {
        let rate = 8000;
        let mut plc = Concealer::new(rate);
        let mut out = Vec::new();
        // A loss before any audio: nothing to repeat.
        plc.conceal(160, &mut out);
        assert!(out.iter().all(|&x| x == 0.0));
        // A sender's silence after audio is silence, and a loss after it repeats silence.
        let mut a = voiced(400, 150.0, rate);
        plc.audio(&mut a);
        plc.silence(400, &mut out);
        plc.conceal(160, &mut out);
        assert_eq!(out.len(), 720);
        assert!(out.iter().all(|&x| x == 0.0));
        assert!(!plc.in_loss());
    }

    #[test]
    fn the_pitch_search_finds_the_period() {
        let rate = 8000;
        for f0 in [70.0f32, 100.0, 160.0, 195.0] {
            let h = voiced(ms(HISTORY_MS, rate), f0, rate);
            let lag = best_lag(&h, ms(CORR_MS, rate), 40, 120);
            let period = rate as f32 / f0;
            // The period or a multiple of it (as good for repetition), within a sample.
            let k = (lag as f32 / period).round().max(1.0);
            assert!(
                (lag as f32 - k * period).abs() <= 1.0,
                "F0 {f0}: lag {lag}, period {period:.1}"
            );
        }
    }
}
