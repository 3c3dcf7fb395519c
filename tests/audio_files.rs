//! Recordings as call archives hold them: a stereo call (two different speakers, one per
//! channel) made into a WAV by sox, then encoded by ffmpeg as FLAC, MP3, Ogg Vorbis and
//! Ogg Opus. Each decodes to the WAV original: FLAC sample for sample, the lossy codecs
//! in time (no shift: encoder delay and padding are cut), at full length and close in
//! waveform, with the caller and agent channels still apart.
mod common;

use std::path::Path;
use std::process::Command;

use callmood::core::codec::audio_file::{read_audio_file, FileFormat};
use callmood::core::codec::{read_wav_file, WavAudio, WavEncoding};
use callmood::core::dsp::resample::Resampler;
use common::*;

/// A 4 s stereo call at `rate` Hz: caller (left) and agent (right) are different clips.
fn stereo_call(dir: &Path, rate: u32) -> std::path::PathBuf {
    let out = dir.join(format!("call-{rate}.wav"));
    let st = Command::new("sox")
        .arg("-M")
        .arg(librivox("0880").0)
        .arg(librivox("0890").0)
        .args(["-b", "16", "-r", &rate.to_string()])
        .arg(&out)
        .args(["trim", "0", "4"])
        .status()
        .expect("sox runs (scripts/setup installs it)");
    assert!(st.success(), "sox failed");
    out
}

/// `input` encoded by ffmpeg with `codec_args` into `name`.
fn ffmpeg(input: &Path, name: &str, codec_args: &[&str]) -> std::path::PathBuf {
    let out = input.with_file_name(name);
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-i"])
        .arg(input)
        .args(codec_args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs (scripts/setup installs it)");
    assert!(st.success(), "ffmpeg {codec_args:?} failed");
    out
}

/// One channel at 16 kHz, through the service's own resampler.
fn at_16k(audio: &WavAudio, channel: usize) -> Vec<f32> {
    let mut r = Resampler::new(audio.sample_rate).unwrap();
    let mut out = Vec::new();
    r.process_into(&audio.samples[channel], &mut out);
    r.flush_into(&mut out);
    out
}

/// Normalised correlation of `a` and `b` with `b` shifted by `lag` samples.
fn correlation(a: &[f32], b: &[f32], lag: i64) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (i, &x) in a.iter().enumerate() {
        let j = i as i64 + lag;
        let Some(&y) = usize::try_from(j).ok().and_then(|j| b.get(j)) else {
            continue;
        };
        ab += f64::from(x) * f64::from(y);
        aa += f64::from(x) * f64::from(x);
        bb += f64::from(y) * f64::from(y);
    }
    ab / (aa * bb).sqrt().max(1e-12)
}

/// The lag (decoded against original, 16 kHz samples, within ±20 ms) of best correlation,
/// and that correlation.
fn best_lag(original: &[f32], decoded: &[f32]) -> (i64, f64) {
    (-320..=320)
        .map(|lag| (lag, correlation(original, decoded, lag)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap()
}

/// A lossy decode of `original`: same channels, same length within 1 ms, no shift, and
/// each channel like its own original and unlike the other one.
fn check_lossy(what: &str, original: &WavAudio, decoded: &WavAudio, min_corr: f64) {
    assert_eq!(decoded.channels, 2, "{what}: stereo kept");
    assert_eq!(decoded.encoding, WavEncoding::Float32, "{what}");
    let (want, got) = (original.duration_s(), decoded.duration_s());
    assert!(
        (want - got).abs() <= 0.001,
        "{what}: {got} s decoded, {want} s in the original"
    );
    for ch in 0..2 {
        let (o, d) = (at_16k(original, ch), at_16k(decoded, ch));
        let (lag, corr) = best_lag(&o, &d);
        assert!(
            lag.abs() <= 1,
            "{what} channel {ch}: shifted by {lag} samples"
        );
        assert!(
            corr >= min_corr,
            "{what} channel {ch}: correlation {corr:.3}"
        );
        let other = correlation(&at_16k(original, 1 - ch), &d, 0);
        eprintln!(
            "{what} channel {ch}: lag {lag}, correlation {corr:.3}, with the other {other:.3}"
        );
        assert!(
            other < 0.3,
            "{what} channel {ch}: like the other channel ({other:.3})"
        );
    }
}

#[test]
fn flac_decodes_to_the_wav_it_was_made_from_sample_for_sample() {
    let dir = tempfile::tempdir().unwrap();
    let wav = stereo_call(dir.path(), 8000);
    let flac = ffmpeg(&wav, "call.flac", &["-c:a", "flac"]);
    let original = read_wav_file(&wav).unwrap();
    let decoded = read_audio_file(&flac).unwrap();
    assert_eq!(decoded.encoding, WavEncoding::PcmI16);
    assert_eq!((decoded.sample_rate, decoded.channels), (8000, 2));
    assert_eq!(decoded.samples, original.samples, "lossless");
    // sox writes FLAC too (its own encoder, 24-bit here): still exact.
    let flac24 = dir.path().join("call-24.flac");
    let st = Command::new("sox")
        .arg(&wav)
        .args(["-b", "24"])
        .arg(&flac24)
        .status()
        .unwrap();
    assert!(st.success());
    let decoded = read_audio_file(&flac24).unwrap();
    assert_eq!(decoded.encoding, WavEncoding::PcmI24);
    assert_eq!(decoded.samples, original.samples);
}

#[test]
fn mp3_vorbis_and_opus_decode_in_time_and_keep_the_channels_apart() {
    let dir = tempfile::tempdir().unwrap();
    let wav = stereo_call(dir.path(), 16000);
    let original = read_wav_file(&wav).unwrap();

    let mp3 = ffmpeg(&wav, "call.mp3", &["-c:a", "libmp3lame", "-b:a", "96k"]);
    let decoded = read_audio_file(&mp3).unwrap();
    assert_eq!(decoded.sample_rate, 16000);
    check_lossy("MP3", &original, &decoded, 0.95);

    let ogg = ffmpeg(&wav, "call.ogg", &["-c:a", "libvorbis", "-q:a", "5"]);
    let decoded = read_audio_file(&ogg).unwrap();
    assert_eq!(decoded.sample_rate, 16000);
    check_lossy("Ogg Vorbis", &original, &decoded, 0.95);

    // Opus decodes at the analysis rate, 16 kHz, whatever the original's rate was.
    let opus = ffmpeg(&wav, "call.opus", &["-c:a", "libopus", "-b:a", "48k"]);
    let decoded = read_audio_file(&opus).unwrap();
    assert_eq!(decoded.sample_rate, 16000);
    let wav8 = stereo_call(dir.path(), 8000);
    let opus8 = ffmpeg(&wav8, "call8.opus", &["-c:a", "libopus", "-b:a", "24k"]);
    check_lossy(
        "Ogg Opus from 8 kHz",
        &read_wav_file(&wav8).unwrap(),
        &read_audio_file(&opus8).unwrap(),
        0.9,
    );
    check_lossy("Ogg Opus", &original, &decoded, 0.9);
}

#[test]
fn an_ogg_of_another_codec_is_refused_and_cut_files_give_what_they_hold() {
    let dir = tempfile::tempdir().unwrap();
    let wav = stereo_call(dir.path(), 8000);
    // FLAC inside Ogg: a real Ogg file, not a codec callmood reads.
    let oga = ffmpeg(&wav, "call.oga", &["-c:a", "flac"]);
    assert_eq!(
        callmood::core::codec::audio_file::sniff(&std::fs::read(&oga).unwrap()),
        Some(FileFormat::Ogg)
    );
    let e = read_audio_file(&oga).unwrap_err().to_string();
    assert!(
        e.contains("Ogg stream of a codec callmood does not read"),
        "{e}"
    );
    // Opus of more than two channels (mapping family 1) needs a multistream decoder.
    let surround = ffmpeg(
        &wav,
        "three.opus",
        &[
            "-af",
            "pan=3.0|c0=c0|c1=c1|c2=c0",
            "-c:a",
            "libopus",
            "-mapping_family",
            "1",
        ],
    );
    let e = read_audio_file(&surround).unwrap_err().to_string();
    assert_eq!(e, "Ogg Opus: 3 channels, at most 2 are read");
    // Files cut at two thirds (a recorder that died) yield the audio before the cut, as a
    // cut WAV does.
    for (name, codec) in [
        ("call.flac", "flac"),
        ("call.mp3", "libmp3lame"),
        ("call.ogg", "libvorbis"),
        ("call.opus", "libopus"),
    ] {
        let whole = std::fs::read(ffmpeg(&wav, name, &["-c:a", codec])).unwrap();
        let cut = dir.path().join(format!("cut-{name}"));
        std::fs::write(&cut, &whole[..whole.len() * 2 / 3]).unwrap();
        let a = read_audio_file(&cut).unwrap_or_else(|e| panic!("{name} cut short: {e}"));
        assert!(
            a.duration_s() > 1.5 && a.duration_s() < 3.9,
            "{name}: {} s",
            a.duration_s()
        );
        assert_eq!(a.channels, 2);
    }
}

#[test]
fn analyze_reads_every_format_and_a_flac_gives_the_events_its_wav_gives() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("archive");
    std::fs::create_dir(&input).unwrap();
    let wav = stereo_call(&input, 8000);
    let wav = {
        let to = input.join("call.wav");
        std::fs::rename(&wav, &to).unwrap();
        to
    };
    ffmpeg(&wav, "call.flac", &["-c:a", "flac"]);
    ffmpeg(&wav, "call.mp3", &["-c:a", "libmp3lame", "-b:a", "64k"]);
    ffmpeg(&wav, "call.ogg", &["-c:a", "libvorbis"]);
    ffmpeg(&wav, "call.opus", &["-c:a", "libopus", "-b:a", "32k"]);
    let out = dir.path().join("out");
    let (ok, _, stderr) = run(callmood()
        .args([
            "analyze",
            "--no-transcript",
            "--verbose",
            "--jobs",
            "2",
            "--out",
        ])
        .arg(&out)
        .arg(&input));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("5 files: 5 analysed"), "{stderr}");
    // Names in file order: call.flac, call.mp3, call.ogg, call.opus, call.wav.
    let calls = out.join("calls");
    let read = |name: &str| std::fs::read_to_string(calls.join(format!("{name}.jsonl"))).unwrap();
    let (flac, wav) = (read("call"), read("call-5"));
    assert_eq!(flac, wav, "lossless: the same audio, the same events");
    for lossy in ["call-2", "call-3", "call-4"] {
        let events = read(lossy);
        assert!(events.contains("\"summary\""), "{lossy}");
        // Both speakers are heard on their own channels, as in the WAV.
        for role in ["CALLER", "AGENT"] {
            assert!(events.contains(role), "{lossy}: no {role}");
        }
    }
}

#[test]
fn damaged_files_give_errors_or_audio_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let wav = stereo_call(dir.path(), 8000);
    let files = [
        ffmpeg(&wav, "d.flac", &["-c:a", "flac"]),
        ffmpeg(&wav, "d.mp3", &["-c:a", "libmp3lame", "-b:a", "32k"]),
        ffmpeg(&wav, "d.ogg", &["-c:a", "libvorbis"]),
        ffmpeg(&wav, "d.opus", &["-c:a", "libopus", "-b:a", "16k"]),
    ];
    for f in &files {
        let good = std::fs::read(f).unwrap();
        let mut state = 0x2545_F491u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as usize
        };
        let mut damaged = 0;
        for k in 0..150 {
            let mut bytes = good.clone();
            if k % 3 == 0 {
                bytes.truncate(next() % good.len());
            } else {
                // A burst of flipped bytes, mostly in the headers at the front.
                let at = if k % 3 == 1 { next() % 512 } else { next() } % good.len();
                for b in bytes.iter_mut().skip(at).take(1 + next() % 8) {
                    *b ^= (next() % 255 + 1) as u8;
                }
            }
            let r = std::panic::catch_unwind(|| {
                callmood::core::codec::decode_audio_file(&bytes).map(|a| {
                    assert!(a.samples.iter().all(|c| c.len() == a.frames()));
                    assert!(a.samples.iter().flatten().all(|s| (-1.0..=1.0).contains(s)));
                })
            });
            match r {
                Ok(Err(_)) => damaged += 1,
                Ok(Ok(())) => {}
                Err(_) => panic!("{}: damage {k} made the decoder panic", f.display()),
            }
        }
        eprintln!("{}: {damaged} of 150 damaged copies refused", f.display());
    }
}

/// The Ogg page checksum (RFC 3533: CRC-32, polynomial 0x04C11DB7, not reflected, over the
/// page with its checksum field zeroed).
fn ogg_crc(page: &[u8]) -> u32 {
    page.iter().fold(0u32, |mut crc, &b| {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
        crc
    })
}

#[test]
fn an_opus_header_gain_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let wav = stereo_call(dir.path(), 16000);
    let plain = std::fs::read(ffmpeg(&wav, "call.opus", &["-c:a", "libopus"])).unwrap();
    // The first page holds OpusHead alone: set its output gain (Q7.8 dB at byte 16) to
    // -6.0 dB and the page's checksum to match.
    let head = plain.windows(8).position(|w| w == b"OpusHead").unwrap();
    let segments = usize::from(plain[26]);
    let body: usize = plain[27..27 + segments]
        .iter()
        .map(|&s| usize::from(s))
        .sum();
    let page_len = 27 + segments + body;
    let mut quiet = plain.clone();
    quiet[head + 16..head + 18].copy_from_slice(&(-6 * 256i16).to_le_bytes());
    quiet[22..26].fill(0);
    let crc = ogg_crc(&quiet[..page_len]);
    quiet[22..26].copy_from_slice(&crc.to_le_bytes());

    let decode = |bytes: &[u8]| callmood::core::codec::decode_audio_file(bytes).unwrap();
    let (a, b) = (decode(&plain), decode(&quiet));
    assert_eq!(a.frames(), b.frames());
    let rms = |x: &WavAudio| {
        let s = &x.samples[0];
        (s.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / s.len() as f64).sqrt()
    };
    let ratio_db = 20.0 * (rms(&b) / rms(&a)).log10();
    assert!((ratio_db + 6.0).abs() < 0.05, "{ratio_db:.3} dB");
}
