//! F0 and periodicity of one analysis window: YIN's cumulative-mean-normalised difference
//! function (CMNDF), with the difference computed from an FFT autocorrelation.
//!
//! For a window `x` of `N` samples and lag `τ`, with `r(τ) = Σ x[j]·x[j+τ]` over the overlap
//! and `a(τ)`, `b(τ)` the energies of the two overlapping parts,
//! `dn(τ) = (a + b − 2r) / (a + b) = 1 − ρ(τ)`, where `ρ` is a normalised autocorrelation
//! (1 for a perfectly periodic signal at its period, about 0 for noise). Normalising by the
//! overlap's own energy removes the bias of plain YIN towards long lags (octave-down errors)
//! and makes the result independent of level. YIN's CMNDF `c(τ) = dn(τ)·τ / Σ_{k≤τ} dn(k)`
//! then lets an absolute threshold pick the *first* clear dip, the shortest period, rather
//! than the global minimum, which is YIN's protection against octave-down errors. Against
//! octave-up errors (a strong harmonic making the first dip fall at T/2 or T/3), a multiple
//! of the lag that is much more periodic replaces it, and a causal continuity rule keeps to
//! the previous frame's F0 across an octave jump that the evidence does not clearly support.
//! Parabolic interpolation of `dn` refines the lag to a fraction of a sample. Because this
//! works on periodicity rather than on spectral peaks, a missing fundamental (telephone
//! audio band-limited to 300–3400 Hz) does not matter.

use realfft::num_complex::Complex;

use super::DspPlan;

/// Margin of aperiodicity (`dn = 1 − ρ`) by which a longer lag must beat a shorter one to
/// replace it; below it the two are the same period up to noise.
const CLEARLY_BETTER: f32 = 0.02;

/// Per-stream scratch for [`estimate`]; sized once from the plan.
pub(crate) struct PitchScratch {
    /// Zero-padded window, FFT input (destroyed by the FFT).
    fft_in: Vec<f32>,
    /// Spectrum, then power spectrum.
    spectrum: Vec<Complex<f32>>,
    /// Autocorrelation, `r[τ]` for τ in 0..fft_len.
    acf: Vec<f32>,
    fwd_scratch: Vec<Complex<f32>>,
    inv_scratch: Vec<Complex<f32>>,
    /// Prefix sums of x², length N + 1.
    cum_energy: Vec<f64>,
    /// `dn(τ)` for τ in 0..=tau_max.
    dn: Vec<f32>,
    /// CMNDF `c(τ)` for τ in 0..=tau_max.
    cmndf: Vec<f32>,
}

impl PitchScratch {
    pub(crate) fn new(plan: &DspPlan) -> Self {
        Self {
            fft_in: plan.ac_fwd.make_input_vec(),
            spectrum: plan.ac_fwd.make_output_vec(),
            acf: plan.ac_inv.make_output_vec(),
            fwd_scratch: plan.ac_fwd.make_scratch_vec(),
            inv_scratch: plan.ac_inv.make_scratch_vec(),
            cum_energy: vec![0.0; plan.window_len + 1],
            dn: vec![1.0; plan.tau_max + 2],
            cmndf: vec![1.0; plan.tau_max + 2],
        }
    }
}

/// Result of [`estimate`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct PitchEstimate {
    /// Best period candidate, Hz (reported whether or not the frame is voiced).
    pub f0_hz: f32,
    /// Normalised autocorrelation at the chosen lag, 0..1.
    pub periodicity: f32,
    /// CMNDF at the chosen lag (lower = more periodic).
    pub cmndf: f32,
}

/// Linear autocorrelation `acf[τ] = Σ_j x[j]·x[j+τ]` of `x` (length ≤ window_len) via the
/// plan's FFT. Valid for τ ≤ fft_len − len(x); `scratch.acf` holds the result.
pub(crate) fn autocorrelation(plan: &DspPlan, x: &[f32], s: &mut PitchScratch) -> bool {
    let n = x.len().min(s.fft_in.len());
    s.fft_in[..n].copy_from_slice(&x[..n]);
    s.fft_in[n..].fill(0.0);
    if plan
        .ac_fwd
        .process_with_scratch(&mut s.fft_in, &mut s.spectrum, &mut s.fwd_scratch)
        .is_err()
    {
        return false;
    }
    let scale = 1.0 / plan.fft_len as f32;
    for c in s.spectrum.iter_mut() {
        *c = Complex::new(c.norm_sqr() * scale, 0.0);
    }
    plan.ac_inv
        .process_with_scratch(&mut s.spectrum, &mut s.acf, &mut s.inv_scratch)
        .is_ok()
}

/// Lowest value of `v` within `radius` of `centre`, restricted to `lo..=hi`: (index, value).
fn local_min(
    v: &[f32],
    centre: usize,
    radius: usize,
    lo: usize,
    hi: usize,
) -> Option<(usize, f32)> {
    let a = centre.saturating_sub(radius).max(lo);
    let b = (centre + radius).min(hi).min(v.len().saturating_sub(1));
    if a > b {
        return None;
    }
    v[a..=b]
        .iter()
        .enumerate()
        .min_by(|x, y| x.1.total_cmp(y.1))
        .map(|(i, &val)| (a + i, val))
}

/// Estimates the period of `x` (one analysis window, DC already removed). `prev_f0_hz` is
/// the previous frame's F0 when it was voiced: a continuity hint against octave jumps.
pub(crate) fn estimate(
    plan: &DspPlan,
    x: &[f32],
    prev_f0_hz: Option<f32>,
    s: &mut PitchScratch,
) -> PitchEstimate {
    let n = x.len();
    let tau_max = plan.tau_max.min(n.saturating_sub(2));
    let tau_min = plan.tau_min.max(2);
    if tau_max <= tau_min + 1 || !autocorrelation(plan, x, s) {
        return PitchEstimate::default();
    }
    s.cum_energy[0] = 0.0;
    for (j, &v) in x.iter().enumerate() {
        s.cum_energy[j + 1] = s.cum_energy[j] + f64::from(v) * f64::from(v);
    }
    let total = s.cum_energy[n];

    // dn(τ) and the CMNDF in one pass.
    s.dn[0] = 0.0;
    s.cmndf[0] = 1.0;
    let mut running = 0.0f64;
    for tau in 1..=tau_max + 1 {
        let a = s.cum_energy[n - tau];
        let b = total - s.cum_energy[tau];
        let ab = a + b;
        let dn = if ab > 1e-20 {
            (1.0 - 2.0 * f64::from(s.acf[tau]) / ab).clamp(0.0, 2.0)
        } else {
            1.0
        };
        s.dn[tau] = dn as f32;
        running += dn;
        s.cmndf[tau] = if running > 0.0 {
            (dn * tau as f64 / running) as f32
        } else {
            1.0
        };
    }

    let c = &s.cmndf;
    // First dip under the absolute threshold, followed down to its local minimum.
    let mut best = None;
    let mut tau = tau_min;
    while tau <= tau_max {
        if c[tau] < plan.config.dip_threshold {
            while tau < tau_max && c[tau + 1] < c[tau] {
                tau += 1;
            }
            best = Some(tau);
            break;
        }
        tau += 1;
    }
    let first = match best {
        Some(t) => t,
        None => {
            // No clear dip: take the global minimum, but prefer a shorter period (τ/2, τ/3)
            // that is nearly as good, since the global minimum of a weakly periodic frame
            // falls on a multiple of the period as often as on the period.
            let (mut g, mut gv) = (tau_min, f32::INFINITY);
            for (t, &v) in c.iter().enumerate().take(tau_max + 1).skip(tau_min) {
                if v < gv {
                    g = t;
                    gv = v;
                }
            }
            let mut chosen = g;
            for k in [3usize, 2] {
                let centre = (g as f32 / k as f32).round() as usize;
                if let Some((t, v)) = local_min(c, centre, 1, tau_min, tau_max) {
                    if v < gv + plan.config.octave_margin {
                        chosen = t;
                        break;
                    }
                }
            }
            chosen
        }
    };

    // The first dip can fall on a fraction of the period when a strong harmonic makes the
    // signal nearly repeat after T/2 or T/3 (tense or angry voices). A multiple of the lag
    // that is much more periodic (dn below `octave_ratio` of this lag's, and clearly lower
    // in absolute terms, as a pure tone is equally periodic at every multiple) is the period.
    let mut tau = first;
    let base = s.dn[tau];
    for k in [2usize, 3] {
        if let Some((t, v)) = local_min(&s.dn, tau * k, k, tau_min, tau_max) {
            if v < base * plan.config.octave_ratio && base - v > CLEARLY_BETTER {
                tau = t;
                break;
            }
        }
    }

    // Continuity: when this lag is an octave (or a twelfth) away from the previous frame's
    // F0, prefer the lag that continues the track if it is nearly as periodic (jump down:
    // within `continuity_slack`) or clearly more periodic (jump up: every multiple of a
    // period is also a period, so a real upward jump leaves the old lag just as periodic).
    if let Some(prev) = prev_f0_hz.filter(|p| *p > 0.0) {
        let ratio = plan.sample_rate_hz / tau as f32 / prev;
        let base = s.dn[tau];
        let near = |r: f32, k: f32| (r / k - 1.0).abs() < 0.2;
        let alternative = if near(ratio, 2.0) || near(ratio, 3.0) {
            let k = ratio.round() as usize;
            local_min(&s.dn, tau * k, k, tau_min, tau_max)
                .filter(|&(_, v)| v < base - CLEARLY_BETTER)
        } else if near(ratio, 0.5) {
            local_min(&s.dn, tau / 2, 1, tau_min, tau_max)
                .filter(|&(_, v)| v < base + plan.config.continuity_slack)
        } else {
            None
        };
        if let Some((t, _)) = alternative {
            tau = t;
        }
    }

    // Parabolic refinement on dn (less biased than on the CMNDF).
    let (y0, y1, y2) = (s.dn[tau - 1], s.dn[tau], s.dn[tau + 1]);
    let denom = y0 - 2.0 * y1 + y2;
    let (shift, dn_at) = if denom > 1e-9 {
        let d = (0.5 * (y0 - y2) / denom).clamp(-0.5, 0.5);
        (d, y1 - 0.25 * (y0 - y2) * d)
    } else {
        (0.0, y1)
    };
    let period = tau as f32 + shift;
    PitchEstimate {
        f0_hz: plan.sample_rate_hz / period,
        periodicity: (1.0 - dn_at).clamp(0.0, 1.0),
        cmndf: s.cmndf[tau],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_autocorrelation_matches_direct_sum() {
        let plan = DspPlan::new();
        let mut s = PitchScratch::new(&plan);
        let mut state = 0x9E37_79B9u32;
        let x: Vec<f32> = (0..plan.window_len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect();
        assert!(autocorrelation(&plan, &x, &mut s));
        let r0: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        for tau in 0..=plan.tau_max + 1 {
            let direct: f64 = (0..x.len() - tau)
                .map(|j| f64::from(x[j]) * f64::from(x[j + tau]))
                .sum();
            let err = (f64::from(s.acf[tau]) - direct).abs();
            // Relative to r(0), the scale every lag is normalised by (well inside 1e-3).
            assert!(
                err <= 1e-4 * r0,
                "lag {tau}: fft {} direct {direct}",
                s.acf[tau]
            );
        }
    }
}
