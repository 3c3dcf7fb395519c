//! The Whisper encoder front (src/emotion/embed.rs) against an independent numpy
//! implementation (tools/encoder_reference.py), on a committed RAVDESS clip. Needs
//! models/ggml-tiny.en.bin.

mod common;

use std::path::Path;

use callmood::emotion::embed::{Encoder, EMBED_STATE, N_EMBED};
use callmood::train::corpus::load_audio;

#[test]
fn embedding_matches_the_numpy_reference() {
    let enc = Encoder::load(&common::model_path()).expect("encoder loads");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("tests/fixtures/encoder_reference.json")).unwrap(),
    )
    .unwrap();
    let audio = load_audio(&root.join(reference["clip"].as_str().unwrap())).unwrap();
    assert_eq!(audio.rate_hz, 16_000);
    let want: Vec<f64> = reference["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(want.len(), N_EMBED);
    let got = enc.embed(&audio.samples);
    let mel = enc.log_mel(&audio.samples);
    // Positions after the stride-2 convolution.
    assert_eq!(
        (mel.len() / 80 - 1) / 2 + 1,
        reference["frames"].as_u64().unwrap() as usize
    );
    let mut worst = 0.0f64;
    for (j, (g, w)) in got.iter().zip(&want).enumerate() {
        let err = (*g as f64 - w).abs() / (1.0 + w.abs());
        assert!(err < 2e-3, "dimension {j}: rust {g}, numpy {w}");
        worst = worst.max(err);
    }
    eprintln!("largest relative difference {worst:.2e}");
    // The SDs are SDs, and the blocks differ from each other.
    assert!(got[EMBED_STATE..2 * EMBED_STATE].iter().all(|v| *v >= 0.0));
    assert_ne!(got[..EMBED_STATE], got[2 * EMBED_STATE..3 * EMBED_STATE]);
}

/// The embedding does not depend on the recording level: the same clip 20 dB quieter gives
/// the same numbers (up to rounding).
#[test]
fn embedding_is_level_invariant() {
    let enc = Encoder::load(&common::model_path()).expect("encoder loads");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let audio = load_audio(&root.join("tests/fixtures/ravdess/03-01-05-02-01-01-03.flac")).unwrap();
    let quiet: Vec<f32> = audio.samples.iter().map(|v| v * 0.1).collect();
    let (a, b) = (enc.embed(&audio.samples), enc.embed(&quiet));
    for (j, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() < 1e-3 * (1.0 + x.abs()),
            "dimension {j}: {x} vs {y}"
        );
    }
}

#[test]
fn short_audio_gives_nan_and_long_audio_is_pooled_in_pieces() {
    let enc = Encoder::load(&common::model_path()).expect("encoder loads");
    assert!(enc.embed(&[0.1; 1000]).iter().all(|v| v.is_nan()));
    // 25 s of a warbling tone: three pieces of at most 10 s, every number finite.
    let audio: Vec<f32> = (0..400_000)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.3 * (2.0 * std::f32::consts::PI * (200.0 + 30.0 * (3.0 * t).sin()) * t).sin()
        })
        .collect();
    let e = enc.embed(&audio);
    assert!(e.iter().all(|v| v.is_finite()));
}
