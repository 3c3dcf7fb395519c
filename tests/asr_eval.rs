//! Measurement, not a test: compute for one Whisper window per clip against all clips packed
//! into one window, on the fixture clips. Prints CPU seconds (all threads of this process),
//! wall seconds and WER; asserts nothing about time.
//!
//! CALLMOOD_ASR_THREADS=2 cargo test --release --test asr_eval -- --ignored --nocapture

mod common;

use std::time::Instant;

use callmood::asr::pool::transcribe_packed;
use callmood::asr::wer::word_error_rate;
use callmood::asr::{Transcriber, WhisperModel, Word};

/// User + system CPU time of this process, s (Linux `/proc/self/stat`, clock ticks of 10 ms).
fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn total_wer(clips: &[common::Clip], hyps: &[Vec<Word>]) -> f32 {
    let (mut errors, mut words) = (0.0, 0usize);
    for (c, h) in clips.iter().zip(hyps) {
        let n = c.reference.split_whitespace().count();
        errors += word_error_rate(&c.reference, &common::text(h)) * n as f32;
        words += n;
    }
    errors / words as f32
}

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn packing_versus_one_window_per_clip() {
    let threads: usize = std::env::var("CALLMOOD_ASR_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    const ROUNDS: usize = 2;
    let clips = common::clips();
    let audio_s: f32 = clips.iter().map(|c| c.audio.len() as f32 / 16000.0).sum();
    let model = WhisperModel::load(&common::model_path()).expect("model");
    let mut tr = Transcriber::new(model, threads).expect("transcriber");
    tr.transcribe(&clips[0].audio).expect("warm-up");

    let audio: Vec<&[f32]> = clips.iter().map(|c| c.audio.as_slice()).collect();
    for round in 0..ROUNDS {
        let (cpu, t) = (process_cpu_s(), Instant::now());
        let alone: Vec<Vec<Word>> = audio
            .iter()
            .map(|a| tr.transcribe(a).expect("transcription"))
            .collect();
        let (alone_cpu, alone_wall) = (process_cpu_s() - cpu, t.elapsed().as_secs_f64());

        let (cpu, t) = (process_cpu_s(), Instant::now());
        let packed = transcribe_packed(&mut tr, &audio, 16000).expect("transcription");
        let (packed_cpu, packed_wall) = (process_cpu_s() - cpu, t.elapsed().as_secs_f64());

        eprintln!(
            "round {round}: {} clips, {audio_s:.1} s of speech, {threads} threads\n  \
             one window per clip: {alone_cpu:.2} s CPU, {alone_wall:.2} s wall, WER {:.3}\n  \
             packed in one window: {packed_cpu:.2} s CPU, {packed_wall:.2} s wall, WER {:.3}",
            clips.len(),
            total_wer(&clips, &alone),
            total_wer(&clips, &packed),
        );
    }
}
