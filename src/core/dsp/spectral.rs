//! Spectral shape of the central 25 ms of a frame: centroid, flatness, roll-off, slope and
//! band energies, from one Hann-windowed real FFT.

use realfft::num_complex::Complex;

use super::{DspPlan, BAND_EDGES_HZ, N_MEL_FILTERS, N_MFCC};

/// Per-stream scratch for [`analyze`].
pub(crate) struct SpectralScratch {
    fft_in: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// One-sided power spectrum, bins 0..=fft_len/2.
    power: Vec<f32>,
}

impl SpectralScratch {
    pub(crate) fn new(plan: &DspPlan) -> Self {
        Self {
            fft_in: plan.spec_fwd.make_input_vec(),
            spectrum: plan.spec_fwd.make_output_vec(),
            scratch: plan.spec_fwd.make_scratch_vec(),
            power: vec![0.0; plan.spec_fft_len / 2 + 1],
        }
    }
}

/// Spectral features of one window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Spectral {
    pub centroid_hz: f32,
    pub flatness: f32,
    pub rolloff_hz: f32,
    pub slope_db_per_khz: f32,
    pub band_energy_db: [f32; 4],
    pub mfcc: [f32; N_MFCC],
    /// Mel filter levels, dB, on the same scale as the frame level (`power_db`).
    pub mel_db: [f32; N_MEL_FILTERS],
}

/// Power below which a band is treated as empty (about -150 dB re full scale per bin).
const EMPTY_POWER: f32 = 1e-15;

/// Analyses `x` (the spectral window, `plan.spec_window.len()` samples) whose mean square
/// is `mean_square` (full scale sine = 0.5).
pub(crate) fn analyze(
    plan: &DspPlan,
    x: &[f32],
    mean_square: f32,
    s: &mut SpectralScratch,
) -> Spectral {
    let w = &plan.spec_window;
    for ((dst, &v), &win) in s.fft_in.iter_mut().zip(x).zip(w.iter()) {
        *dst = v * win;
    }
    s.fft_in[w.len().min(x.len())..].fill(0.0);
    if plan
        .spec_fwd
        .process_with_scratch(&mut s.fft_in, &mut s.spectrum, &mut s.scratch)
        .is_err()
    {
        return Spectral::default();
    }
    for (p, c) in s.power.iter_mut().zip(&s.spectrum) {
        *p = c.norm_sqr();
    }
    let bin_hz = plan.sample_rate_hz / plan.spec_fft_len as f32;
    let mut out = Spectral::default();

    // Band energies: each band's share of the frame's level, dBFS.
    let total: f32 = s.power.iter().sum();
    for (b, e) in out.band_energy_db.iter_mut().enumerate() {
        let lo = (BAND_EDGES_HZ[b] / bin_hz).round() as usize;
        let hi = ((BAND_EDGES_HZ[b + 1] / bin_hz).round() as usize).min(s.power.len());
        let band: f32 = s.power[lo.min(hi)..hi].iter().sum();
        *e = if total > EMPTY_POWER {
            power_db(mean_square * band / total)
        } else {
            super::ENERGY_FLOOR_DB
        };
    }

    // Shape features over the configured band (telephone band by default).
    let (lo, hi) = plan.spec_band_bins;
    let band = &s.power[lo..=hi];
    let sum: f32 = band.iter().sum();
    if sum <= EMPTY_POWER * band.len() as f32 {
        return out;
    }
    // Mel cepstrum: log filter-bank energies (floored 100 dB under the band's mean power,
    // so near-empty filters do not dominate), then the DCT.
    let mut log_mel = [0.0f32; N_MEL_FILTERS];
    let mel_floor = sum / band.len() as f32 * 1e-10;
    for (lm, (first, w)) in log_mel.iter_mut().zip(&plan.mel_filters) {
        let e: f32 = s.power[*first..].iter().zip(w).map(|(p, w)| p * w).sum();
        *lm = e.max(mel_floor).ln();
    }
    // On the frame level's scale: the window's power sums to `mean_square` over all bins.
    let to_level = mean_square / total.max(EMPTY_POWER);
    for (db, lm) in out.mel_db.iter_mut().zip(&log_mel) {
        *db = power_db(lm.exp() * to_level);
    }
    for (c, row) in out.mfcc.iter_mut().zip(&plan.dct) {
        *c = row.iter().zip(&log_mel).map(|(a, b)| a * b).sum();
    }
    let mut weighted = 0.0f32;
    let mut log_sum = 0.0f32;
    // Least-squares line through (f in kHz, power in dB).
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    let floor = sum / band.len() as f32 * 1e-10;
    for (i, &p) in band.iter().enumerate() {
        let f = (lo + i) as f32 * bin_hz;
        weighted += f * p;
        let p = p.max(floor);
        let ln = p.ln();
        log_sum += ln;
        let khz = f / 1000.0;
        let db = ln * (10.0 / std::f32::consts::LN_10);
        sx += khz;
        sy += db;
        sxx += khz * khz;
        sxy += khz * db;
    }
    let n = band.len() as f32;
    out.centroid_hz = weighted / sum;
    let arith = sum / n;
    out.flatness = ((log_sum / n).exp() / arith).clamp(0.0, 1.0);
    let var = n * sxx - sx * sx;
    out.slope_db_per_khz = if var > 0.0 {
        (n * sxy - sx * sy) / var
    } else {
        0.0
    };
    let target = 0.85 * sum;
    let mut acc = 0.0;
    out.rolloff_hz = (hi as f32) * bin_hz;
    for (i, &p) in band.iter().enumerate() {
        acc += p;
        if acc >= target {
            out.rolloff_hz = (lo + i) as f32 * bin_hz;
            break;
        }
    }
    out
}

/// 10·log10 of a power, floored at [`super::ENERGY_FLOOR_DB`].
pub(crate) fn power_db(p: f32) -> f32 {
    if p > 0.0 {
        (10.0 * p.log10()).max(super::ENERGY_FLOOR_DB)
    } else {
        super::ENERGY_FLOOR_DB
    }
}
