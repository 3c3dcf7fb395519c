//! The voice side's input, one fixed-length vector with names per utterance: functionals of
//! its frames (pitch, level, voice quality, spectral shape, mel cepstra, timing), then the
//! pooled Whisper encoder states of its audio ([`super::embed`]).
//!
//! Values are raw (semitones, dB, Hz, ratios); speaker normalisation happens in the model
//! ([`super::voice`]). A functional that cannot be computed (no voiced frame, say) is NaN,
//! which the model reads as "at the speaker's baseline".

use super::embed::{embed_feature_names, N_EMBED};
use crate::core::dsp::{Frame, N_MEL_FILTERS, N_MFCC};
use crate::core::prosody::{self, hz_to_st, mean_sd, percentile};

/// Names of the voice features, in vector order.
pub const PROSODIC_FEATURES: [&str; N_PROSODIC] = [
    // pitch (voiced frames, semitones re 100 Hz)
    "f0_mean_st",
    "f0_sd_st",
    "f0_p10_st",
    "f0_p50_st",
    "f0_p90_st",
    "f0_range_st",
    "f0_slope_st_per_s",
    "f0_delta_st",
    "f0_rise_ratio",
    // level (active frames, dBFS)
    "energy_mean_db",
    "energy_sd_db",
    "energy_p10_db",
    "energy_p90_db",
    "energy_range_db",
    "energy_delta_db",
    "energy_slope_db_per_s",
    "energy_voiced_db",
    // voice quality (voiced frames)
    "hnr_db",
    "hnr_sd_db",
    "jitter_pct",
    "shimmer_pct",
    "voicing_mean",
    // spectral shape (voiced frames, telephone band)
    "centroid_hz",
    "centroid_sd_hz",
    "spectral_slope_db_per_khz",
    "spectral_flatness",
    "rolloff_hz",
    "spectral_flux_db",
    "zcr",
    "band_500_1000_rel_db",
    "band_1000_2000_rel_db",
    "band_2000_4000_rel_db",
    // mel cepstra: means, SDs and mean frame-to-frame change
    "mfcc1_mean",
    "mfcc2_mean",
    "mfcc3_mean",
    "mfcc4_mean",
    "mfcc5_mean",
    "mfcc6_mean",
    "mfcc7_mean",
    "mfcc8_mean",
    "mfcc9_mean",
    "mfcc10_mean",
    "mfcc11_mean",
    "mfcc12_mean",
    "mfcc1_sd",
    "mfcc2_sd",
    "mfcc3_sd",
    "mfcc4_sd",
    "mfcc5_sd",
    "mfcc6_sd",
    "mfcc7_sd",
    "mfcc8_sd",
    "mfcc9_sd",
    "mfcc10_sd",
    "mfcc11_sd",
    "mfcc12_sd",
    "mfcc1_delta",
    "mfcc2_delta",
    "mfcc3_delta",
    "mfcc4_delta",
    "mfcc5_delta",
    "mfcc6_delta",
    "mfcc7_delta",
    "mfcc8_delta",
    "mfcc9_delta",
    "mfcc10_delta",
    "mfcc11_delta",
    "mfcc12_delta",
    // spectral envelope: each mel filter's level re the frame level, voiced frames
    "mel1_rel_db",
    "mel2_rel_db",
    "mel3_rel_db",
    "mel4_rel_db",
    "mel5_rel_db",
    "mel6_rel_db",
    "mel7_rel_db",
    "mel8_rel_db",
    "mel9_rel_db",
    "mel10_rel_db",
    "mel11_rel_db",
    "mel12_rel_db",
    "mel13_rel_db",
    "mel14_rel_db",
    "mel15_rel_db",
    "mel16_rel_db",
    "mel17_rel_db",
    "mel18_rel_db",
    "mel19_rel_db",
    "mel20_rel_db",
    // timing
    "speaking_rate_sps",
    "pause_ratio",
    "voiced_ratio",
    "voiced_runs_per_s",
    "voiced_run_ms",
    "pause_run_ms",
];
/// Number of frame functionals (named by [`PROSODIC_FEATURES`]).
pub const N_PROSODIC: usize = 94;
/// Length of the voice feature vector: the functionals, then the encoder embedding.
pub const N_VOICE: usize = N_PROSODIC + N_EMBED;

/// One utterance's voice features, in [`voice_feature_names`] order.
pub type VoiceVector = [f32; N_VOICE];

/// Names of the whole voice vector: [`PROSODIC_FEATURES`], then
/// [`embed_feature_names`].
pub fn voice_feature_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        PROSODIC_FEATURES
            .iter()
            .map(|s| s.to_string())
            .chain(embed_feature_names())
            .collect()
    })
}

/// Whether feature `j` of the vector is part of the learned encoder embedding.
pub fn is_embedding(j: usize) -> bool {
    j >= N_PROSODIC
}

/// Appends values block by block; a block that cannot be computed is NaN throughout.
struct Builder {
    v: VoiceVector,
    at: usize,
}

impl Builder {
    fn push(&mut self, x: f32) {
        self.v[self.at] = x;
        self.at += 1;
    }
    fn skip(&mut self, n: usize) {
        self.at += n;
    }
}

/// Computes the voice features of an utterance from its frames and the endpointer's
/// activity per frame; `p` are its prosodic features (for jitter, shimmer, rate, pauses)
/// and `embedding` its [`Encoder::embed`](super::embed::Encoder::embed) (anything but
/// [`N_EMBED`] numbers leaves that part NaN).
pub fn voice_features(
    frames: &[Frame],
    active: &[bool],
    p: &prosody::Features,
    embedding: &[f32],
) -> VoiceVector {
    let mut b = Builder {
        v: [f32::NAN; N_VOICE],
        at: 0,
    };
    let n = frames.len().min(active.len());
    let (frames, active) = (&frames[..n], &active[..n]);
    let t = |i: usize| i as f32 * 0.01;
    let is_voiced = |f: &Frame| f.f0_hz > 0.0;
    let voiced: Vec<(usize, f32)> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| is_voiced(f))
        .map(|(i, f)| (i, hz_to_st(f.f0_hz)))
        .collect();
    let act: Vec<(usize, &Frame)> = frames
        .iter()
        .enumerate()
        .zip(active)
        .filter(|(_, a)| **a)
        .map(|(x, _)| x)
        .collect();

    // Pitch.
    if voiced.is_empty() {
        b.skip(9);
    } else {
        let (m, sd) = mean_sd(voiced.iter().map(|x| x.1));
        let mut sorted: Vec<f32> = voiced.iter().map(|x| x.1).collect();
        sorted.sort_by(f32::total_cmp);
        let (p10, p90) = (percentile(&sorted, 0.1), percentile(&sorted, 0.9));
        b.push(m);
        b.push(sd);
        b.push(p10);
        b.push(percentile(&sorted, 0.5));
        b.push(p90);
        b.push(p90 - p10);
        b.push(slope(voiced.iter().map(|&(i, st)| (t(i), st))));
        let st = |f: &Frame| is_voiced(f).then(|| hz_to_st(f.f0_hz));
        b.push(mean_over_steps(frames, |a, c| {
            Some((st(c)? - st(a)?).abs())
        }));
        b.push(mean_over_steps(frames, |a, c| {
            Some(f32::from(u8::from(st(c)? > st(a)?)))
        }));
    }

    // Level.
    if act.is_empty() {
        b.skip(8);
    } else {
        let (m, sd) = mean_sd(act.iter().map(|x| x.1.energy_db));
        let mut sorted: Vec<f32> = act.iter().map(|x| x.1.energy_db).collect();
        sorted.sort_by(f32::total_cmp);
        let (p10, p90) = (percentile(&sorted, 0.1), percentile(&sorted, 0.9));
        b.push(m);
        b.push(sd);
        b.push(p10);
        b.push(p90);
        b.push(p90 - p10);
        b.push(mean_over_steps(frames, |a, c| {
            Some((c.energy_db - a.energy_db).abs())
        }));
        b.push(slope(act.iter().map(|&(i, f)| (t(i), f.energy_db))));
        b.push(mean_sd_of(frames, is_voiced, |f| f.energy_db).0);
    }

    // Voice quality.
    if voiced.is_empty() {
        b.skip(5);
    } else {
        let (h, hsd) = mean_sd_of(frames, is_voiced, |f| f.hnr_db);
        b.push(h);
        b.push(hsd);
        b.push(p.jitter_pct);
        b.push(p.shimmer_pct);
        b.push(mean_sd_of(frames, is_voiced, |f| f.voicing).0);
    }

    // Spectral shape, cepstra and envelope over voiced frames (the vowels carry the voice
    // quality), else over active frames.
    let shape: Vec<&Frame> = if voiced.is_empty() {
        act.iter().map(|x| x.1).collect()
    } else {
        voiced.iter().map(|&(i, _)| &frames[i]).collect()
    };
    if shape.is_empty() {
        b.skip(10 + 3 * N_MFCC + N_MEL_FILTERS);
    } else {
        let stat = |g: &dyn Fn(&Frame) -> f32| mean_sd(shape.iter().map(|f| g(f)));
        let (cm, csd) = stat(&|f| f.spectral_centroid_hz);
        b.push(cm);
        b.push(csd);
        b.push(stat(&|f| f.spectral_slope_db_per_khz).0);
        b.push(stat(&|f| f.spectral_flatness).0);
        b.push(stat(&|f| f.spectral_rolloff_hz).0);
        b.push(mean_over_steps(frames, |a, c| {
            (active_pair(a, c)).then(|| {
                let d: f32 = (a.mel_rel_db.iter().zip(&c.mel_rel_db))
                    .map(|(x, y)| (x - y).abs())
                    .sum();
                d / N_MEL_FILTERS as f32
            })
        }));
        b.push(mean_sd(act.iter().map(|x| x.1.zcr)).0);
        for k in 1..4 {
            b.push(stat(&|f| f.band_energy_db[k] - f.energy_db).0);
        }
        let mfcc: Vec<(f32, f32)> = (0..N_MFCC).map(|k| stat(&|f| f.mfcc[k])).collect();
        mfcc.iter().for_each(|m| b.push(m.0));
        mfcc.iter().for_each(|m| b.push(m.1));
        for k in 0..N_MFCC {
            b.push(mean_over_steps(frames, |a, c| {
                (is_voiced(a) && is_voiced(c)).then(|| (c.mfcc[k] - a.mfcc[k]).abs())
            }));
        }
        for m in 0..N_MEL_FILTERS {
            b.push(stat(&|f| f.mel_rel_db[m]).0);
        }
    }

    // Timing.
    b.push(p.speaking_rate_sps);
    b.push(p.pause_ratio);
    b.push(p.voiced_ratio);
    let voiced_runs = runs(frames.iter().map(is_voiced));
    let active_s = act.len() as f32 * 0.01;
    b.push(if active_s > 0.0 {
        voiced_runs.len() as f32 / active_s
    } else {
        f32::NAN
    });
    b.push(stats(voiced_runs.iter().map(|&r| r as f32 * 10.0)).0);
    // Pauses inside the utterance only: not the leading or trailing silence.
    let inner: Vec<usize> = inner_runs(active.iter().map(|a| !a));
    b.push(if inner.is_empty() {
        0.0
    } else {
        stats(inner.iter().map(|&r| r as f32 * 10.0)).0
    });
    debug_assert_eq!(b.at, N_PROSODIC);
    if embedding.len() == N_EMBED {
        b.v[N_PROSODIC..].copy_from_slice(embedding);
    }
    b.v
}

fn active_pair(a: &Frame, c: &Frame) -> bool {
    a.energy_db > crate::core::dsp::ENERGY_FLOOR_DB
        && c.energy_db > crate::core::dsp::ENERGY_FLOOR_DB
}

/// Mean and SD of `g` over the frames where `keep` holds; NaN when none does.
fn mean_sd_of(
    frames: &[Frame],
    keep: impl Fn(&Frame) -> bool,
    g: impl Fn(&Frame) -> f32,
) -> (f32, f32) {
    stats(frames.iter().filter(|f| keep(f)).map(g))
}

/// Mean and SD, NaN for an empty input (where `mean_sd` gives zeros).
fn stats(it: impl Iterator<Item = f32>) -> (f32, f32) {
    let v: Vec<f32> = it.collect();
    if v.is_empty() {
        (f32::NAN, f32::NAN)
    } else {
        mean_sd(v.into_iter())
    }
}

/// Lengths of the runs of `true`.
fn runs(it: impl Iterator<Item = bool>) -> Vec<usize> {
    let mut out = Vec::new();
    let mut cur = 0;
    for x in it {
        if x {
            cur += 1;
        } else if cur > 0 {
            out.push(cur);
            cur = 0;
        }
    }
    if cur > 0 {
        out.push(cur);
    }
    out
}

/// Lengths of the runs of `true` that have a `false` on both sides.
fn inner_runs(it: impl Iterator<Item = bool>) -> Vec<usize> {
    let v: Vec<bool> = it.collect();
    let (Some(first), Some(last)) = (v.iter().position(|x| !x), v.iter().rposition(|x| !x)) else {
        return Vec::new();
    };
    runs(v[first..=last].iter().copied())
}

/// Least-squares slope of (x, y) points, y units per x unit (NaN under two points).
fn slope(points: impl Iterator<Item = (f32, f32)>) -> f32 {
    let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (x, y) in points {
        let (x, y) = (x as f64, y as f64);
        n += 1.0;
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    let den = n * sxx - sx * sx;
    if n < 2.0 || den <= 0.0 {
        return f32::NAN;
    }
    ((n * sxy - sx * sy) / den) as f32
}

/// Mean of `step(frame, next frame)` over the consecutive pairs where it gives a value
/// (NaN when none does).
fn mean_over_steps(frames: &[Frame], step: impl Fn(&Frame, &Frame) -> Option<f32>) -> f32 {
    let (mut sum, mut n) = (0.0f32, 0u32);
    for w in frames.windows(2) {
        if let Some(d) = step(&w[0], &w[1]) {
            sum += d;
            n += 1;
        }
    }
    if n == 0 {
        f32::NAN
    } else {
        sum / n as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(f0: f32, e: f32) -> Frame {
        Frame {
            energy_db: e,
            f0_hz: f0,
            voicing: if f0 > 0.0 { 0.9 } else { 0.1 },
            hnr_db: 10.0,
            band_energy_db: [e - 3.0, e - 6.0, e - 10.0, e - 20.0],
            ..Frame::default()
        }
    }

    fn index(name: &str) -> usize {
        PROSODIC_FEATURES.iter().position(|n| *n == name).unwrap()
    }

    /// Pauses inside an utterance count; the silence around it does not.
    #[test]
    fn inner_pauses_only() {
        assert_eq!(runs([true, true, false, true].into_iter()), vec![2, 1]);
        let pauses = [true, false, false, true, true, true, false, true];
        assert_eq!(inner_runs(pauses.iter().map(|a| !a)), vec![2, 1]);
        assert!(inner_runs([true, true].into_iter().map(|a| !a)).is_empty());
    }

    #[test]
    fn names_match_the_vector() {
        let names = voice_feature_names();
        assert_eq!(names.len(), N_VOICE);
        assert_eq!(PROSODIC_FEATURES[index("mfcc1_mean") + N_MFCC], "mfcc1_sd");
        assert_eq!(names[N_PROSODIC - 1], "pause_run_ms");
        assert_eq!(names[N_PROSODIC], "enc0_mean_000");
        assert!(!is_embedding(N_PROSODIC - 1) && is_embedding(N_PROSODIC));
        let mut sorted = names.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), N_VOICE, "duplicate names");
    }

    /// A rising glide from 100 to 200 Hz over one second: one octave, 12 st/s.
    #[test]
    fn pitch_functionals_of_a_glide() {
        let frames: Vec<Frame> = (0..100)
            .map(|i| frame(100.0 * 2f32.powf(i as f32 / 99.0), -20.0))
            .collect();
        let active = vec![true; frames.len()];
        let p = prosody::features(&frames, &active);
        let v = voice_features(&frames, &active, &p, &[]);
        let f = |name| v[index(name)];
        assert!((f("f0_mean_st") - 6.0).abs() < 0.1, "{}", f("f0_mean_st"));
        assert!((f("f0_slope_st_per_s") - 12.12).abs() < 0.2);
        assert!((f("f0_range_st") - 9.6).abs() < 0.3);
        assert!((f("f0_delta_st") - 12.0 / 99.0).abs() < 0.01);
        assert_eq!(f("f0_rise_ratio"), 1.0);
        assert!(f("energy_sd_db").abs() < 1e-4);
        assert!((f("band_500_1000_rel_db") + 6.0).abs() < 1e-4);
        assert_eq!(f("voiced_runs_per_s"), 1.0);
        assert_eq!(f("voiced_run_ms"), 1000.0);
        assert_eq!(f("pause_run_ms"), 0.0);
    }

    /// Unvoiced speech leaves the pitch functionals undefined (NaN), not zero.
    #[test]
    fn no_voiced_frames_gives_nan_pitch() {
        let frames: Vec<Frame> = (0..50).map(|_| frame(0.0, -30.0)).collect();
        let active = vec![true; 50];
        let p = prosody::features(&frames, &active);
        let v = voice_features(&frames, &active, &p, &[]);
        assert!(v[index("f0_mean_st")].is_nan() && v[index("hnr_db")].is_nan());
        assert!((v[index("energy_mean_db")] + 30.0).abs() < 1e-4);
        assert!(v[index("centroid_hz")].is_finite());
        assert!(v[index("energy_voiced_db")].is_nan());
    }
}
