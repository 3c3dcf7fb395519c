//! DSP hot paths: one 10 ms frame, a real 10 s clip, telephone ingest (μ-law decode +
//! 8 → 16 kHz resampling; RTP parse + jitter buffer + decode), and the encoder embedding of
//! an utterance for the voice emotion model. Run with
//! `cargo bench --bench dsp -- --warm-up-time 1 --measurement-time 3`.
//!
//! Real-time factor (RTF) = audio seconds / compute seconds; printed for each path.

use std::f32::consts::PI;
use std::hint::black_box;
use std::time::Instant;

use callmood::core::codec::{g711, read_wav_file, Decoder, Encoding};
use callmood::core::dsp::resample::Resampler;
use callmood::core::dsp::{DspPlan, Frame, FrameAnalyzer};
use callmood::core::rtp;
use callmood::core::rtp::leg::{RtpLeg, RtpSettings};
use callmood::{HOP, SAMPLE_RATE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const CLIP: &str =
    "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav";
const CLIP_SECS: usize = 10;

/// A voiced synthetic signal: 140 Hz glottal-like harmonics with a slow vibrato.
fn synthetic(secs: usize) -> Vec<f32> {
    let fs = SAMPLE_RATE as f32;
    let mut phase = 0.0f32;
    (0..secs * SAMPLE_RATE as usize)
        .map(|i| {
            let t = i as f32 / fs;
            phase += 2.0 * PI * (140.0 + 10.0 * (2.0 * PI * 3.0 * t).sin()) / fs;
            (1..=20)
                .map(|k| (k as f32 * phase).sin() / k as f32)
                .sum::<f32>()
                * 0.2
        })
        .collect()
}

/// 10 s of real speech at 16 kHz (looped if the clip is shorter), or the synthetic signal.
fn clip_16k() -> (Vec<f32>, &'static str) {
    let Ok(wav) = read_wav_file(CLIP) else {
        return (synthetic(CLIP_SECS), "synthetic");
    };
    let Some(mono) = wav.samples.first() else {
        return (synthetic(CLIP_SECS), "synthetic");
    };
    let Ok(mut rs) = Resampler::new(wav.sample_rate) else {
        return (synthetic(CLIP_SECS), "synthetic");
    };
    let mut x = Vec::new();
    rs.process_into(mono, &mut x);
    rs.flush_into(&mut x);
    if x.is_empty() {
        return (synthetic(CLIP_SECS), "synthetic");
    }
    let want = CLIP_SECS * SAMPLE_RATE as usize;
    let looped: Vec<f32> = x.iter().copied().cycle().take(want).collect();
    (looped, "librivox clip")
}

/// Times `f` over `reps` runs and prints the real-time factor for `audio_s` of audio.
fn print_rtf(name: &str, audio_s: f64, reps: usize, mut f: impl FnMut()) {
    f();
    let start = Instant::now();
    for _ in 0..reps {
        f();
    }
    let per_run = start.elapsed().as_secs_f64() / reps as f64;
    eprintln!(
        "RTF {name}: {:.0}x real time ({:.3} ms per {audio_s} s of audio, one core)",
        audio_s / per_run,
        per_run * 1e3
    );
}

fn bench_frame(c: &mut Criterion) {
    let plan = DspPlan::new();
    let x = synthetic(2);
    let mut analyzer = FrameAnalyzer::new(plan);
    let mut out: Vec<Frame> = Vec::with_capacity(16);
    analyzer.push_into(&x[..SAMPLE_RATE as usize], &mut out);
    let hops: Vec<&[f32]> = x[SAMPLE_RATE as usize..].chunks_exact(HOP).collect();
    let mut i = 0;
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(HOP as u64));
    group.bench_function("push_160_samples", |b| {
        b.iter(|| {
            out.clear();
            analyzer.push_into(black_box(hops[i % hops.len()]), &mut out);
            i += 1;
            black_box(&out);
        })
    });
    group.finish();
}

fn bench_clip(c: &mut Criterion) {
    let plan = DspPlan::new();
    let (x, source) = clip_16k();
    let audio_s = x.len() as f64 / f64::from(SAMPLE_RATE);
    let frames = FrameAnalyzer::analyze(plan.clone(), &x);
    let voiced = frames.iter().filter(|f| f.f0_hz > 0.0).count();
    eprintln!("{source}: {} frames, {voiced} voiced", frames.len());
    let mut out = Vec::with_capacity(x.len() / HOP + 1);
    let mut run = || {
        let mut a = FrameAnalyzer::new(plan.clone());
        out.clear();
        a.push_into(&x, &mut out);
        a.flush_into(&mut out);
        black_box(&out);
    };
    print_rtf(&format!("frame analysis, {source}"), audio_s, 5, &mut run);
    let mut group = c.benchmark_group("clip");
    group.throughput(Throughput::Elements(x.len() as u64));
    group.sample_size(10);
    group.bench_function("analyze_10s", |b| b.iter(&mut run));
    group.finish();
}

fn bench_ingest(c: &mut Criterion) {
    // 10 s of a 200 Hz complex at 8 kHz, μ-law, in 20 ms RTP-sized packets.
    let bytes: Vec<u8> = (0..8000 * CLIP_SECS)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let v: f32 = (1..=15)
                .map(|k| (2.0 * PI * 200.0 * k as f32 * t).sin() / k as f32)
                .sum();
            g711::ulaw_encode((v * 8000.0) as i16)
        })
        .collect();
    let mut pcm = Vec::with_capacity(160);
    let mut out = Vec::with_capacity(16000 * CLIP_SECS + 1000);
    let mut run = || {
        let mut dec = Decoder::new(Encoding::Mulaw);
        let Ok(mut rs) = Resampler::new(8000) else {
            return;
        };
        out.clear();
        for packet in bytes.chunks(160) {
            pcm.clear();
            dec.decode_into(packet, &mut pcm);
            rs.process_into(&pcm, &mut out);
        }
        rs.flush_into(&mut out);
        black_box(&out);
    };
    print_rtf(
        "mu-law decode + 8k->16k resample",
        CLIP_SECS as f64,
        20,
        &mut run,
    );
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(bytes.len() as u64));
    group.bench_function("mulaw_8k_to_16k_10s", |b| b.iter(&mut run));

    // The same 10 s as RTP datagrams (every 10th pair swapped: reordering)
    // through a leg: parse, jitter buffer, G.711 decode.
    let mut datagrams: Vec<Vec<u8>> = bytes
        .chunks(160)
        .enumerate()
        .map(|(i, p)| rtp::build(false, 0, i as u16, (i * 160) as u32, 1, p))
        .collect();
    for i in (1..datagrams.len()).step_by(10) {
        datagrams.swap(i - 1, i);
    }
    let mut leg_out = Vec::with_capacity(64);
    let mut run_rtp = || {
        let mut leg = RtpLeg::new(
            Encoding::Mulaw,
            8000,
            RtpSettings::for_encoding(Encoding::Mulaw),
        );
        let mut samples = 0usize;
        for (i, d) in datagrams.iter().enumerate() {
            leg_out.clear();
            let _ = leg.push(i as u64 * 20, d, &mut leg_out);
            samples += leg_out.len();
        }
        leg_out.clear();
        leg.flush(&mut leg_out);
        black_box((samples, &leg_out));
    };
    print_rtf(
        "RTP leg (parse + jitter buffer + mu-law decode)",
        CLIP_SECS as f64,
        20,
        &mut run_rtp,
    );
    group.bench_function("rtp_leg_10s", |b| b.iter(&mut run_rtp));
    group.finish();

    let x48: Vec<f32> = (0..48000 * CLIP_SECS)
        .map(|i| 0.5 * (2.0 * PI * 440.0 * i as f32 / 48000.0).sin())
        .collect();
    let mut run48 = || {
        let Ok(mut rs) = Resampler::new(48000) else {
            return;
        };
        out.clear();
        for chunk in x48.chunks(960) {
            rs.process_into(chunk, &mut out);
        }
        rs.flush_into(&mut out);
        black_box(&out);
    };
    print_rtf("48k->16k resample", CLIP_SECS as f64, 10, &mut run48);
}

/// The learned voice features of one utterance: Whisper's encoder front (two blocks) over
/// 3 s and 10 s of speech. Needs models/ggml-tiny.en.bin; skipped with a line without it.
fn bench_embed(c: &mut Criterion) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ggml-tiny.en.bin");
    let Ok(enc) = callmood::emotion::embed::Encoder::load(&path) else {
        eprintln!(
            "embed: {} not found, skipped (run models/fetch.sh)",
            path.display()
        );
        return;
    };
    let (x, source) = clip_16k();
    let mut group = c.benchmark_group("embed");
    group.sample_size(10);
    for secs in [3usize, 10] {
        let audio = &x[..secs * SAMPLE_RATE as usize];
        print_rtf(
            &format!("encoder embedding, {source}"),
            secs as f64,
            5,
            || {
                black_box(enc.embed(audio));
            },
        );
        group.bench_function(format!("utterance_{secs}s"), |b| {
            b.iter(|| black_box(enc.embed(black_box(audio))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_frame, bench_clip, bench_ingest, bench_embed);
criterion_main!(benches);
