//! Streaming resampling of mono audio from any rate in 8–48 kHz to the 16 kHz analysis rate.
//!
//! Built on rubato's synchronous FFT resampler (`FftFixedIn`): a windowed-sinc low-pass FIR as
//! long as one FFT block, applied by overlap-add, so it is exact (fixed ratio, fixed delay),
//! anti-aliased (content above the output Nyquist, 8 kHz, is removed, not folded) and cheap.
//! The block is about 20 ms for the usual rates (8, 11.025, 12, 22.05, 24, 32, 44.1, 48 kHz);
//! for an unusual rate it is `rate / gcd(rate, 16000)` input samples, up to one second (e.g.
//! 44 101 Hz), which raises the latency accordingly. rubato's asynchronous sinc resampler
//! was not used because its delay is not a whole number of output samples that it reports
//! exactly, so timestamps could not be kept true.
//!
//! Timing is kept true: the filter's group delay is trimmed from the start of the output, so
//! output sample `n` is the input at time `n / 16000` s, and [`Resampler::flush_into`] pads
//! the tail so the total output length is `round(input_len * 16000 / input_rate)`.

use rubato::{FftFixedIn, Resampler as _};

use crate::SAMPLE_RATE;

/// Lowest supported input rate, Hz.
pub const MIN_INPUT_RATE_HZ: u32 = 8_000;
/// Highest supported input rate, Hz.
pub const MAX_INPUT_RATE_HZ: u32 = 48_000;
/// Wanted FFT block length, ms: the FIR is as long as the block (160 taps at 8 kHz, 960 at
/// 48 kHz), long enough for a sharp band edge, short enough for low latency.
const BLOCK_MS: usize = 20;

/// Why a resampler could not be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ResampleError {
    /// The input rate is outside 8000..=48000 Hz.
    #[error("unsupported input sample rate {rate_hz} Hz (supported: {MIN_INPUT_RATE_HZ}..={MAX_INPUT_RATE_HZ} Hz)")]
    UnsupportedRate {
        /// The rate asked for, Hz.
        rate_hz: u32,
    },
    /// rubato refused the configuration (should not happen for supported rates).
    #[error("resampler construction failed for {rate_hz} Hz: {message}")]
    Construction {
        /// The rate asked for, Hz.
        rate_hz: u32,
        /// rubato's message.
        message: String,
    },
}

struct Engine {
    rubato: FftFixedIn<f32>,
    /// Input samples rubato takes per call.
    chunk_in: usize,
    /// `[1][chunk_in]`: input gathered until a full chunk.
    in_buf: Vec<Vec<f32>>,
    in_filled: usize,
    /// `[1][output_frames_max]`: rubato's output for one chunk.
    out_buf: Vec<Vec<f32>>,
    /// Group delay of the filter, output samples.
    delay: usize,
    /// Output samples still to drop to compensate `delay`.
    to_trim: usize,
}

/// Streaming mono resampler from `input_rate_hz` to 16 kHz (pass-through at 16 kHz).
///
/// Accepts chunks of any size; after construction it does not allocate (except to grow the
/// caller's output `Vec`).
pub struct Resampler {
    input_rate_hz: u32,
    engine: Option<Engine>,
    /// Input samples received since the start (or the last flush).
    total_in: u64,
    /// Output samples emitted since the start (or the last flush).
    total_out: u64,
}

impl std::fmt::Debug for Resampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resampler")
            .field("input_rate_hz", &self.input_rate_hz)
            .field("delay_samples", &self.delay_samples())
            .field("total_in", &self.total_in)
            .field("total_out", &self.total_out)
            .finish()
    }
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Resampler {
    /// A resampler for mono input at `input_rate_hz` (8000..=48000) to 16 kHz. Allocates its
    /// buffers and FFT plans here, once.
    pub fn new(input_rate_hz: u32) -> Result<Self, ResampleError> {
        if !(MIN_INPUT_RATE_HZ..=MAX_INPUT_RATE_HZ).contains(&input_rate_hz) {
            return Err(ResampleError::UnsupportedRate {
                rate_hz: input_rate_hz,
            });
        }
        let engine = if input_rate_hz == SAMPLE_RATE {
            None
        } else {
            Some(Self::engine(input_rate_hz)?)
        };
        Ok(Self {
            input_rate_hz,
            engine,
            total_in: 0,
            total_out: 0,
        })
    }

    fn engine(rate_hz: u32) -> Result<Engine, ResampleError> {
        let fs_in = rate_hz as usize;
        let fs_out = SAMPLE_RATE as usize;
        let err = |e: rubato::ResamplerConstructionError| ResampleError::Construction {
            rate_hz,
            message: e.to_string(),
        };
        let mut min_chunk = fs_in / gcd(fs_in, fs_out);
        // An even block puts the FIR's centre (its delay) on a whole output sample.
        if min_chunk % 2 == 1 && min_chunk <= 1000 {
            min_chunk *= 2;
        }
        let wanted = fs_in * BLOCK_MS / 1000;
        let chunk_in = min_chunk * wanted.div_ceil(min_chunk).max(1);
        let rubato = FftFixedIn::<f32>::new(fs_in, fs_out, chunk_in, 1, 1).map_err(err)?;
        let chunk_out = chunk_in * fs_out / fs_in;
        // The FIR is centred on input sample floor(chunk_in / 2) (rubato reports
        // chunk_out / 2, exact for even blocks); round to the nearest output sample.
        let delay = ((chunk_in / 2) as f64 * chunk_out as f64 / chunk_in as f64).round() as usize;
        let out_max = rubato.output_frames_max();
        Ok(Engine {
            rubato,
            chunk_in,
            in_buf: vec![vec![0.0; chunk_in]],
            in_filled: 0,
            out_buf: vec![vec![0.0; out_max]],
            delay,
            to_trim: delay,
        })
    }

    /// Input rate, Hz.
    pub fn input_rate_hz(&self) -> u32 {
        self.input_rate_hz
    }

    /// Group delay of the anti-aliasing filter, in output (16 kHz) samples. It is trimmed
    /// from the output, so timestamps stay true (to within half an output sample for rates
    /// whose block is odd); 0 for pass-through.
    pub fn delay_samples(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| e.delay)
    }

    /// Worst-case latency, in output samples, between an input sample arriving and its
    /// output appearing: the filter delay plus one input chunk of buffering.
    pub fn latency_samples(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| {
            e.delay + e.chunk_in * SAMPLE_RATE as usize / self.input_rate_hz as usize
        })
    }

    /// Resamples `input`, appending the 16 kHz output that is ready to `out`. Samples belong
    /// in -1..1: larger ones are clipped and non-finite ones read as 0, since the filter's
    /// FFT overflows on values near `f32::MAX` (rubato then panics).
    pub fn process_into(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.total_in += input.len() as u64;
        let Some(engine) = self.engine.as_mut() else {
            out.extend(input.iter().copied().map(sanitize));
            self.total_out += input.len() as u64;
            return;
        };
        let mut rest = input;
        while !rest.is_empty() {
            let take = (engine.chunk_in - engine.in_filled).min(rest.len());
            for (d, &v) in engine.in_buf[0][engine.in_filled..engine.in_filled + take]
                .iter_mut()
                .zip(&rest[..take])
            {
                *d = sanitize(v);
            }
            engine.in_filled += take;
            rest = &rest[take..];
            if engine.in_filled == engine.chunk_in {
                self.total_out += engine.run_chunk(out, u64::MAX);
            }
        }
    }

    /// Ends the stream: emits the remaining output so that the total length is
    /// `round(input_len * 16000 / input_rate)`, then resets to a fresh stream.
    pub fn flush_into(&mut self, out: &mut Vec<f32>) {
        let expected = (self.total_in * u64::from(SAMPLE_RATE) + u64::from(self.input_rate_hz) / 2)
            / u64::from(self.input_rate_hz);
        if let Some(engine) = self.engine.as_mut() {
            // Push zero-padded chunks until the filter has released everything owed.
            let mut guard = 0;
            while self.total_out < expected && guard < 64 {
                engine.in_buf[0][engine.in_filled..].fill(0.0);
                engine.in_filled = engine.chunk_in;
                self.total_out += engine.run_chunk(out, expected - self.total_out);
                guard += 1;
            }
            engine.rubato.reset();
            engine.in_filled = 0;
            engine.to_trim = engine.delay;
        }
        self.total_in = 0;
        self.total_out = 0;
    }
}

impl Engine {
    /// Runs one full input chunk; appends at most `limit` samples (after trimming the
    /// initial delay) to `out` and returns how many.
    fn run_chunk(&mut self, out: &mut Vec<f32>, limit: u64) -> u64 {
        self.in_filled = 0;
        // Buffers are sized from rubato's own maxima, so an error cannot happen; drop the
        // chunk rather than panic if it ever does.
        let produced = self
            .rubato
            .process_into_buffer(&self.in_buf, &mut self.out_buf, None)
            .map_or(0, |(_, produced)| produced);
        let produced = &self.out_buf[0][..produced.min(self.out_buf[0].len())];
        let skip = self.to_trim.min(produced.len());
        self.to_trim -= skip;
        let ready = &produced[skip..];
        let n = ready
            .len()
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
        out.extend_from_slice(&ready[..n]);
        n as u64
    }
}

/// A sample clipped to -1..1, or 0 when it is not a number.
fn sanitize(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::PI;

    fn tone(freq: f32, rate: u32, secs: f32, amp: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| amp * (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn resample_all(rate: u32, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut r = Resampler::new(rate).expect("supported");
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            r.process_into(c, &mut out);
        }
        r.flush_into(&mut out);
        out
    }

    /// Amplitude of `freq` in `x` (16 kHz) by correlation with a quadrature pair.
    fn amplitude_at(x: &[f32], freq: f32) -> f32 {
        let (mut s, mut c) = (0.0f64, 0.0f64);
        for (i, &v) in x.iter().enumerate() {
            let ph = 2.0 * std::f64::consts::PI * freq as f64 * i as f64 / 16000.0;
            s += v as f64 * ph.sin();
            c += v as f64 * ph.cos();
        }
        (2.0 * (s * s + c * c).sqrt() / x.len() as f64) as f32
    }

    /// Frequency by counting rising zero crossings with linear interpolation.
    fn zero_cross_freq(x: &[f32]) -> f32 {
        let mut first = None;
        let mut last = 0.0;
        let mut count = 0;
        for i in 1..x.len() {
            if x[i - 1] < 0.0 && x[i] >= 0.0 {
                let t = (i - 1) as f32 + x[i - 1] / (x[i - 1] - x[i]);
                if first.is_none() {
                    first = Some(t);
                } else {
                    count += 1;
                }
                last = t;
            }
        }
        count as f32 * 16000.0 / (last - first.unwrap_or(0.0))
    }

    #[test]
    fn rejects_rates_out_of_range() {
        for bad in [0, 7999, 48001, 96000] {
            let e = Resampler::new(bad).unwrap_err();
            assert!(e.to_string().contains(&bad.to_string()), "{e}");
        }
    }

    #[test]
    fn pass_through_at_16k() {
        let x = tone(440.0, 16000, 0.1, 0.5);
        let mut r = Resampler::new(16000).expect("ok");
        assert_eq!(r.delay_samples(), 0);
        let mut out = Vec::new();
        r.process_into(&x, &mut out);
        r.flush_into(&mut out);
        assert_eq!(out, x);
    }

    #[test]
    fn tone_8k_keeps_frequency_amplitude_and_length() {
        let x = tone(1000.0, 8000, 1.0, 0.5);
        for chunk in [1, 7, 160, 1000, 8000] {
            let y = resample_all(8000, &x, chunk);
            assert_eq!(y.len(), 16000, "chunk {chunk}");
            let mid = &y[1600..14400];
            let f = zero_cross_freq(mid);
            assert!((f - 1000.0).abs() < 1.0, "freq {f}");
            let a = amplitude_at(mid, 1000.0);
            assert!((a - 0.5).abs() < 0.02, "amp {a}");
        }
    }

    #[test]
    fn delay_is_compensated() {
        // An input tone and the output must be in phase at the same time instants.
        for rate in [8000u32, 11025, 22050, 44100, 48000, 12345, 44101] {
            let x = tone(300.0, rate, 1.5, 0.5);
            let y = resample_all(rate, &x, 333);
            let want = (x.len() as u64 * 16000 + rate as u64 / 2) / rate as u64;
            assert_eq!(y.len() as u64, want, "length at {rate} Hz");
            let reference = tone(300.0, 16000, 1.5, 0.5);
            let err: f32 = y[4000..20000]
                .iter()
                .zip(&reference[4000..20000])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            // Half an output sample of timing error (odd blocks) is 0.03 at 300 Hz.
            assert!(err < 0.035, "max error {err} at {rate} Hz");
        }
    }

    #[test]
    fn residual_delay_is_under_half_a_sample() {
        for rate in [
            8000u32, 11025, 22050, 24000, 32000, 44100, 48000, 12345, 44101,
        ] {
            let f = 200.0;
            let y = resample_all(rate, &tone(f, rate, 1.0, 0.5), 333);
            assert_eq!(y.len(), 16000);
            let (mut s, mut c) = (0.0f64, 0.0f64);
            for (i, &v) in y[2000..14000].iter().enumerate() {
                let ph = 2.0 * std::f64::consts::PI * f as f64 * (i + 2000) as f64 / 16000.0;
                s += v as f64 * ph.sin();
                c += v as f64 * ph.cos();
            }
            let phase = c.atan2(s); // 0 when in phase with sin
            let delay = -phase / (2.0 * std::f64::consts::PI * f as f64) * 16000.0;
            assert!(
                delay.abs() <= 0.5,
                "{rate} Hz: residual delay {delay:.3} samples"
            );
        }
    }

    #[test]
    fn keeps_6k_and_removes_10k_at_48k() {
        let y = resample_all(48000, &tone(6000.0, 48000, 0.5, 0.5), 480);
        let a = amplitude_at(&y[800..7200], 6000.0);
        assert!((a - 0.5).abs() < 0.03, "6 kHz amp {a}");
        // 10 kHz would alias to 6 kHz if samples were merely dropped.
        let y = resample_all(48000, &tone(10000.0, 48000, 0.5, 0.5), 480);
        let rms = (y[800..7200].iter().map(|v| v * v).sum::<f32>() / 6400.0).sqrt();
        assert!(rms < 0.5 * 0.707 * 0.01, "10 kHz leaks: rms {rms}");
        // Just above the output Nyquist is also removed.
        let y = resample_all(44100, &tone(9000.0, 44100, 0.5, 0.5), 441);
        let rms = (y[800..7200].iter().map(|v| v * v).sum::<f32>() / 6400.0).sqrt();
        assert!(rms < 0.5 * 0.707 * 0.01, "9 kHz leaks: rms {rms}");
    }

    /// Gain in dB of a 0.5-amplitude tone at `f` Hz through the resampler from `rate`.
    fn gain_db(rate: u32, f: f32) -> f32 {
        let y = resample_all(rate, &tone(f, rate, 1.0, 0.5), 1000);
        let rms = (y[2000..14000].iter().map(|v| v * v).sum::<f32>() / 12000.0).sqrt();
        20.0 * (rms / (0.5 / 2f32.sqrt())).log10()
    }

    #[test]
    fn band_edges() {
        // Pass band: the telephone band at 8 kHz, up to 7.5 kHz from wideband rates.
        for (rate, f) in [
            (8000, 3400.0),
            (48000, 7000.0),
            (44100, 7500.0),
            (22050, 7500.0),
        ] {
            let g = gain_db(rate, f);
            assert!(g.abs() < 0.2, "{f} Hz from {rate} Hz: {g:.1} dB");
        }
        // Stop band: just below and above the 8 kHz output Nyquist (would alias otherwise).
        for (rate, f) in [
            (48000, 7900.0),
            (48000, 8500.0),
            (44100, 9000.0),
            (22050, 8100.0),
        ] {
            let g = gain_db(rate, f);
            assert!(g < -50.0, "{f} Hz from {rate} Hz: {g:.1} dB");
        }
    }

    #[test]
    fn reusable_after_flush() {
        let x = tone(500.0, 8000, 0.2, 0.5);
        let mut r = Resampler::new(8000).expect("ok");
        let mut a = Vec::new();
        r.process_into(&x, &mut a);
        r.flush_into(&mut a);
        let mut b = Vec::new();
        r.process_into(&x, &mut b);
        r.flush_into(&mut b);
        assert_eq!(a, b);
    }

    /// Out-of-range and non-finite input (which made rubato panic when a WAV file carried
    /// it) is clipped or zeroed, at every rate, passthrough included.
    #[test]
    fn wild_samples_are_clipped_not_a_panic() {
        let wild = [f32::MAX, f32::NAN, f32::NEG_INFINITY, -3e38, 0.5, 2.0];
        for rate in [8000, 16000, 44100, 48000] {
            let mut r = Resampler::new(rate).expect("supported rate");
            let mut out = Vec::new();
            for _ in 0..200 {
                r.process_into(&wild, &mut out);
            }
            r.flush_into(&mut out);
            assert!(!out.is_empty());
            assert!(
                out.iter().all(|v| v.is_finite() && v.abs() <= 2.0),
                "{rate}"
            );
        }
        let mut r = Resampler::new(16000).unwrap();
        let mut out = Vec::new();
        r.process_into(&wild, &mut out);
        assert_eq!(out, [1.0, 0.0, 0.0, -1.0, 0.5, 1.0]);
    }
}
