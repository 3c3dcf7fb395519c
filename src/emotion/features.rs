//! The voice side's input: functionals of one utterance's frames (pitch, level, voice
//! quality, spectral shape, mel cepstra, timing), as one fixed-length vector with names.
//!
//! Values are raw (semitones, dB, Hz, ratios); speaker normalisation happens in the model
//! ([`super::voice`]). A functional that cannot be computed (no voiced frame, say) is NaN,
//! which the model reads as "at the speaker's baseline".

use crate::dsp::{Frame, N_MFCC};
use crate::prosody::{self, hz_to_st, mean_sd, percentile};

/// Names of the voice features, in vector order.
pub const VOICE_FEATURES: [&str; N_VOICE] = [
    "f0_mean_st",
    "f0_sd_st",
    "f0_p10_st",
    "f0_p90_st",
    "f0_range_st",
    "f0_slope_st_per_s",
    "f0_delta_st",
    "energy_mean_db",
    "energy_sd_db",
    "energy_range_db",
    "energy_delta_db",
    "energy_slope_db_per_s",
    "hnr_db",
    "jitter_pct",
    "shimmer_pct",
    "voicing_mean",
    "centroid_hz",
    "centroid_sd_hz",
    "spectral_slope_db_per_khz",
    "spectral_flatness",
    "rolloff_hz",
    "zcr",
    "band_500_1000_rel_db",
    "band_1000_2000_rel_db",
    "band_2000_4000_rel_db",
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
    "speaking_rate_sps",
    "pause_ratio",
    "voiced_ratio",
];
/// Length of the voice feature vector.
pub const N_VOICE: usize = 52;
/// Index of the first mel-cepstral mean in [`VOICE_FEATURES`].
const MFCC_MEAN: usize = 25;

/// One utterance's voice features, in [`VOICE_FEATURES`] order.
pub type VoiceVector = [f32; N_VOICE];

/// Computes the voice features of an utterance from its frames and the endpointer's
/// activity per frame; `p` are its prosodic features (for jitter, shimmer, rate, pauses).
pub fn voice_features(frames: &[Frame], active: &[bool], p: &prosody::Features) -> VoiceVector {
    let mut v = [f32::NAN; N_VOICE];
    let n = frames.len().min(active.len());
    let (frames, active) = (&frames[..n], &active[..n]);
    let t = |i: usize| i as f32 * 0.01;

    // Pitch over voiced frames, semitones.
    let voiced: Vec<(usize, f32)> = frames
        .iter()
        .enumerate()
        .filter(|(_, f)| f.f0_hz > 0.0)
        .map(|(i, f)| (i, hz_to_st(f.f0_hz)))
        .collect();
    if !voiced.is_empty() {
        let (m, sd) = mean_sd(voiced.iter().map(|x| x.1));
        let mut sorted: Vec<f32> = voiced.iter().map(|x| x.1).collect();
        sorted.sort_by(f32::total_cmp);
        let (p10, p90) = (percentile(&sorted, 0.1), percentile(&sorted, 0.9));
        v[0] = m;
        v[1] = sd;
        v[2] = p10;
        v[3] = p90;
        v[4] = p90 - p10;
        v[5] = slope(voiced.iter().map(|&(i, st)| (t(i), st)));
        v[6] = mean_abs_step(frames, |f| (f.f0_hz > 0.0).then(|| hz_to_st(f.f0_hz)));
        v[12] = mean_sd(frames.iter().filter(|f| f.f0_hz > 0.0).map(|f| f.hnr_db)).0;
        v[13] = p.jitter_pct;
        v[14] = p.shimmer_pct;
        v[15] = mean_sd(frames.iter().filter(|f| f.f0_hz > 0.0).map(|f| f.voicing)).0;
    }

    // Level over active frames.
    let act: Vec<(usize, &Frame)> = frames
        .iter()
        .enumerate()
        .zip(active)
        .filter(|(_, a)| **a)
        .map(|(x, _)| x)
        .collect();
    if !act.is_empty() {
        let (m, sd) = mean_sd(act.iter().map(|x| x.1.energy_db));
        let mut sorted: Vec<f32> = act.iter().map(|x| x.1.energy_db).collect();
        sorted.sort_by(f32::total_cmp);
        v[7] = m;
        v[8] = sd;
        v[9] = percentile(&sorted, 0.9) - percentile(&sorted, 0.1);
        v[10] = mean_abs_step(frames, |f| Some(f.energy_db));
        v[11] = slope(act.iter().map(|&(i, f)| (t(i), f.energy_db)));
        v[21] = mean_sd(act.iter().map(|x| x.1.zcr)).0;
    }

    // Spectral shape and cepstra over voiced frames (the vowels carry the voice quality),
    // else over active frames.
    let shape: Vec<&Frame> = if voiced.is_empty() {
        act.iter().map(|x| x.1).collect()
    } else {
        voiced.iter().map(|&(i, _)| &frames[i]).collect()
    };
    if !shape.is_empty() {
        let (cm, csd) = mean_sd(shape.iter().map(|f| f.spectral_centroid_hz));
        v[16] = cm;
        v[17] = csd;
        v[18] = mean_sd(shape.iter().map(|f| f.spectral_slope_db_per_khz)).0;
        v[19] = mean_sd(shape.iter().map(|f| f.spectral_flatness)).0;
        v[20] = mean_sd(shape.iter().map(|f| f.spectral_rolloff_hz)).0;
        for b in 1..4 {
            v[21 + b] = mean_sd(shape.iter().map(|f| f.band_energy_db[b] - f.energy_db)).0;
        }
        for k in 0..N_MFCC {
            let (m, sd) = mean_sd(shape.iter().map(|f| f.mfcc[k]));
            v[MFCC_MEAN + k] = m;
            v[MFCC_MEAN + N_MFCC + k] = sd;
        }
    }

    v[49] = p.speaking_rate_sps;
    v[50] = p.pause_ratio;
    v[51] = p.voiced_ratio;
    v
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

/// Mean |difference| between consecutive frames where `get` gives a value for both.
fn mean_abs_step(frames: &[Frame], get: impl Fn(&Frame) -> Option<f32>) -> f32 {
    let (mut sum, mut n) = (0.0f32, 0u32);
    for w in frames.windows(2) {
        if let (Some(a), Some(b)) = (get(&w[0]), get(&w[1])) {
            sum += (b - a).abs();
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

    #[test]
    fn names_match_the_vector() {
        assert_eq!(VOICE_FEATURES.len(), N_VOICE);
        assert_eq!(VOICE_FEATURES[MFCC_MEAN], "mfcc1_mean");
        assert_eq!(VOICE_FEATURES[MFCC_MEAN + N_MFCC], "mfcc1_sd");
        assert_eq!(VOICE_FEATURES[49], "speaking_rate_sps");
        let mut sorted = VOICE_FEATURES.to_vec();
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
        let v = voice_features(&frames, &active, &p);
        assert!((v[0] - 6.0).abs() < 0.1, "mean st {}", v[0]);
        assert!((v[5] - 12.12).abs() < 0.2, "slope {}", v[5]);
        assert!((v[4] - 9.6).abs() < 0.3, "p10..p90 {}", v[4]);
        assert!((v[6] - 12.0 / 99.0).abs() < 0.01, "step {}", v[6]);
        assert!((v[8]).abs() < 1e-4, "flat level sd {}", v[8]);
        assert!((v[22] + 6.0).abs() < 1e-4, "band rel {}", v[22]);
    }

    /// Unvoiced speech leaves the pitch functionals undefined (NaN), not zero.
    #[test]
    fn no_voiced_frames_gives_nan_pitch() {
        let frames: Vec<Frame> = (0..50).map(|_| frame(0.0, -30.0)).collect();
        let active = vec![true; 50];
        let p = prosody::features(&frames, &active);
        let v = voice_features(&frames, &active, &p);
        assert!(v[0].is_nan() && v[12].is_nan());
        assert!((v[7] + 30.0).abs() < 1e-4);
        assert!(v[16].is_finite());
    }
}
