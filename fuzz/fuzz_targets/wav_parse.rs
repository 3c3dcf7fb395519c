//! Fuzzes the WAV parser, and through it the resampling to 16 kHz that a parsed recording
//! goes through next.
//!
//! The whole input is a WAV file, as a client sends it in `AnalyzeRecording`. When it
//! parses, the documented shape is checked (one `Vec` per channel, all `frames()` long, no
//! more audio than bytes, `duration_s()` = frames / rate, every sample in -1..1, floats
//! too). Then, as the service does, each channel (8 at most, as a call takes; 65536 frames
//! at most) is fed to a `Resampler` at the file's rate in 1-second steps and flushed: the
//! output must be `round(frames * 16000 / rate)` finite samples, and the first channel
//! through `corpus::to_16k` in one piece must give the same samples. For a rate whose FFT
//! block is over 1000 samples (not 8, 11.025, 12, 16, 22.05, 24, 32, 44.1 or 48 kHz) only
//! the first channel is resampled and `to_16k` is skipped, so that no input takes more
//! than about 0.1 s.
#![no_main]

use callmood::call::MAX_CHANNELS;
use callmood::core::codec::wav::parse_wav;
use callmood::core::dsp::resample::Resampler;
use callmood::train::corpus::{to_16k, Audio};
use callmood::SAMPLE_RATE;
use libfuzzer_sys::fuzz_target;

/// Resample no more than this many frames per channel, so no input takes seconds.
const MAX_RESAMPLE_FRAMES: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let Ok(wav) = parse_wav(data) else {
        return;
    };
    let channels = usize::from(wav.channels);
    let frames = wav.frames();
    assert!(channels >= 1);
    assert!(wav.sample_rate >= 1);
    assert_eq!(wav.samples.len(), channels);
    assert!(wav.samples.iter().all(|c| c.len() == frames));
    let bytes = frames * channels * wav.encoding.bytes_per_sample();
    assert!(
        bytes <= data.len(),
        "{bytes} bytes of audio from {}",
        data.len()
    );
    assert_eq!(wav.duration_s(), frames as f64 / f64::from(wav.sample_rate));
    for s in wav.samples.iter().flatten() {
        assert!((-1.0..=1.0).contains(s), "{s} from {:?}", wav.encoding);
    }

    // What the service does next: one resampler per channel, fed a second at a time.
    if channels > MAX_CHANNELS || frames > MAX_RESAMPLE_FRAMES {
        return;
    }
    let rate = wav.sample_rate;
    let want =
        ((frames as u64 * u64::from(SAMPLE_RATE) + u64::from(rate) / 2) / u64::from(rate)) as usize;
    // An unusual rate needs an FFT block of up to a second (`rate / gcd(rate, 16000)`
    // samples), costly to plan under ASan: resample only the first channel then.
    let usual = rate / gcd(rate, SAMPLE_RATE) <= 1000;
    let take = if usual { channels } else { 1 };
    let mut first = None;
    for ch in &wav.samples[..take] {
        let Ok(mut r) = Resampler::new(rate) else {
            assert!(to_16k(&Audio {
                rate_hz: rate,
                samples: ch.clone()
            })
            .is_err());
            return;
        };
        let mut out = Vec::new();
        for step in ch.chunks(rate as usize) {
            r.process_into(step, &mut out);
        }
        r.flush_into(&mut out);
        assert_eq!(out.len(), want, "{frames} frames at {rate} Hz");
        assert!(out.iter().all(|s| s.is_finite()));
        first.get_or_insert(out);
    }
    if usual {
        let whole = to_16k(&Audio {
            rate_hz: rate,
            samples: wav.samples[0].clone(),
        })
        .expect("the resampler accepted this rate");
        assert_eq!(Some(whole), first);
    }
});

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
