//! Per-utterance prosodic features and the speaker's running baseline.
//!
//! Sans-I/O: features come from the utterance's [`Frame`]s and the
//! endpointer's per-frame activity. Jitter and shimmer here are frame-level
//! approximations (variation of the 10 ms F0 period and peak amplitude between
//! consecutive voiced frames), not Praat's cycle-to-cycle measures: they move
//! the same way but read lower.
use crate::core::dsp::Frame;
use crate::proto;

/// Reference for semitone values, Hz.
pub const SEMITONE_REF_HZ: f32 = 100.0;
/// Smallest prominence of an energy peak counted as a syllable nucleus, dB.
const NUCLEUS_PROMINENCE_DB: f32 = 2.0;
/// Shortest spacing between syllable nuclei, frames (10 ms).
const NUCLEUS_MIN_GAP: usize = 8;
/// Baselines need this many earlier utterances before z-scores are reported.
pub const MIN_BASELINE_N: u32 = 2;

/// Prosodic features of one utterance (the `Prosody` message minus the
/// cross-channel and baseline fields, which the call fills in).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Features {
    /// Hz, over voiced frames (0 when none).
    pub f0_mean_hz: f32,
    pub f0_sd_hz: f32,
    /// 5th to 95th percentile, Hz.
    pub f0_range_hz: f32,
    /// Semitones re 100 Hz.
    pub f0_mean_st: f32,
    pub f0_sd_st: f32,
    pub f0_range_st: f32,
    /// dBFS, over active frames.
    pub energy_mean_db: f32,
    pub energy_sd_db: f32,
    /// Syllable nuclei per second of active speech.
    pub speaking_rate_sps: f32,
    /// Share of frames that are not active speech, 0..1.
    pub pause_ratio: f32,
    /// Share of frames that are voiced, 0..1.
    pub voiced_ratio: f32,
    /// %, frame-level.
    pub jitter_pct: f32,
    /// %, frame-level.
    pub shimmer_pct: f32,
    /// dB, mean over voiced frames.
    pub hnr_db: f32,
}

/// Computes [`Features`] of an utterance. `active[i]` is the endpointer's
/// decision for `frames[i]`. Allocates two small scratch vectors per
/// utterance (not per frame).
pub fn features(frames: &[Frame], active: &[bool]) -> Features {
    let n = frames.len().min(active.len());
    if n == 0 {
        return Features::default();
    }
    let frames = &frames[..n];
    let active = &active[..n];
    let voiced: Vec<f32> = frames
        .iter()
        .filter(|f| f.f0_hz > 0.0)
        .map(|f| f.f0_hz)
        .collect();
    let mut out = Features {
        voiced_ratio: voiced.len() as f32 / n as f32,
        ..Features::default()
    };
    let n_active = active.iter().filter(|a| **a).count();
    out.pause_ratio = 1.0 - n_active as f32 / n as f32;

    if !voiced.is_empty() {
        let (m, sd) = mean_sd(voiced.iter().copied());
        out.f0_mean_hz = m;
        out.f0_sd_hz = sd;
        let st: Vec<f32> = voiced.iter().map(|f| hz_to_st(*f)).collect();
        let (mst, sdst) = mean_sd(st.iter().copied());
        out.f0_mean_st = mst;
        out.f0_sd_st = sdst;
        let mut sorted = voiced.clone();
        sorted.sort_by(f32::total_cmp);
        let (lo, hi) = (percentile(&sorted, 0.05), percentile(&sorted, 0.95));
        out.f0_range_hz = hi - lo;
        out.f0_range_st = hz_to_st(hi) - hz_to_st(lo);
        let hnr: Vec<f32> = frames
            .iter()
            .filter(|f| f.f0_hz > 0.0)
            .map(|f| f.hnr_db)
            .collect();
        out.hnr_db = mean_sd(hnr.iter().copied()).0;
    }
    let (em, esd) = mean_sd(
        frames
            .iter()
            .zip(active)
            .filter(|(_, a)| **a)
            .map(|(f, _)| f.energy_db),
    );
    out.energy_mean_db = em;
    out.energy_sd_db = esd;

    // Jitter and shimmer over pairs of consecutive voiced frames.
    let (mut dp, mut p, mut da, mut a, mut pairs) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0u32);
    for w in frames.windows(2) {
        if w[0].f0_hz > 0.0 && w[1].f0_hz > 0.0 {
            let (t0, t1) = (1.0 / w[0].f0_hz as f64, 1.0 / w[1].f0_hz as f64);
            dp += (t1 - t0).abs();
            p += t0;
            da += (w[1].peak_amp as f64 - w[0].peak_amp as f64).abs();
            a += w[0].peak_amp as f64;
            pairs += 1;
        }
    }
    if pairs > 0 && p > 0.0 {
        out.jitter_pct = (100.0 * dp / p) as f32;
    }
    if pairs > 0 && a > 0.0 {
        out.shimmer_pct = (100.0 * da / a) as f32;
    }

    if n_active > 0 {
        out.speaking_rate_sps = count_nuclei(frames) as f32 / (n_active as f32 * 0.01);
    }
    out
}

/// Syllable nuclei: peaks of the voiced energy contour (smoothed over 3
/// frames) that stand out by [`NUCLEUS_PROMINENCE_DB`] from the dips on both
/// sides and are at least [`NUCLEUS_MIN_GAP`] frames apart (after De Jong &
/// Wempe's Praat script, simplified).
fn count_nuclei(frames: &[Frame]) -> u32 {
    let n = frames.len();
    let e = |i: usize| -> f32 {
        let lo = i.saturating_sub(1);
        let hi = (i + 1).min(n - 1);
        let s: f32 = (lo..=hi).map(|j| frames[j].energy_db).sum();
        s / (hi - lo + 1) as f32
    };
    let mut count = 0;
    let mut last_peak: Option<usize> = None;
    // Lowest level since the last counted peak.
    let mut dip = f32::INFINITY;
    let mut i = 1;
    while i + 1 < n {
        let v = e(i);
        dip = dip.min(v);
        let is_peak = frames[i].f0_hz > 0.0 && v >= e(i - 1) && v > e(i + 1);
        if is_peak && v - dip >= NUCLEUS_PROMINENCE_DB {
            // Must also fall by the prominence before the next peak: look ahead.
            let mut j = i + 1;
            let mut min_after = v;
            while j < n && e(j) <= v {
                min_after = min_after.min(e(j));
                if v - min_after >= NUCLEUS_PROMINENCE_DB {
                    break;
                }
                j += 1;
            }
            let far_enough = last_peak.is_none_or(|p| i - p >= NUCLEUS_MIN_GAP);
            if v - min_after >= NUCLEUS_PROMINENCE_DB && far_enough {
                count += 1;
                last_peak = Some(i);
                dip = f32::INFINITY;
            }
        }
        i += 1;
    }
    count
}

/// Semitones re [`SEMITONE_REF_HZ`].
pub fn hz_to_st(hz: f32) -> f32 {
    12.0 * (hz / SEMITONE_REF_HZ).log2()
}

/// Mean and population SD (0, 0 for an empty input).
pub(crate) fn mean_sd(it: impl Iterator<Item = f32>) -> (f32, f32) {
    let (mut n, mut s, mut s2) = (0u32, 0.0f64, 0.0f64);
    for v in it {
        n += 1;
        s += v as f64;
        s2 += (v as f64) * (v as f64);
    }
    if n == 0 {
        return (0.0, 0.0);
    }
    let m = s / n as f64;
    let var = (s2 / n as f64 - m * m).max(0.0);
    (m as f32, var.sqrt() as f32)
}

/// The `q` quantile (0..1, nearest rank) of a sorted, non-empty slice.
pub(crate) fn percentile(sorted: &[f32], q: f32) -> f32 {
    let idx = ((sorted.len() - 1) as f32 * q).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Running mean and SD of one feature (Welford).
#[derive(Clone, Copy, Debug, Default)]
struct Running {
    n: u32,
    mean: f64,
    m2: f64,
}

impl Running {
    fn push(&mut self, x: f32) {
        self.n += 1;
        let d = x as f64 - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x as f64 - self.mean);
    }
    fn rel(&self, x: f32, min_sd: f64) -> proto::Relative {
        if self.n < MIN_BASELINE_N {
            return proto::Relative {
                z: 0.0,
                baseline_n: self.n,
            };
        }
        let sd = (self.m2 / (self.n - 1) as f64).sqrt().max(min_sd);
        proto::Relative {
            z: ((x as f64 - self.mean) / sd) as f32,
            baseline_n: self.n,
        }
    }
}

/// A speaker's running baseline of the key features, from their earlier
/// utterances in the call.
#[derive(Clone, Debug, Default)]
pub struct Baseline {
    f0_mean_st: Running,
    energy_mean_db: Running,
    speaking_rate: Running,
    f0_sd_st: Running,
}

/// Relative values of one utterance against a [`Baseline`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RelativeFeatures {
    pub f0_mean: proto::Relative,
    pub energy_mean: proto::Relative,
    pub speaking_rate: proto::Relative,
    pub f0_sd: proto::Relative,
}

impl Baseline {
    /// Compares `f` with the utterances seen so far, then adds it.
    /// Utterances with no voiced frame do not move the pitch baselines.
    pub fn compare_and_update(&mut self, f: &Features) -> RelativeFeatures {
        let voiced = f.voiced_ratio > 0.0;
        let rel = RelativeFeatures {
            // SD floors keep z finite for a speaker who is very steady:
            // 0.5 semitone, 1 dB, 0.3 syllables/s.
            f0_mean: if voiced {
                self.f0_mean_st.rel(f.f0_mean_st, 0.5)
            } else {
                proto::Relative::default()
            },
            energy_mean: self.energy_mean_db.rel(f.energy_mean_db, 1.0),
            speaking_rate: self.speaking_rate.rel(f.speaking_rate_sps, 0.3),
            f0_sd: if voiced {
                self.f0_sd_st.rel(f.f0_sd_st, 0.3)
            } else {
                proto::Relative::default()
            },
        };
        if voiced {
            self.f0_mean_st.push(f.f0_mean_st);
            self.f0_sd_st.push(f.f0_sd_st);
        }
        self.energy_mean_db.push(f.energy_mean_db);
        self.speaking_rate.push(f.speaking_rate_sps);
        rel
    }
}

impl Features {
    /// The `Prosody` message for these features and their relative values.
    /// Cross-channel fields (latency, overlap) are left for the call to set.
    pub fn to_proto(&self, rel: RelativeFeatures) -> proto::Prosody {
        proto::Prosody {
            f0_mean_hz: self.f0_mean_hz,
            f0_sd_hz: self.f0_sd_hz,
            f0_range_hz: self.f0_range_hz,
            f0_mean_st: self.f0_mean_st,
            f0_sd_st: self.f0_sd_st,
            f0_range_st: self.f0_range_st,
            energy_mean_db: self.energy_mean_db,
            energy_sd_db: self.energy_sd_db,
            speaking_rate_sps: self.speaking_rate_sps,
            pause_ratio: self.pause_ratio,
            voiced_ratio: self.voiced_ratio,
            jitter_pct: self.jitter_pct,
            shimmer_pct: self.shimmer_pct,
            hnr_db: self.hnr_db,
            response_latency_ms: None,
            overlap_ms: 0,
            f0_mean_rel: Some(rel.f0_mean),
            energy_mean_rel: Some(rel.energy_mean),
            speaking_rate_rel: Some(rel.speaking_rate),
            f0_sd_rel: Some(rel.f0_sd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voiced(f0: f32, e: f32) -> Frame {
        Frame {
            f0_hz: f0,
            energy_db: e,
            voicing: 0.9,
            hnr_db: 15.0,
            peak_amp: 0.5,
            ..Frame::default()
        }
    }

    #[test]
    fn steady_tone_has_its_pitch_no_spread_no_jitter() {
        let frames = vec![voiced(200.0, -20.0); 100];
        let f = features(&frames, &[true; 100]);
        assert!((f.f0_mean_hz - 200.0).abs() < 1e-3);
        assert!(f.f0_sd_hz < 1e-3 && f.f0_range_hz < 1e-3);
        assert!(
            (f.f0_mean_st - 12.0).abs() < 1e-3,
            "200 Hz is an octave above 100"
        );
        assert_eq!(f.jitter_pct, 0.0);
        assert_eq!(f.shimmer_pct, 0.0);
        assert_eq!(f.voiced_ratio, 1.0);
        assert_eq!(f.pause_ratio, 0.0);
        assert!((f.energy_mean_db + 20.0).abs() < 1e-3);
        assert!((f.hnr_db - 15.0).abs() < 1e-3);
    }

    #[test]
    fn alternating_periods_give_known_jitter() {
        // Periods alternate 5 ms and 5.1 ms: |dT| = 0.1 ms, mean T ~ 5.05 ms -> ~1.98 %.
        let frames: Vec<Frame> = (0..100)
            .map(|i| voiced(if i % 2 == 0 { 200.0 } else { 1000.0 / 5.1 }, -20.0))
            .collect();
        let f = features(&frames, &[true; 100]);
        assert!((f.jitter_pct - 1.98).abs() < 0.05, "{}", f.jitter_pct);
    }

    #[test]
    fn syllable_rate_of_a_pulsed_contour() {
        // 2 s of speech with 5 energy pulses per second: 10 nuclei, 5 per second.
        let frames: Vec<Frame> = (0..200)
            .map(|i| {
                let phase = (i % 20) as f32 / 20.0;
                let e = -30.0 + 15.0 * (std::f32::consts::PI * phase).sin();
                voiced(150.0, e)
            })
            .collect();
        let f = features(&frames, &[true; 200]);
        assert!(
            (f.speaking_rate_sps - 5.0).abs() <= 0.5,
            "{}",
            f.speaking_rate_sps
        );
    }

    #[test]
    fn pauses_and_unvoiced_frames_are_counted() {
        let mut frames = vec![voiced(150.0, -20.0); 50];
        frames.extend(vec![
            Frame {
                energy_db: -70.0,
                ..Frame::default()
            };
            50
        ]);
        let mut active = vec![true; 50];
        active.extend(vec![false; 50]);
        let f = features(&frames, &active);
        assert!((f.pause_ratio - 0.5).abs() < 1e-6);
        assert!((f.voiced_ratio - 0.5).abs() < 1e-6);
        // Energy only over active frames.
        assert!((f.energy_mean_db + 20.0).abs() < 1e-3);
    }

    #[test]
    fn baseline_gives_no_z_until_it_has_two_utterances_then_scores_deviation() {
        let mut b = Baseline::default();
        let mk = |f0: f32| Features {
            f0_mean_hz: f0,
            f0_mean_st: hz_to_st(f0),
            voiced_ratio: 0.5,
            energy_mean_db: -20.0,
            speaking_rate_sps: 4.0,
            ..Features::default()
        };
        let r0 = b.compare_and_update(&mk(150.0));
        assert_eq!((r0.f0_mean.z, r0.f0_mean.baseline_n), (0.0, 0));
        let r1 = b.compare_and_update(&mk(160.0));
        assert_eq!(r1.f0_mean.baseline_n, 1);
        assert_eq!(r1.f0_mean.z, 0.0);
        let r2 = b.compare_and_update(&mk(240.0));
        assert_eq!(r2.f0_mean.baseline_n, 2);
        assert!(
            r2.f0_mean.z > 5.0,
            "a jump of ~7 st over a 1 st spread: {}",
            r2.f0_mean.z
        );
        let r3 = b.compare_and_update(&mk(155.0));
        assert!(r3.f0_mean.z < 0.0);
    }

    #[test]
    fn empty_utterance_is_all_zero() {
        assert_eq!(features(&[], &[]), Features::default());
    }
}
