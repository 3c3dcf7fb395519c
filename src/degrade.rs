//! Telephone-line simulation for training and evaluation: what a 16 kHz studio recording
//! becomes on its way through a phone call. Sans-I/O and seeded.
//!
//! The chain: band-limit to the telephone band (second-order Butterworth high-pass at
//! 300 Hz, fourth-order low-pass at 3400 Hz), take every second sample (8 kHz; the
//! low-pass keeps the aliasing small), add light white noise at a random
//! signal-to-noise ratio, and encode G.711 μ-law. The result is what a `MULAW` channel at
//! 8000 Hz carries, so the service's own decoder and resampler bring it back.

use crate::codec::g711;
use crate::rng::SplitMix64;

/// Range of the line noise's signal-to-noise ratio, dB (re the clip's RMS level).
pub const SNR_RANGE_DB: (f32, f32) = (25.0, 40.0);

/// Settings of [`telephony`].
#[derive(Clone, Copy, Debug)]
pub struct LineConfig {
    /// Seed of the noise and of the SNR draw.
    pub seed: u64,
}

/// A biquad section (direct form I), coefficients normalised by a0.
#[derive(Clone, Copy, Debug)]
struct Biquad {
    b: [f32; 3],
    a: [f32; 2],
    x: [f32; 2],
    y: [f32; 2],
}

impl Biquad {
    /// RBJ cookbook low- or high-pass at `f` Hz with quality `q`, sample rate `fs`.
    fn new(f: f32, q: f32, fs: f32, high: bool) -> Self {
        let w = 2.0 * std::f32::consts::PI * f / fs;
        let (sin, cos) = w.sin_cos();
        let alpha = sin / (2.0 * q);
        let a0 = 1.0 + alpha;
        let b = if high {
            [(1.0 + cos) / 2.0, -(1.0 + cos), (1.0 + cos) / 2.0]
        } else {
            [(1.0 - cos) / 2.0, 1.0 - cos, (1.0 - cos) / 2.0]
        };
        Self {
            b: b.map(|v| v / a0),
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }

    fn run(&mut self, x: f32) -> f32 {
        let y = self.b[0] * x + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [x, self.x[0]];
        self.y = [y, self.y[0]];
        y
    }
}

/// Passes 16 kHz audio through a simulated phone line; returns 8 kHz μ-law bytes.
pub fn telephony(x16k: &[f32], cfg: LineConfig) -> Vec<u8> {
    const FS: f32 = 16_000.0;
    // Butterworth: Q 0.7071 for second order; 0.5412 and 1.3066 for the fourth-order pair.
    let mut chain = [
        Biquad::new(300.0, std::f32::consts::FRAC_1_SQRT_2, FS, true),
        Biquad::new(3400.0, 0.5412, FS, false),
        Biquad::new(3400.0, 1.3066, FS, false),
    ];
    let narrow: Vec<f32> = x16k
        .iter()
        .map(|&v| chain.iter_mut().fold(v, |acc, b| b.run(acc)))
        .step_by(2)
        .collect();
    let mut rng = SplitMix64::new(cfg.seed);
    let snr = SNR_RANGE_DB.0 + (SNR_RANGE_DB.1 - SNR_RANGE_DB.0) * rng.next_f32();
    let rms = (narrow.iter().map(|v| v * v).sum::<f32>() / narrow.len().max(1) as f32).sqrt();
    let noise_rms = rms * 10f32.powf(-snr / 20.0);
    narrow
        .iter()
        .map(|&v| {
            let s = (v + noise_rms * rng.normal()).clamp(-1.0, 1.0);
            g711::ulaw_encode((s * 32767.0) as i16)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * freq * i as f32 / 16_000.0).sin())
            .collect()
    }

    fn rms_after(freq: f32) -> f32 {
        let y: Vec<f32> = telephony(&tone(freq, 16_000), LineConfig { seed: 1 })
            .into_iter()
            .skip(800)
            .map(|c| g711::ulaw_decode(c) as f32 / 32768.0)
            .collect();
        (y.iter().map(|v| v * v).sum::<f32>() / y.len() as f32).sqrt()
    }

    /// In-band tones pass at about their level (0.3 peak = 0.212 RMS); out-of-band tones
    /// are cut hard; the output is 8 kHz (half the samples).
    #[test]
    fn passes_the_telephone_band_only() {
        assert_eq!(telephony(&tone(1000.0, 16_000), LineConfig { seed: 1 }).len(), 8000);
        let pass = rms_after(1000.0);
        assert!((pass - 0.212).abs() < 0.02, "1 kHz rms {pass}");
        assert!(rms_after(100.0) < 0.05, "100 Hz rms {}", rms_after(100.0));
        assert!(rms_after(5000.0) < 0.05, "5 kHz rms {}", rms_after(5000.0));
        // Same seed, same bytes.
        let x = tone(440.0, 4000);
        assert_eq!(
            telephony(&x, LineConfig { seed: 9 }),
            telephony(&x, LineConfig { seed: 9 })
        );
    }
}
