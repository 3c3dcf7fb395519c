//! Frame analysis against signals with known answers.

use std::f32::consts::PI;

use callmood::core::codec::{g711, Decoder, Encoding};
use callmood::core::dsp::resample::Resampler;
use callmood::core::dsp::{frames_to_csv, DspConfig, DspPlan, Frame, FrameAnalyzer, CSV_HEADER};
use callmood::HOP;

const FS: f32 = 16_000.0;

fn sine(freq: f32, secs: f32, amp: f32, fs: f32) -> Vec<f32> {
    (0..(fs * secs) as usize)
        .map(|i| amp * (2.0 * PI * freq * i as f32 / fs).sin())
        .collect()
}

/// Sum of harmonics `k·f0` for `k` in `harmonics`, amplitude 1/k, normalised to peak `amp`.
fn harmonic_complex(f0: f32, harmonics: impl Iterator<Item = u32>, secs: f32, fs: f32) -> Vec<f32> {
    let hs: Vec<u32> = harmonics.collect();
    let mut x: Vec<f32> = (0..(fs * secs) as usize)
        .map(|i| {
            let t = i as f32 / fs;
            hs.iter()
                .map(|&k| (2.0 * PI * k as f32 * f0 * t + 0.3 * k as f32).sin() / k as f32)
                .sum()
        })
        .collect();
    let peak = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    x.iter_mut().for_each(|v| *v *= 0.5 / peak);
    x
}

/// Deterministic uniform noise in -amp..amp (xorshift32).
fn noise(n: usize, amp: f32, seed: u32) -> Vec<f32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            amp * ((s as f32 / u32::MAX as f32) * 2.0 - 1.0)
        })
        .collect()
}

/// Indices of the frames whose whole pitch window lies inside a signal of `len` samples.
fn interior_range(len: usize) -> std::ops::Range<usize> {
    let margin = DspPlan::new().window_len() / 2 / HOP + 1;
    let end = (len / HOP).saturating_sub(margin);
    margin.min(end)..end
}

/// Frames whose whole pitch window lies inside the signal.
fn interior(frames: &[Frame], len: usize) -> &[Frame] {
    &frames[interior_range(len)]
}

fn assert_f0(frames: &[Frame], want: f32, tol_rel: f32, what: &str) {
    assert!(!frames.is_empty(), "{what}: no frames");
    for (i, f) in frames.iter().enumerate() {
        assert!(f.f0_hz > 0.0, "{what}: frame {i} unvoiced: {f:?}");
        let err = (f.f0_hz - want).abs() / want;
        assert!(
            err <= tol_rel,
            "{what}: frame {i} f0 {} want {want}",
            f.f0_hz
        );
    }
}

#[test]
fn sine_tones_give_their_f0() {
    let plan = DspPlan::new();
    for freq in [100.0, 180.0, 250.0, 400.0] {
        let x = sine(freq, 1.0, 0.5, FS);
        let frames = FrameAnalyzer::analyze(plan.clone(), &x);
        let inner = interior(&frames, x.len());
        assert_f0(inner, freq, 0.01, &format!("{freq} Hz sine"));
        assert!(inner.iter().all(|f| f.voicing > 0.95 && f.hnr_db > 12.0));
    }
}

#[test]
fn missing_fundamental_complex() {
    let plan = DspPlan::new();
    let x = harmonic_complex(150.0, 2..=10, 1.0, FS);
    let frames = FrameAnalyzer::analyze(plan.clone(), &x);
    assert_f0(
        interior(&frames, x.len()),
        150.0,
        0.01,
        "150 Hz harmonics 2..10",
    );

    // A rich 110 Hz voice-like complex through an ideal 300–3400 Hz telephone band-pass:
    // only harmonics 3..=30 survive.
    let x = harmonic_complex(
        110.0,
        (1..=60).filter(|k| (300.0..=3400.0).contains(&(*k as f32 * 110.0))),
        1.0,
        FS,
    );
    let frames = FrameAnalyzer::analyze(plan, &x);
    assert_f0(
        interior(&frames, x.len()),
        110.0,
        0.01,
        "110 Hz band-limited",
    );
}

#[test]
fn mulaw_8k_round_trip_keeps_f0() {
    let plan = DspPlan::new();
    for (f0, complex) in [(200.0, false), (120.0, true)] {
        let x8 = if complex {
            harmonic_complex(
                f0,
                (3..=28).filter(|k| *k as f32 * f0 <= 3400.0),
                1.0,
                8000.0,
            )
        } else {
            sine(f0, 1.0, 0.5, 8000.0)
        };
        let bytes: Vec<u8> = x8
            .iter()
            .map(|&v| g711::ulaw_encode((v * 32767.0) as i16))
            .collect();
        let mut dec = Decoder::new(Encoding::Mulaw);
        let mut pcm = Vec::new();
        for chunk in bytes.chunks(160) {
            dec.decode_into(chunk, &mut pcm);
        }
        let mut rs = Resampler::new(8000).expect("8 kHz supported");
        let mut x16 = Vec::new();
        rs.process_into(&pcm, &mut x16);
        rs.flush_into(&mut x16);
        assert_eq!(x16.len(), 2 * x8.len());
        let frames = FrameAnalyzer::analyze(plan.clone(), &x16);
        assert_f0(
            interior(&frames, x16.len()),
            f0,
            0.01,
            &format!("μ-law {f0} Hz"),
        );
    }
}

#[test]
fn white_noise_is_mostly_unvoiced() {
    let plan = DspPlan::new();
    for seed in [1u32, 42, 0xDEAD_BEEF] {
        let x = noise(16000 * 3, 0.3, seed);
        let frames = FrameAnalyzer::analyze(plan.clone(), &x);
        let voiced = frames.iter().filter(|f| f.f0_hz > 0.0).count();
        assert!(
            voiced * 100 <= frames.len() * 5,
            "seed {seed}: {voiced} of {} noise frames voiced",
            frames.len()
        );
    }
}

#[test]
fn silence_is_unvoiced_and_quiet() {
    let frames = FrameAnalyzer::analyze(DspPlan::new(), &vec![0.0; 16000]);
    assert_eq!(frames.len(), 100);
    for f in &frames {
        assert_eq!(f.f0_hz, 0.0);
        assert!(f.energy_db <= -90.0);
        assert_eq!(f.voicing, 0.0);
    }
    // A very quiet tone is below the silence gate: never voiced.
    let x = sine(200.0, 1.0, 1e-4, FS);
    let frames = FrameAnalyzer::analyze(DspPlan::new(), &x);
    assert!(frames.iter().all(|f| f.f0_hz == 0.0));
}

#[test]
fn quiet_passage_after_loud_one_is_gated_for_a_while() {
    let plan = DspPlan::new();
    let mut x = sine(200.0, 0.5, 0.5, FS);
    let quiet = sine(200.0, 1.0, 0.5 * 10f32.powf(-30.0 / 20.0), FS);
    x.extend(&quiet);
    let frames = FrameAnalyzer::analyze(plan.clone(), &x);
    // 30 dB down, the gate (20 dB below a peak falling 3 dB/s) stays shut for over 3 s.
    assert!(frames[60..140].iter().all(|f| f.f0_hz == 0.0));
    // The same quiet tone on its own is voiced.
    let frames = FrameAnalyzer::analyze(plan, &quiet);
    assert_f0(
        interior(&frames, quiet.len()),
        200.0,
        0.01,
        "quiet tone alone",
    );
}

#[test]
fn full_scale_sine_is_minus_3_dbfs() {
    let x = sine(1000.0, 0.5, 1.0, FS);
    let frames = FrameAnalyzer::analyze(DspPlan::new(), &x);
    for f in interior(&frames, x.len()) {
        assert!((f.energy_db + 3.01).abs() < 0.05, "energy {}", f.energy_db);
        assert!((f.peak_amp - 1.0).abs() < 0.01);
    }
}

#[test]
fn spectral_features_of_a_tone_and_noise() {
    let x = sine(1000.0, 0.5, 0.5, FS);
    let frames = FrameAnalyzer::analyze(DspPlan::new(), &x);
    for f in interior(&frames, x.len()) {
        assert!((f.spectral_centroid_hz - 1000.0).abs() < 20.0, "{f:?}");
        assert!((f.spectral_rolloff_hz - 1000.0).abs() <= 32.0, "{f:?}");
        assert!(f.spectral_flatness < 0.05, "{f:?}");
        // The tone's energy sits in the 1000–2000 Hz band (its lower edge).
        let b = f.band_energy_db;
        assert!(b[2] > b[0] + 30.0 && b[2] > b[3] + 30.0, "{b:?}");
        assert!(
            (b[1].max(b[2]) - f.energy_db).abs() < 3.5,
            "{b:?} vs {}",
            f.energy_db
        );
        assert!((f.zcr - 2.0 * 1000.0 / FS).abs() < 0.01, "zcr {}", f.zcr);
    }
    let x = noise(16000, 0.3, 7);
    let frames = FrameAnalyzer::analyze(DspPlan::new(), &x);
    // A single periodogram of noise scatters a lot: judge the averages. White noise has a
    // flat band (centroid mid-band, 1850 Hz, no slope); the flatness of a periodogram of
    // white noise is about exp(-0.577) = 0.56.
    let inner = interior(&frames, x.len());
    let mean = |g: fn(&Frame) -> f32| inner.iter().map(g).sum::<f32>() / inner.len() as f32;
    let flatness = mean(|f| f.spectral_flatness);
    assert!((0.45..0.7).contains(&flatness), "noise flatness {flatness}");
    let centroid = mean(|f| f.spectral_centroid_hz);
    assert!(
        (centroid - 1850.0).abs() < 100.0,
        "noise centroid {centroid}"
    );
    let slope = mean(|f| f.spectral_slope_db_per_khz);
    assert!(slope.abs() < 1.0, "noise slope {slope}");
    let zcr = mean(|f| f.zcr);
    assert!((zcr - 0.5).abs() < 0.05, "noise zcr {zcr}");
}

/// Mel cepstra leave out the level (c0), so a gain change does not move them; and the
/// first coefficient tells low-frequency from high-frequency energy by its sign.
#[test]
fn mel_cepstra_ignore_gain_and_follow_the_spectrum_tilt() {
    let plan = DspPlan::new();
    let x = harmonic_complex(150.0, 1..20, 0.5, FS);
    let quiet: Vec<f32> = x.iter().map(|v| v * 0.05).collect();
    let (a, b) = (
        FrameAnalyzer::analyze(plan.clone(), &x),
        FrameAnalyzer::analyze(plan.clone(), &quiet),
    );
    for (fa, fb) in interior(&a, x.len()).iter().zip(interior(&b, x.len())) {
        for (ca, cb) in fa.mfcc.iter().zip(&fb.mfcc) {
            assert!(
                (ca - cb).abs() < 1e-2 * ca.abs().max(1.0),
                "{:?} vs {:?}",
                fa.mfcc,
                fb.mfcc
            );
        }
    }
    let c1 = |freq: f32| {
        let x = sine(freq, 0.5, 0.3, FS);
        let frames = FrameAnalyzer::analyze(plan.clone(), &x);
        let inner = interior(&frames, x.len());
        inner.iter().map(|f| f.mfcc[0]).sum::<f32>() / inner.len() as f32
    };
    assert!(c1(500.0) > 5.0, "500 Hz c1 {}", c1(500.0));
    assert!(c1(3000.0) < -5.0, "3000 Hz c1 {}", c1(3000.0));
    let silent = FrameAnalyzer::analyze(plan, &vec![0.0; 4000]);
    assert!(silent.iter().all(|f| f.mfcc == [0.0; 12]));
}

#[test]
fn tone_switch_120_to_240_has_no_octave_jumps() {
    let switch = 8000; // 0.5 s
    let x: Vec<f32> = (0..16000)
        .map(|i| {
            let f = if i < switch { 120.0 } else { 240.0 };
            0.5 * (2.0 * PI * f * i as f32 / FS).sin()
        })
        .collect();
    let plan = DspPlan::new();
    let half_window = plan.window_len() / 2;
    let frames = FrameAnalyzer::analyze(plan, &x);
    for (i, f) in frames.iter().enumerate() {
        let centre = i * HOP;
        if centre < half_window || centre + half_window > x.len() {
            continue;
        }
        if centre + half_window <= switch {
            assert!((f.f0_hz - 120.0).abs() < 1.2, "frame {i}: {}", f.f0_hz);
        } else if centre >= switch + half_window {
            assert!((f.f0_hz - 240.0).abs() < 2.4, "frame {i}: {}", f.f0_hz);
        } else {
            // Transition: either tone (or unvoiced), never an octave away from both.
            assert!(
                f.f0_hz == 0.0 || (110.0..=250.0).contains(&f.f0_hz),
                "frame {i}: {}",
                f.f0_hz
            );
        }
    }
}

#[test]
fn chirp_is_tracked() {
    // Linear chirp 100 → 300 Hz over 2 s.
    let secs = 2.0;
    let (f_a, f_b) = (100.0f32, 300.0f32);
    let k = (f_b - f_a) / secs;
    let x: Vec<f32> = (0..(FS * secs) as usize)
        .map(|i| {
            let t = i as f32 / FS;
            0.5 * (2.0 * PI * (f_a * t + 0.5 * k * t * t)).sin()
        })
        .collect();
    let frames = FrameAnalyzer::analyze(DspPlan::new(), &x);
    for i in interior_range(x.len()) {
        let f = &frames[i];
        let t = i as f32 * 0.01;
        let want = f_a + k * t;
        assert!(
            (f.f0_hz - want).abs() / want < 0.03,
            "t {t}: f0 {} want {want}",
            f.f0_hz
        );
    }
}

#[test]
fn chunked_streaming_equals_one_push() {
    let plan = DspPlan::new();
    let mut x = harmonic_complex(130.0, 2..=12, 0.7, FS);
    x.extend(noise(5000, 0.2, 3));
    x.extend(vec![0.0; 1234]);
    x.extend(sine(220.0, 0.3, 0.4, FS));
    let whole = FrameAnalyzer::analyze(plan.clone(), &x);
    assert_eq!(whole.len(), x.len().div_ceil(HOP));
    for chunk in [1, 7, 160, 1000] {
        let mut a = FrameAnalyzer::new(plan.clone());
        let mut out = Vec::new();
        for c in x.chunks(chunk) {
            a.push_into(c, &mut out);
        }
        let emitted = a.frames_emitted();
        assert_eq!(emitted as usize, out.len());
        // Lookahead: frames lag the input by half a window.
        let expect = (x.len() - a.lookahead_samples()) / HOP + 1;
        assert_eq!(out.len(), expect, "chunk {chunk}");
        a.flush_into(&mut out);
        assert_eq!(out, whole, "chunk {chunk}");
    }
}

#[test]
fn config_is_validated() {
    assert!(DspPlan::with_config(DspConfig::default()).is_ok());
    let bad = DspConfig {
        f0_min_hz: 300.0,
        f0_max_hz: 200.0,
        ..DspConfig::default()
    };
    assert!(DspPlan::with_config(bad).is_err());
    let bad = DspConfig {
        voicing_threshold: 1.5,
        ..DspConfig::default()
    };
    let e = DspPlan::with_config(bad).unwrap_err();
    assert!(e.to_string().contains("voicing_threshold"));
    let bad = DspConfig {
        relative_silence_db: 0.0,
        ..DspConfig::default()
    };
    assert!(DspPlan::with_config(bad).is_err());
    let bad = DspConfig {
        spectral_band_hz: (3000.0, 9000.0),
        ..DspConfig::default()
    };
    assert!(DspPlan::with_config(bad).is_err());
    // A narrower F0 range still works and gives a shorter window.
    let plan = DspPlan::with_config(DspConfig {
        f0_min_hz: 100.0,
        f0_max_hz: 400.0,
        ..DspConfig::default()
    })
    .expect("valid");
    assert_eq!(plan.window_len(), 480);
    let x = sine(150.0, 0.5, 0.5, FS);
    let frames = FrameAnalyzer::analyze(plan, &x);
    assert_f0(interior(&frames, x.len()), 150.0, 0.01, "narrow config");
}

#[test]
fn csv_export() {
    let frames = vec![
        Frame::default(),
        Frame {
            f0_hz: 123.456,
            energy_db: -20.0,
            voicing: 0.9,
            ..Frame::default()
        },
    ];
    let mut buf = Vec::new();
    frames_to_csv(&frames, &mut buf).expect("write to Vec");
    let text = String::from_utf8(buf).expect("utf8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines.len(), 3);
    assert!(
        lines[2].starts_with("0.01,123.46,-20.00,0.900,"),
        "{}",
        lines[2]
    );
    assert_eq!(lines[1].split(',').count(), CSV_HEADER.split(',').count());
}
