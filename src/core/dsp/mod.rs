//! Frame analysis of 16 kHz mono audio on 10 ms hops: level, F0 and voicing, spectral shape.
//!
//! - [`DspPlan`]: FFT plans and derived sizes; build once per process, share via `Arc`.
//! - [`FrameAnalyzer`]: one per stream; owns a ring of input samples and every scratch
//!   buffer, so the per-frame path does not allocate.
//! - [`Frame`]: the features of one 10 ms frame.
//!
//! # Timing
//!
//! Frame `i` is centred on input sample `i * HOP` (time `i * 10 ms`). Its pitch window spans
//! three periods of the lowest F0 (50 ms at the default 60 Hz), centred on the frame, with
//! zeros before the stream start. A frame can only be computed once the samples up to half a
//! window after its centre have arrived, so frames come out with a lookahead of
//! [`FrameAnalyzer::lookahead_samples`] (400 samples = 25 ms by default) behind the input.
//! [`FrameAnalyzer::flush_into`] ends a stream, emitting the frames whose centres lie inside
//! it (`ceil(len / HOP)` in all), with zeros after the end.
//!
//! # Windows
//!
//! - Pitch: the whole window (rectangular, DC removed), YIN/CMNDF via an FFT autocorrelation
//!   (see `pitch.rs`).
//! - Level, zero-crossing rate and spectrum: the central 25 ms (400 samples); the spectrum
//!   through a Hann window and a 512-point FFT (31.25 Hz bins).

mod pitch;
pub mod resample;
mod spectral;

use std::io::Write;
use std::sync::Arc;

use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::{HOP, SAMPLE_RATE};

/// Lowest level reported, dBFS; digital silence reads this.
pub const ENERGY_FLOOR_DB: f32 = -100.0;
/// HNR is clamped to this range, dB.
pub const HNR_RANGE_DB: (f32, f32) = (-20.0, 40.0);
/// Edges of [`Frame::band_energy_db`]'s bands, Hz: 0–500, 500–1000, 1000–2000, 2000–4000.
pub const BAND_EDGES_HZ: [f32; 5] = [0.0, 500.0, 1000.0, 2000.0, 4000.0];
/// Mel-cepstral coefficients per frame (c1..c12; c0, the level, is left out so that the
/// cepstra do not depend on the channel gain).
pub const N_MFCC: usize = 12;
/// Triangular mel filters over the spectral band, whose log energies the cepstra transform.
pub const N_MEL_FILTERS: usize = 20;
/// Length of the level/spectrum window, samples (25 ms).
pub const SPECTRAL_WINDOW: usize = 400;
/// FFT length of the spectral features (31.25 Hz bins at 16 kHz).
const SPECTRAL_FFT: usize = 512;

/// Default lowest F0 searched, Hz.
pub const DEFAULT_F0_MIN_HZ: f32 = 60.0;
/// Default highest F0 searched, Hz.
pub const DEFAULT_F0_MAX_HZ: f32 = 500.0;
/// Default CMNDF threshold under which the first dip is taken as the period.
pub const DEFAULT_DIP_THRESHOLD: f32 = 0.15;
/// Default slack by which a shorter period may be worse than the global CMNDF minimum and
/// still be preferred when no dip passes the threshold.
pub const DEFAULT_OCTAVE_MARGIN: f32 = 0.05;
/// Default ratio under which a multiple (2×, 3×) of the first-dip lag replaces it: the
/// multiple's aperiodicity `1 − ρ` must be below this fraction of the first dip's.
pub const DEFAULT_OCTAVE_RATIO: f32 = 0.5;
/// Default slack of the continuity rule: a lag matching the previous frame's F0 wins over
/// an octave drop when its aperiodicity `1 − ρ` is at most this much worse.
pub const DEFAULT_CONTINUITY_SLACK: f32 = 0.1;
/// Default minimum periodicity (normalised autocorrelation at the period) of a voiced frame.
pub const DEFAULT_VOICING_THRESHOLD: f32 = 0.5;
/// Default level below which a frame is never voiced, dBFS.
pub const DEFAULT_SILENCE_DB: f32 = -55.0;
/// Default gate relative to the stream's recent peak level: frames more than this far below
/// it are never voiced, dB. Tuned against Praat on real speech (see `tools/f0_reference.py`):
/// it removes weak, breathy frames at the edges of voicing that Praat calls unvoiced.
pub const DEFAULT_RELATIVE_SILENCE_DB: f32 = 20.0;
/// Default release of the recent-peak level tracker, dB per second.
pub const DEFAULT_LEVEL_DECAY_DB_PER_S: f32 = 3.0;
/// Default band of the spectral shape features, Hz: the telephone band, so features of
/// wideband recordings (training corpora) and of 8 kHz calls are comparable.
pub const DEFAULT_SPECTRAL_BAND_HZ: (f32, f32) = (300.0, 3400.0);

/// Tunable analysis settings. [`Default`] gives the documented defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DspConfig {
    /// Lowest F0 searched, Hz (20..). Sets the pitch window: three periods of it.
    pub f0_min_hz: f32,
    /// Highest F0 searched, Hz (above `f0_min_hz`, at most 2000).
    pub f0_max_hz: f32,
    /// CMNDF value (0..1) under which the first dip is taken as the period.
    pub dip_threshold: f32,
    /// CMNDF slack (0..1) for preferring half or a third of the period when no dip passes.
    pub octave_margin: f32,
    /// Fraction (0..1) of the first dip's aperiodicity under which twice or three times
    /// its lag is taken instead (0 disables the check).
    pub octave_ratio: f32,
    /// Slack (0..1) by which a lag that continues the previous frame's F0 may be less
    /// periodic than an octave drop and still win. (Octave rises are only undone when the
    /// continuing lag is clearly more periodic.)
    pub continuity_slack: f32,
    /// Minimum periodicity (0..1) of a voiced frame.
    pub voicing_threshold: f32,
    /// Frames below this level (dBFS, over the central 25 ms) are never voiced.
    pub silence_db: f32,
    /// Frames more than this many dB below the stream's recent peak level are never voiced
    /// (> 0; a large value such as 200 disables the gate).
    pub relative_silence_db: f32,
    /// How fast the recent peak level falls back after a loud passage, dB per second (≥ 0).
    pub level_decay_db_per_s: f32,
    /// Band (low, high) of centroid, flatness, roll-off and slope, Hz, within 0..8000.
    pub spectral_band_hz: (f32, f32),
}

impl Default for DspConfig {
    fn default() -> Self {
        Self {
            f0_min_hz: DEFAULT_F0_MIN_HZ,
            f0_max_hz: DEFAULT_F0_MAX_HZ,
            dip_threshold: DEFAULT_DIP_THRESHOLD,
            octave_margin: DEFAULT_OCTAVE_MARGIN,
            octave_ratio: DEFAULT_OCTAVE_RATIO,
            continuity_slack: DEFAULT_CONTINUITY_SLACK,
            voicing_threshold: DEFAULT_VOICING_THRESHOLD,
            silence_db: DEFAULT_SILENCE_DB,
            relative_silence_db: DEFAULT_RELATIVE_SILENCE_DB,
            level_decay_db_per_s: DEFAULT_LEVEL_DECAY_DB_PER_S,
            spectral_band_hz: DEFAULT_SPECTRAL_BAND_HZ,
        }
    }
}

/// An invalid [`DspConfig`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DspError {
    /// F0 range not within 20..=2000 Hz with min < max.
    #[error("invalid F0 range {min_hz}..{max_hz} Hz (need 20 <= min < max <= 2000)")]
    InvalidF0Range {
        /// Lowest F0, Hz.
        min_hz: f32,
        /// Highest F0, Hz.
        max_hz: f32,
    },
    /// A threshold outside 0..=1.
    #[error("{name} = {value} is outside 0..=1")]
    InvalidThreshold {
        /// Field name.
        name: &'static str,
        /// Value given.
        value: f32,
    },
    /// A level setting out of range.
    #[error("{name} = {value} dB is out of range (need > 0, or >= 0 for the decay)")]
    InvalidLevel {
        /// Field name.
        name: &'static str,
        /// Value given.
        value: f32,
    },
    /// Spectral band not within 0..8000 Hz with low < high.
    #[error("invalid spectral band {low_hz}..{high_hz} Hz (need 0 <= low < high <= 8000)")]
    InvalidBand {
        /// Low edge, Hz.
        low_hz: f32,
        /// High edge, Hz.
        high_hz: f32,
    },
}

/// FFT plans and sizes shared by every stream; build once per process.
pub struct DspPlan {
    pub(crate) config: DspConfig,
    pub(crate) sample_rate_hz: f32,
    /// Pitch window length, samples (even).
    pub(crate) window_len: usize,
    /// Shortest / longest lag searched, samples.
    pub(crate) tau_min: usize,
    pub(crate) tau_max: usize,
    /// Autocorrelation FFT length (2,3,5-smooth, ≥ window + tau_max + 2).
    pub(crate) fft_len: usize,
    pub(crate) ac_fwd: Arc<dyn RealToComplex<f32>>,
    pub(crate) ac_inv: Arc<dyn ComplexToReal<f32>>,
    pub(crate) spec_fft_len: usize,
    pub(crate) spec_fwd: Arc<dyn RealToComplex<f32>>,
    /// Hann window of [`SPECTRAL_WINDOW`] samples.
    pub(crate) spec_window: Vec<f32>,
    /// Inclusive FFT bin range of the spectral shape band.
    pub(crate) spec_band_bins: (usize, usize),
    /// Mel filter bank over the spectral band: first bin and weights of each filter.
    pub(crate) mel_filters: Vec<(usize, Vec<f32>)>,
    /// DCT-II basis, `N_MFCC` rows of `N_MEL_FILTERS` (rows for c1..c12).
    pub(crate) dct: Vec<[f32; N_MEL_FILTERS]>,
}

impl std::fmt::Debug for DspPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DspPlan")
            .field("config", &self.config)
            .field("window_len", &self.window_len)
            .field("tau_min", &self.tau_min)
            .field("tau_max", &self.tau_max)
            .field("fft_len", &self.fft_len)
            .finish()
    }
}

impl DspPlan {
    /// Plans for the default [`DspConfig`].
    pub fn new() -> Arc<Self> {
        // The defaults are valid by construction (checked by a test).
        match Self::with_config(DspConfig::default()) {
            Ok(plan) => plan,
            Err(e) => unreachable!("default DSP config invalid: {e}"),
        }
    }

    /// Plans for `config`, after checking it.
    pub fn with_config(config: DspConfig) -> Result<Arc<Self>, DspError> {
        let (f0_min, f0_max) = (config.f0_min_hz, config.f0_max_hz);
        if !(f0_min >= 20.0 && f0_min < f0_max && f0_max <= 2000.0) {
            return Err(DspError::InvalidF0Range {
                min_hz: f0_min,
                max_hz: f0_max,
            });
        }
        for (name, value) in [
            ("dip_threshold", config.dip_threshold),
            ("octave_margin", config.octave_margin),
            ("octave_ratio", config.octave_ratio),
            ("continuity_slack", config.continuity_slack),
            ("voicing_threshold", config.voicing_threshold),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(DspError::InvalidThreshold { name, value });
            }
        }
        if config.relative_silence_db.is_nan() || config.relative_silence_db <= 0.0 {
            return Err(DspError::InvalidLevel {
                name: "relative_silence_db",
                value: config.relative_silence_db,
            });
        }
        if !(config.level_decay_db_per_s >= 0.0 && config.level_decay_db_per_s.is_finite()) {
            return Err(DspError::InvalidLevel {
                name: "level_decay_db_per_s",
                value: config.level_decay_db_per_s,
            });
        }
        if !config.silence_db.is_finite() {
            return Err(DspError::InvalidLevel {
                name: "silence_db",
                value: config.silence_db,
            });
        }
        let (lo_hz, hi_hz) = config.spectral_band_hz;
        if !(lo_hz >= 0.0 && lo_hz < hi_hz && hi_hz <= SAMPLE_RATE as f32 / 2.0) {
            return Err(DspError::InvalidBand {
                low_hz: lo_hz,
                high_hz: hi_hz,
            });
        }
        let fs = SAMPLE_RATE as f32;
        let tau_max = (fs / f0_min).ceil() as usize;
        let tau_min = ((fs / f0_max).floor() as usize).max(2);
        let window_len = ((3.0 * fs / f0_min).ceil() as usize).next_multiple_of(2);
        let window_len = window_len.max(SPECTRAL_WINDOW);
        let fft_len = smooth_fft_len(window_len + tau_max + 2);
        let mut planner = RealFftPlanner::<f32>::new();
        let ac_fwd = planner.plan_fft_forward(fft_len);
        let ac_inv = planner.plan_fft_inverse(fft_len);
        let spec_fwd = planner.plan_fft_forward(SPECTRAL_FFT);
        let spec_window = periodic_hann(SPECTRAL_WINDOW);
        let bin_hz = fs / SPECTRAL_FFT as f32;
        let lo_bin = (lo_hz / bin_hz).ceil() as usize;
        let hi_bin = ((hi_hz / bin_hz).floor() as usize)
            .min(SPECTRAL_FFT / 2)
            .max(lo_bin);
        let mel_filters = mel_filter_bank(lo_hz, hi_hz, bin_hz, SPECTRAL_FFT / 2 + 1);
        let dct = (1..=N_MFCC)
            .map(|k| {
                let mut row = [0.0f32; N_MEL_FILTERS];
                for (m, v) in row.iter_mut().enumerate() {
                    let ph = std::f32::consts::PI * k as f32 * (m as f32 + 0.5);
                    *v = (ph / N_MEL_FILTERS as f32).cos();
                }
                row
            })
            .collect();
        Ok(Arc::new(Self {
            mel_filters,
            dct,
            config,
            sample_rate_hz: fs,
            window_len,
            tau_min,
            tau_max,
            fft_len,
            ac_fwd,
            ac_inv,
            spec_fft_len: SPECTRAL_FFT,
            spec_fwd,
            spec_window,
            spec_band_bins: (lo_bin, hi_bin),
        }))
    }

    /// The configuration these plans were made for.
    pub fn config(&self) -> &DspConfig {
        &self.config
    }

    /// Pitch window length, samples.
    pub fn window_len(&self) -> usize {
        self.window_len
    }
}

/// [`N_MEL_FILTERS`] triangular filters equally spaced on the mel scale between `lo_hz` and
/// `hi_hz`, as (first bin, weights) over a one-sided spectrum of `bins` bins `bin_hz` apart.
fn mel_filter_bank(lo_hz: f32, hi_hz: f32, bin_hz: f32, bins: usize) -> Vec<(usize, Vec<f32>)> {
    let mel = |f: f32| 2595.0 * (1.0 + f / 700.0).log10();
    let hz = |m: f32| 700.0 * (10f32.powf(m / 2595.0) - 1.0);
    let (m_lo, m_hi) = (mel(lo_hz), mel(hi_hz));
    let edges: Vec<f32> = (0..N_MEL_FILTERS + 2)
        .map(|i| hz(m_lo + (m_hi - m_lo) * i as f32 / (N_MEL_FILTERS + 1) as f32))
        .collect();
    (0..N_MEL_FILTERS)
        .map(|m| {
            let (l, c, r) = (edges[m], edges[m + 1], edges[m + 2]);
            let first = ((l / bin_hz).floor() as usize).min(bins - 1);
            let last = ((r / bin_hz).ceil() as usize).min(bins - 1);
            let weights = (first..=last)
                .map(|b| {
                    let f = b as f32 * bin_hz;
                    if f <= l || f >= r {
                        0.0
                    } else if f <= c {
                        (f - l) / (c - l)
                    } else {
                        (r - f) / (r - c)
                    }
                })
                .collect();
            (first, weights)
        })
        .collect()
}

/// A periodic Hann window of `n` samples (the STFT convention: `0.5 − 0.5·cos(2πi/n)`).
pub fn periodic_hann(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos())
        .collect()
}

/// Smallest even length ≥ `min` whose only prime factors are 2, 3 and 5: RustFFT is fast on
/// these, and it is much shorter than the next power of two (1080 vs 2048 by default).
fn smooth_fft_len(min: usize) -> usize {
    (min.next_multiple_of(2)..)
        .step_by(2)
        .find(|&m| {
            let mut r = m;
            for p in [2, 3, 5] {
                while r % p == 0 {
                    r /= p;
                }
            }
            r == 1
        })
        .unwrap_or(min.next_power_of_two())
}

/// Features of one 10 ms frame. Frame `i` is centred at time `i * 10 ms` from the stream
/// start.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Frame {
    /// RMS level over the central 25 ms, dBFS (full-scale sine ≈ -3.01), floored at -100.
    pub energy_db: f32,
    /// Fundamental frequency, Hz; 0.0 when unvoiced.
    pub f0_hz: f32,
    /// Periodicity 0..1: normalised autocorrelation at the best period candidate (reported
    /// for unvoiced frames too; 0 for silence).
    pub voicing: f32,
    /// Harmonics-to-noise ratio from the periodicity `r`: `10·log10(r / (1 − r))`, dB,
    /// clamped to [`HNR_RANGE_DB`].
    pub hnr_db: f32,
    /// Largest |sample| over one period centred on the frame (voiced) or over the central
    /// 10 ms (unvoiced); full scale = 1. For shimmer.
    pub peak_amp: f32,
    /// Power-weighted mean frequency within the spectral band, Hz (0 when the band is empty).
    pub spectral_centroid_hz: f32,
    /// Geometric / arithmetic mean of the power spectrum within the band, 0..1 (1 = white).
    pub spectral_flatness: f32,
    /// Frequency under which 85% of the band's power lies, Hz.
    pub spectral_rolloff_hz: f32,
    /// Least-squares slope of the power spectrum within the band, dB per kHz.
    pub spectral_slope_db_per_khz: f32,
    /// Zero crossings per sample over the central 25 ms (0..1).
    pub zcr: f32,
    /// Level of each band of [`BAND_EDGES_HZ`], dBFS: the band's share of `energy_db`.
    pub band_energy_db: [f32; 4],
    /// Mel-frequency cepstral coefficients c1..c12 over the spectral band (natural-log mel
    /// energies, unnormalised DCT-II); zeros when the band is empty.
    pub mfcc: [f32; N_MFCC],
    /// Level of each mel filter over the spectral band, dB re the frame's own level
    /// (`energy_db`): the shape of the spectral envelope, independent of gain; zeros when
    /// the band is empty.
    pub mel_rel_db: [f32; N_MEL_FILTERS],
}

/// Streaming frame analysis of one mono 16 kHz stream.
pub struct FrameAnalyzer {
    plan: Arc<DspPlan>,
    /// The last `window_len` input samples (virtual stream, starting with half a window of
    /// zeros); the oldest sits at `write_pos`.
    ring: Vec<f32>,
    write_pos: usize,
    /// Samples written to the virtual stream, including the leading zeros.
    written: u64,
    /// Index of the next frame to emit.
    next_frame: u64,
    /// Recent peak of `energy_db` (instant attack, linear release), dBFS.
    level_ref_db: f32,
    /// F0 of the previous frame when it was voiced (continuity hint).
    prev_f0_hz: Option<f32>,
    /// Linearised window of the current frame.
    window: Vec<f32>,
    /// Same, DC removed, for the pitch search.
    centred: Vec<f32>,
    pitch: pitch::PitchScratch,
    spectral: spectral::SpectralScratch,
}

impl std::fmt::Debug for FrameAnalyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameAnalyzer")
            .field("frames_emitted", &self.next_frame)
            .field("samples_in", &self.samples_in())
            .finish()
    }
}

impl FrameAnalyzer {
    /// A fresh analyzer for one stream.
    pub fn new(plan: Arc<DspPlan>) -> Self {
        let n = plan.window_len;
        Self {
            pitch: pitch::PitchScratch::new(&plan),
            spectral: spectral::SpectralScratch::new(&plan),
            ring: vec![0.0; n],
            write_pos: n / 2,
            written: (n / 2) as u64,
            next_frame: 0,
            level_ref_db: ENERGY_FLOOR_DB,
            prev_f0_hz: None,
            window: vec![0.0; n],
            centred: vec![0.0; n],
            plan,
        }
    }

    /// Frames emitted so far.
    pub fn frames_emitted(&self) -> u64 {
        self.next_frame
    }

    /// Input samples received so far.
    pub fn samples_in(&self) -> u64 {
        self.written - (self.plan.window_len / 2) as u64
    }

    /// How far the input runs ahead of the newest frame's centre when it is emitted,
    /// samples (half the pitch window).
    pub fn lookahead_samples(&self) -> usize {
        self.plan.window_len / 2
    }

    /// Feeds 16 kHz samples; appends one [`Frame`] per completed hop to `out`.
    /// Does not allocate, apart from growing `out`.
    pub fn push_into(&mut self, samples: &[f32], out: &mut Vec<Frame>) {
        let n = self.plan.window_len;
        let mut rest = samples;
        while !rest.is_empty() {
            let frame_end = self.next_frame * HOP as u64 + n as u64;
            let need = usize::try_from(frame_end - self.written).unwrap_or(usize::MAX);
            let take = need.min(rest.len());
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            // Copy into the ring in at most two pieces.
            let first = chunk.len().min(n - self.write_pos);
            self.ring[self.write_pos..self.write_pos + first].copy_from_slice(&chunk[..first]);
            self.ring[..chunk.len() - first].copy_from_slice(&chunk[first..]);
            self.write_pos = (self.write_pos + chunk.len()) % n;
            self.written += take as u64;
            if take == need {
                out.push(self.analyze_frame());
                self.next_frame += 1;
            }
        }
    }

    /// Ends the stream: emits the remaining frames whose centres lie inside the input (so
    /// `ceil(len / HOP)` frames in all), analysing zeros past the end, then resets the
    /// analyzer for a new stream.
    pub fn flush_into(&mut self, out: &mut Vec<Frame>) {
        const ZEROS: [f32; HOP] = [0.0; HOP];
        let target = self.samples_in().div_ceil(HOP as u64);
        while self.next_frame < target {
            self.push_into(&ZEROS, out);
        }
        self.reset();
    }

    /// Forgets the stream: the next sample is time 0 again.
    pub fn reset(&mut self) {
        let n = self.plan.window_len;
        self.ring.fill(0.0);
        self.write_pos = n / 2;
        self.written = (n / 2) as u64;
        self.next_frame = 0;
        self.level_ref_db = ENERGY_FLOOR_DB;
        self.prev_f0_hz = None;
    }

    /// Convenience for whole clips: all frames of `samples` (16 kHz), `ceil(len / HOP)`.
    pub fn analyze(plan: Arc<DspPlan>, samples: &[f32]) -> Vec<Frame> {
        let mut a = FrameAnalyzer::new(plan);
        let mut out = Vec::with_capacity(samples.len() / HOP + 1);
        a.push_into(samples, &mut out);
        a.flush_into(&mut out);
        out
    }

    /// Computes the frame whose window is now complete in the ring.
    fn analyze_frame(&mut self) -> Frame {
        let plan = &*self.plan;
        let n = plan.window_len;
        let split = n - self.write_pos;
        self.window[..split].copy_from_slice(&self.ring[self.write_pos..]);
        self.window[split..].copy_from_slice(&self.ring[..self.write_pos]);
        let w = &self.window;
        let mid = n / 2;
        let central = &w[mid - SPECTRAL_WINDOW / 2..mid + SPECTRAL_WINDOW / 2];

        let mean_square = central.iter().map(|v| v * v).sum::<f32>() / central.len() as f32;
        let energy_db = spectral::power_db(mean_square);
        let crossings = central
            .windows(2)
            .filter(|p| (p[0] >= 0.0) != (p[1] >= 0.0))
            .count();
        let zcr = crossings as f32 / (central.len() - 1) as f32;

        let mean = w.iter().sum::<f32>() / n as f32;
        let mut window_energy = 0.0f32;
        for (c, &v) in self.centred.iter_mut().zip(w.iter()) {
            *c = v - mean;
            window_energy += *c * *c;
        }
        // Skip the search on (near) digital silence: nothing to find, and it keeps silence
        // exactly reproducible.
        let est = if window_energy > 1e-10 * n as f32 {
            pitch::estimate(plan, &self.centred, self.prev_f0_hz, &mut self.pitch)
        } else {
            pitch::PitchEstimate::default()
        };
        let cfg = &plan.config;
        let decay = cfg.level_decay_db_per_s * HOP as f32 / plan.sample_rate_hz;
        self.level_ref_db = energy_db.max(self.level_ref_db - decay);
        let voiced = energy_db > cfg.silence_db
            && energy_db > self.level_ref_db - cfg.relative_silence_db
            && est.periodicity >= cfg.voicing_threshold
            && est.f0_hz >= cfg.f0_min_hz * 0.99
            && est.f0_hz <= cfg.f0_max_hz * 1.01;
        let f0_hz = if voiced { est.f0_hz } else { 0.0 };
        self.prev_f0_hz = voiced.then_some(f0_hz);

        let r = est.periodicity;
        let hnr_db = if r <= 0.0 {
            HNR_RANGE_DB.0
        } else if r >= 1.0 {
            HNR_RANGE_DB.1
        } else {
            (10.0 * (r / (1.0 - r)).log10()).clamp(HNR_RANGE_DB.0, HNR_RANGE_DB.1)
        };

        let half = if voiced {
            ((plan.sample_rate_hz / f0_hz / 2.0).round() as usize).clamp(1, mid)
        } else {
            HOP / 2
        };
        let peak_amp = w[mid - half..(mid + half).min(n)]
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()));

        let spec = spectral::analyze(plan, central, mean_square, &mut self.spectral);
        Frame {
            energy_db,
            f0_hz,
            voicing: r,
            hnr_db,
            peak_amp,
            spectral_centroid_hz: spec.centroid_hz,
            spectral_flatness: spec.flatness,
            spectral_rolloff_hz: spec.rolloff_hz,
            spectral_slope_db_per_khz: spec.slope_db_per_khz,
            zcr,
            band_energy_db: spec.band_energy_db,
            mfcc: spec.mfcc,
            mel_rel_db: spec.mel_db.map(|m| m - energy_db),
        }
    }
}

/// Column header of [`frames_to_csv`].
pub const CSV_HEADER: &str = "time_s,f0_hz,energy_db,voicing,hnr_db,spectral_centroid_hz,\
spectral_flatness,spectral_rolloff_hz,spectral_slope_db_per_khz,zcr";

/// Writes frames as CSV (header, then one row per frame; `time_s` = frame index × 0.01).
pub fn frames_to_csv(frames: &[Frame], out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{CSV_HEADER}")?;
    for (i, f) in frames.iter().enumerate() {
        writeln!(
            out,
            "{}.{:02},{:.2},{:.2},{:.3},{:.2},{:.1},{:.4},{:.1},{:.3},{:.4}",
            i / 100,
            i % 100,
            f.f0_hz,
            f.energy_db,
            f.voicing,
            f.hnr_db,
            f.spectral_centroid_hz,
            f.spectral_flatness,
            f.spectral_rolloff_hz,
            f.spectral_slope_db_per_khz,
            f.zcr
        )?;
    }
    Ok(())
}
