//! `callmood listen`: a microphone as the audio of a call.
//!
//! Two halves, kept apart:
//! - [`ChunkAdapter`] is sans-I/O: interleaved samples at the device's rate and channel
//!   count in, 20 ms `LINEAR16` chunks at 16 kHz out. No cpal types; tested with synthetic
//!   tones.
//! - [`Microphone`], [`list_inputs`] and [`pump`] are the shell: cpal (ALSA on Linux) opens
//!   the device, its callback only copies samples into a bounded queue (never blocking the
//!   audio thread; what does not fit is counted and later replaced by silence so the call's
//!   timeline stays true), and an async task feeds the adapter and the gRPC stream.
//!
//! The cpal half (`Microphone`, `list_inputs`, `host_name`) is built only with the default
//! `listen` feature; the adapter and [`pump`] (fed by any source of [`Captured`] buffers)
//! always are.

use std::future::Future;

use tokio::sync::mpsc;

use crate::client::stream::audio_request;
use crate::core::codec;
use crate::core::dsp::resample::{ResampleError, Resampler};
use crate::proto::StreamCallRequest;
use crate::SAMPLE_RATE;

/// Length of one chunk sent to the server, ms.
pub const CHUNK_MS: u32 = 20;
/// Samples in one chunk at 16 kHz.
pub const CHUNK_SAMPLES: usize = (SAMPLE_RATE * CHUNK_MS / 1000) as usize;
/// Bytes in one chunk (16-bit samples).
pub const CHUNK_BYTES: usize = 2 * CHUNK_SAMPLES;
/// Capture buffers queued between the audio callback and the sender at most (a callback
/// is typically 5–25 ms of audio, so about a second).
pub const CAPTURE_QUEUE: usize = 64;

/// Why the microphone cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The system has no usable input device (as on a server or in CI).
    #[error("no audio input device found (cpal host {host}); use --list-devices")]
    NoDevice {
        /// The cpal host, e.g. ALSA.
        host: &'static str,
    },
    /// `--device` matched no input device.
    #[error("no audio input device matches `{name}` (cpal host {host}); use --list-devices")]
    NoSuchDevice {
        /// The name asked for.
        name: String,
        /// The cpal host.
        host: &'static str,
    },
    /// `--device` matched more than one input device.
    #[error("`{name}` matches several input devices ({matches}); give more of the name")]
    Ambiguous {
        /// The name asked for.
        name: String,
        /// The names it matched, comma-separated.
        matches: String,
    },
    /// The device offers no format the adapter takes.
    #[error("input device `{device}` offers {offered}; callmood takes {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz as f32, i16, u16 or i32 samples")]
    Unsupported {
        /// The device's name.
        device: String,
        /// What it offers by default.
        offered: String,
    },
    /// The device or the host failed.
    #[error("input device `{device}`: {message}")]
    Device {
        /// The device's name.
        device: String,
        /// cpal's message.
        message: String,
    },
    /// A stream with no channels.
    #[error("an input with 0 channels")]
    NoChannels,
    /// A rate the resampler does not take.
    #[error(transparent)]
    Rate(#[from] ResampleError),
}

/// Lowest device rate taken, Hz (the resampler's range).
pub const MIN_RATE_HZ: u32 = crate::core::dsp::resample::MIN_INPUT_RATE_HZ;
/// Highest device rate taken, Hz.
pub const MAX_RATE_HZ: u32 = crate::core::dsp::resample::MAX_INPUT_RATE_HZ;

/// A sample type an audio device delivers, as a float in -1..1.
pub trait InputSample: Copy {
    /// The sample in -1..1.
    fn to_f32(self) -> f32;
}

impl InputSample for f32 {
    fn to_f32(self) -> f32 {
        self
    }
}

impl InputSample for i16 {
    fn to_f32(self) -> f32 {
        codec::i16_to_sample(self)
    }
}

impl InputSample for u16 {
    /// Unsigned: 32768 is silence.
    fn to_f32(self) -> f32 {
        (f32::from(self) - 32_768.0) / 32_768.0
    }
}

impl InputSample for i32 {
    fn to_f32(self) -> f32 {
        (f64::from(self) / 2_147_483_648.0) as f32
    }
}

/// Interleaved device audio in, 20 ms chunks of 16 kHz mono `LINEAR16` (little-endian) out.
///
/// Channels are averaged to mono, the result resampled to 16 kHz ([`Resampler`], whose
/// delay is trimmed, so chunk `k` starts at `k * 20` ms of capture), and cut into chunks of
/// exactly [`CHUNK_BYTES`]; what does not fill a chunk waits for the next push. Input may
/// come in any sizes, even splitting a frame between pushes. Sans-I/O.
pub struct ChunkAdapter {
    channels: usize,
    /// Sum and count of the samples of the frame still being gathered.
    frame_sum: f32,
    frame_len: usize,
    /// Scratch: this push's mono samples at the device rate.
    mono: Vec<f32>,
    resampler: Resampler,
    /// 16 kHz samples not yet in a chunk (fewer than [`CHUNK_SAMPLES`] between calls).
    pending: Vec<f32>,
}

impl std::fmt::Debug for ChunkAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkAdapter")
            .field("channels", &self.channels)
            .field("rate_hz", &self.resampler.input_rate_hz())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl ChunkAdapter {
    /// An adapter for `channels` interleaved channels at `rate_hz` (8000..=48000).
    pub fn new(rate_hz: u32, channels: u16) -> Result<Self, ListenError> {
        if channels == 0 {
            return Err(ListenError::NoChannels);
        }
        Ok(Self {
            channels: usize::from(channels),
            frame_sum: 0.0,
            frame_len: 0,
            mono: Vec::new(),
            resampler: Resampler::new(rate_hz)?,
            pending: Vec::with_capacity(2 * CHUNK_SAMPLES),
        })
    }

    /// Takes interleaved samples; appends every chunk completed to `out`.
    pub fn push<S: InputSample>(&mut self, interleaved: &[S], out: &mut Vec<Vec<u8>>) {
        self.mono.clear();
        for s in interleaved {
            self.frame_sum += s.to_f32();
            self.frame_len += 1;
            if self.frame_len == self.channels {
                self.mono.push(self.frame_sum / self.channels as f32);
                self.frame_sum = 0.0;
                self.frame_len = 0;
            }
        }
        self.resampler.process_into(&self.mono, &mut self.pending);
        self.take_chunks(out);
    }

    /// Ends the stream: the resampler's tail and the last partial chunk, padded with
    /// silence to a whole chunk, go to `out` (so every chunk is [`CHUNK_BYTES`] and the
    /// total is the input's duration rounded up to 20 ms). A partial frame is dropped.
    /// The adapter can then take a new stream.
    pub fn flush(&mut self, out: &mut Vec<Vec<u8>>) {
        self.frame_sum = 0.0;
        self.frame_len = 0;
        self.resampler.flush_into(&mut self.pending);
        self.take_chunks(out);
        if !self.pending.is_empty() {
            self.pending.resize(CHUNK_SAMPLES, 0.0);
            self.take_chunks(out);
        }
    }

    fn take_chunks(&mut self, out: &mut Vec<Vec<u8>>) {
        let mut chunks = self.pending.chunks_exact(CHUNK_SAMPLES);
        for chunk in &mut chunks {
            let mut bytes = Vec::with_capacity(CHUNK_BYTES);
            for &s in chunk {
                bytes.extend_from_slice(&codec::sample_to_i16(s).to_le_bytes());
            }
            out.push(bytes);
        }
        let rest = chunks.remainder().len();
        let done = self.pending.len() - rest;
        self.pending.drain(..done);
    }
}

/// What the capture callback hands to [`pump`].
#[derive(Debug)]
pub enum Captured {
    /// Interleaved samples in -1..1.
    Samples {
        /// The samples.
        samples: Vec<f32>,
        /// Interleaved samples dropped since the capture started, all before these
        /// (the queue was full).
        lost_before: u64,
    },
    /// The device reported an error; `fatal` when it is gone.
    Error {
        /// cpal's message.
        message: String,
        /// The device is no longer available.
        fatal: bool,
    },
}

/// The cpal shell, only with the `listen` feature (cpal needs ALSA's headers on Linux).
#[cfg(feature = "listen")]
mod device {
    use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
    use tokio::sync::mpsc;

    use super::{Captured, InputSample, ListenError, MAX_RATE_HZ, MIN_RATE_HZ};

    /// An input device, opened with a configuration the adapter takes.
    pub struct Microphone {
        device: cpal::Device,
        config: cpal::SupportedStreamConfig,
        name: String,
    }

    impl std::fmt::Debug for Microphone {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.describe())
        }
    }

    /// One line about a configuration: rate, channels, sample format.
    fn config_line(c: &cpal::SupportedStreamConfig) -> String {
        format!(
            "{} Hz, {} ch, {}",
            c.sample_rate().0,
            c.channels(),
            c.sample_format()
        )
    }

    fn takes_format(f: cpal::SampleFormat) -> bool {
        use cpal::SampleFormat as F;
        matches!(f, F::F32 | F::I16 | F::U16 | F::I32)
    }

    fn device_name(d: &cpal::Device) -> String {
        d.name().unwrap_or_else(|_| "(unnamed)".into())
    }

    /// Runs `f` with stderr (fd 2) pointed at /dev/null, unless debug logging is on.
    ///
    /// alsa-lib prints its own diagnostics on stderr for every failed probe: a machine
    /// without a sound card gets a dozen lines for one look at the default device, and a
    /// device listing dozens more. callmood reports what went wrong in one line of its own
    /// (with cpal's error). Other threads' stderr is silenced too for the moment, so this
    /// wraps only device probing and opening; `RUST_LOG=debug` shows alsa-lib's lines.
    fn quietly<T>(f: impl FnOnce() -> T) -> T {
        #[cfg(unix)]
        let _restore = if tracing::enabled!(tracing::Level::DEBUG) {
            None
        } else {
            silence_stderr()
        };
        f()
    }

    /// Puts back the saved stderr when dropped.
    #[cfg(unix)]
    struct RestoreStderr(std::os::fd::OwnedFd);

    #[cfg(unix)]
    impl Drop for RestoreStderr {
        fn drop(&mut self) {
            let _ = rustix::stdio::dup2_stderr(&self.0);
        }
    }

    #[cfg(unix)]
    fn silence_stderr() -> Option<RestoreStderr> {
        use std::os::fd::AsFd;
        let saved = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .ok()?;
        rustix::stdio::dup2_stderr(&null).ok()?;
        Some(RestoreStderr(saved))
    }

    /// The cpal host's name, e.g. `ALSA`.
    pub fn host_name() -> &'static str {
        cpal::default_host().id().name()
    }

    /// An input device as `--list-devices` shows it.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct InputInfo {
        /// The device's name (what `--device` matches).
        pub name: String,
        /// Its default input configuration, or why it has none.
        pub default_config: Result<String, String>,
        /// Whether it is the system's default input.
        pub is_default: bool,
    }

    /// The input devices of the default cpal host.
    pub fn list_inputs() -> Result<Vec<InputInfo>, ListenError> {
        quietly(list_inputs_loudly)
    }

    fn list_inputs_loudly() -> Result<Vec<InputInfo>, ListenError> {
        let host = cpal::default_host();
        let default = host.default_input_device().map(|d| device_name(&d));
        let devices = host.input_devices().map_err(|e| ListenError::Device {
            device: format!("(cpal host {})", host.id().name()),
            message: e.to_string(),
        })?;
        Ok(devices
            .map(|d| {
                let name = device_name(&d);
                InputInfo {
                    is_default: default.as_deref() == Some(name.as_str()),
                    default_config: d
                        .default_input_config()
                        .map(|c| config_line(&c))
                        .map_err(|e| e.to_string()),
                    name,
                }
            })
            .collect())
    }

    impl Microphone {
        /// Opens the default input, or the input whose name is `name` (or, failing an exact
        /// match, the only one whose name contains it, ignoring case).
        pub fn open(name: Option<&str>) -> Result<Self, ListenError> {
            quietly(|| Self::open_loudly(name))
        }

        fn open_loudly(name: Option<&str>) -> Result<Self, ListenError> {
            let host = cpal::default_host();
            let host_name = host.id().name();
            let device = match name {
                None => host
                    .default_input_device()
                    .ok_or(ListenError::NoDevice { host: host_name })?,
                Some(want) => find_device(&host, want)?,
            };
            let dev_name = device_name(&device);
            let config = match device.default_input_config() {
                Ok(c) => c,
                // The default device of a machine with no sound card exists in name only.
                Err(_) if name.is_none() => return Err(ListenError::NoDevice { host: host_name }),
                Err(e) => {
                    return Err(ListenError::Device {
                        device: dev_name,
                        message: e.to_string(),
                    })
                }
            };
            let offered = config_line(&config);
            let config = choose_config(&device, config).ok_or(ListenError::Unsupported {
                device: dev_name.clone(),
                offered,
            })?;
            Ok(Self {
                device,
                config,
                name: dev_name,
            })
        }

        /// The device's name.
        pub fn name(&self) -> &str {
            &self.name
        }

        /// Capture rate, Hz.
        pub fn rate_hz(&self) -> u32 {
            self.config.sample_rate().0
        }

        /// Interleaved channels captured.
        pub fn channels(&self) -> u16 {
            self.config.channels()
        }

        /// `NAME (48000 Hz, 2 ch, f32)`.
        pub fn describe(&self) -> String {
            format!("{} ({})", self.name, config_line(&self.config))
        }

        /// Starts capturing. Each callback's samples go to `tx` without waiting; when the
        /// queue is full they are dropped, and the next buffer sent says how many were lost
        /// before it. The capture runs until the returned stream is dropped.
        pub fn start(&self, tx: mpsc::Sender<Captured>) -> Result<cpal::Stream, ListenError> {
            quietly(|| self.start_loudly(tx))
        }

        fn start_loudly(&self, tx: mpsc::Sender<Captured>) -> Result<cpal::Stream, ListenError> {
            use cpal::SampleFormat as F;
            let stream = match self.config.sample_format() {
                F::F32 => self.build::<f32>(tx),
                F::I16 => self.build::<i16>(tx),
                F::U16 => self.build::<u16>(tx),
                F::I32 => self.build::<i32>(tx),
                other => {
                    return Err(ListenError::Unsupported {
                        device: self.name.clone(),
                        offered: format!("{other} samples"),
                    })
                }
            }
            .map_err(|e| self.error(e))?;
            stream.play().map_err(|e| self.error(e))?;
            Ok(stream)
        }

        fn error(&self, e: impl std::fmt::Display) -> ListenError {
            ListenError::Device {
                device: self.name.clone(),
                message: e.to_string(),
            }
        }

        fn build<S: InputSample + cpal::SizedSample>(
            &self,
            tx: mpsc::Sender<Captured>,
        ) -> Result<cpal::Stream, cpal::BuildStreamError> {
            let err_tx = tx.clone();
            let mut lost = 0u64;
            self.device.build_input_stream(
                &self.config.config(),
                move |data: &[S], _: &cpal::InputCallbackInfo| {
                    // The audio thread must not wait: a full queue drops this buffer.
                    let samples = data.iter().map(|&s| s.to_f32()).collect();
                    let msg = Captured::Samples {
                        samples,
                        lost_before: lost,
                    };
                    if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(msg) {
                        lost += data.len() as u64;
                    }
                },
                move |e| {
                    let fatal = matches!(e, cpal::StreamError::DeviceNotAvailable);
                    let _ = err_tx.try_send(Captured::Error {
                        message: e.to_string(),
                        fatal,
                    });
                },
                None,
            )
        }
    }

    fn find_device(host: &cpal::Host, want: &str) -> Result<cpal::Device, ListenError> {
        let not_found = || ListenError::NoSuchDevice {
            name: want.to_string(),
            host: host.id().name(),
        };
        let mut devices: Vec<(String, cpal::Device)> = host
            .input_devices()
            .map_err(|e| ListenError::Device {
                device: want.to_string(),
                message: e.to_string(),
            })?
            .map(|d| (device_name(&d), d))
            .collect();
        if let Some(i) = devices.iter().position(|(n, _)| n == want) {
            return Ok(devices.swap_remove(i).1);
        }
        let lower = want.to_lowercase();
        devices.retain(|(n, _)| n.to_lowercase().contains(&lower));
        if devices.len() > 1 {
            let names: Vec<&str> = devices.iter().map(|(n, _)| n.as_str()).collect();
            return Err(ListenError::Ambiguous {
                name: want.to_string(),
                matches: names.join(", "),
            });
        }
        devices.pop().map(|(_, d)| d).ok_or_else(not_found)
    }

    /// The device's default configuration if the adapter takes it; else one of its ranges at
    /// 48, 44.1 or 16 kHz in a format it takes (e.g. for a 96 kHz default).
    fn choose_config(
        device: &cpal::Device,
        default: cpal::SupportedStreamConfig,
    ) -> Option<cpal::SupportedStreamConfig> {
        let rate_ok = |r: u32| (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&r);
        if takes_format(default.sample_format()) && rate_ok(default.sample_rate().0) {
            return Some(default);
        }
        let ranges: Vec<_> = device.supported_input_configs().ok()?.collect();
        [48_000, 44_100, 16_000].into_iter().find_map(|rate| {
            ranges
                .iter()
                .filter(|r| takes_format(r.sample_format()))
                .find(|r| r.min_sample_rate().0 <= rate && rate <= r.max_sample_rate().0)
                .map(|r| r.with_sample_rate(cpal::SampleRate(rate)))
        })
    }
}

#[cfg(feature = "listen")]
pub use device::{host_name, list_inputs, InputInfo, Microphone};

/// How [`pump`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PumpEnd {
    /// `stop` fired (Ctrl-C): the call was ended normally.
    Stopped,
    /// The device went away.
    DeviceGone(String),
    /// The capture queue closed (the stream was dropped).
    CaptureClosed,
    /// The gRPC stream is gone (the server ended the call).
    ServerGone,
}

/// What [`pump`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PumpReport {
    /// Why it ended.
    pub end: PumpEnd,
    /// Interleaved samples the capture queue dropped (sent as silence instead).
    pub lost_samples: u64,
}

/// Feeds captured audio through `adapter` into `requests` as `AudioChunk`s of
/// `channel_id`, until `stop` fires, the device goes away or either side closes. Audio the
/// callback had to drop is sent as silence in its place, so the call's timeline stays
/// true. On the way out the adapter is flushed and `requests` dropped, which half-closes
/// the call: the server then sends its summary.
pub async fn pump(
    mut capture: mpsc::Receiver<Captured>,
    mut adapter: ChunkAdapter,
    channel_id: u32,
    requests: mpsc::Sender<StreamCallRequest>,
    stop: impl Future<Output = ()>,
) -> PumpReport {
    tokio::pin!(stop);
    let mut chunks = Vec::new();
    let mut filled = 0u64;
    let silence = vec![0.0f32; 4096];
    let end = loop {
        let got = tokio::select! {
            got = capture.recv() => got,
            () = &mut stop => break PumpEnd::Stopped,
        };
        match got {
            None => break PumpEnd::CaptureClosed,
            Some(Captured::Error { message, fatal }) => {
                if fatal {
                    break PumpEnd::DeviceGone(message);
                }
                tracing::warn!("audio input: {message}");
            }
            Some(Captured::Samples {
                samples,
                lost_before,
            }) => {
                let mut gap = lost_before.saturating_sub(filled);
                filled = filled.max(lost_before);
                while gap > 0 {
                    let n = gap.min(silence.len() as u64) as usize;
                    adapter.push(&silence[..n], &mut chunks);
                    gap -= n as u64;
                }
                adapter.push(&samples, &mut chunks);
            }
        }
        if !send_chunks(&requests, channel_id, &mut chunks).await {
            break PumpEnd::ServerGone;
        }
    };
    adapter.flush(&mut chunks);
    send_chunks(&requests, channel_id, &mut chunks).await;
    PumpReport {
        end,
        lost_samples: filled,
    }
}

/// Sends and empties `chunks`; false when the stream is gone.
async fn send_chunks(
    requests: &mpsc::Sender<StreamCallRequest>,
    channel_id: u32,
    chunks: &mut Vec<Vec<u8>>,
) -> bool {
    for data in chunks.drain(..) {
        if requests
            .send(audio_request(channel_id, data))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::stream_call_request;
    use std::f64::consts::PI;

    /// `secs` of a 440 Hz sine at `rate`, amplitude 0.5, on every one of `channels`.
    fn sine(rate: u32, channels: usize, secs: f64) -> Vec<f32> {
        let n = (f64::from(rate) * secs) as usize;
        (0..n)
            .flat_map(|i| {
                let v = 0.5 * (2.0 * PI * 440.0 * i as f64 / f64::from(rate)).sin();
                std::iter::repeat_n(v as f32, channels)
            })
            .collect()
    }

    /// Runs `input` through an adapter in callbacks of the (cycled) odd sizes given.
    fn adapt<S: InputSample>(
        rate: u32,
        channels: u16,
        input: &[S],
        sizes: &[usize],
    ) -> Vec<Vec<u8>> {
        let mut a = ChunkAdapter::new(rate, channels).unwrap();
        let mut out = Vec::new();
        let mut pos = 0;
        for &size in sizes.iter().cycle() {
            if pos >= input.len() {
                break;
            }
            let end = (pos + size).min(input.len());
            a.push(&input[pos..end], &mut out);
            pos = end;
        }
        a.flush(&mut out);
        out
    }

    fn samples(chunks: &[Vec<u8>]) -> Vec<i16> {
        chunks
            .iter()
            .flat_map(|c| c.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])))
            .collect()
    }

    /// Frequency from rising zero crossings over the middle of the signal (16 kHz).
    fn frequency(x: &[i16]) -> f64 {
        let mid = &x[x.len() / 10..x.len() * 9 / 10];
        let rising: Vec<usize> = (1..mid.len())
            .filter(|&i| mid[i - 1] < 0 && mid[i] >= 0)
            .collect();
        let (first, last) = (rising[0], rising[rising.len() - 1]);
        (rising.len() - 1) as f64 * 16_000.0 / (last - first) as f64
    }

    fn check(rate: u32, channels: u16, sizes: &[usize]) {
        let secs = 1.5;
        let input = sine(rate, usize::from(channels), secs);
        let out = adapt(rate, channels, &input, sizes);
        assert!(out.iter().all(|c| c.len() == CHUNK_BYTES), "chunk sizes");
        // 1.5 s is 75 chunks; flushing pads the last one, so within one chunk.
        let want = (secs * 1000.0 / f64::from(CHUNK_MS)) as usize;
        assert!(
            out.len() == want || out.len() == want + 1,
            "{} chunks",
            out.len()
        );
        let x = samples(&out);
        let f = frequency(&x);
        assert!((f - 440.0).abs() < 2.0, "{rate} Hz x{channels}: {f} Hz");
        // The level survives (amplitude 0.5 = 16384) away from the edges.
        let peak = x[1600..x.len() - 1600]
            .iter()
            .map(|v| v.unsigned_abs())
            .max();
        let peak = f64::from(peak.unwrap_or(0));
        assert!((peak - 16_384.0).abs() < 600.0, "peak {peak}");
    }

    #[test]
    fn a_tone_at_44k1_stereo_in_odd_callbacks() {
        // Callback lengths in samples; odd ones split a stereo frame between calls.
        check(44_100, 2, &[441, 1023, 7, 2000, 333]);
    }

    #[test]
    fn a_tone_at_48k_mono_in_odd_callbacks() {
        check(48_000, 1, &[480, 997, 1, 4096, 129]);
    }

    #[test]
    fn a_tone_at_16k_passes_through() {
        check(16_000, 1, &[160, 321]);
    }

    #[test]
    fn channels_are_averaged() {
        // Left a tone, right silent: mono is half the tone.
        let tone = sine(48_000, 1, 0.5);
        let stereo: Vec<f32> = tone.iter().flat_map(|&v| [v, 0.0]).collect();
        let x = samples(&adapt(48_000, 2, &stereo, &[960]));
        let peak = x[1600..x.len() - 1600]
            .iter()
            .map(|v| v.unsigned_abs())
            .max();
        assert!((f64::from(peak.unwrap()) - 8_192.0).abs() < 400.0);
    }

    #[test]
    fn i16_u16_i32_and_f32_inputs_agree() {
        let f = sine(44_100, 2, 0.5);
        let i: Vec<i16> = f.iter().map(|&v| (v * 32_768.0).round() as i16).collect();
        let u: Vec<u16> = i.iter().map(|&v| (i32::from(v) + 32_768) as u16).collect();
        let w: Vec<i32> = i.iter().map(|&v| i32::from(v) << 16).collect();
        let sizes = [512, 33];
        let want = samples(&adapt(44_100, 2, &f, &sizes));
        for got in [
            samples(&adapt(44_100, 2, &i, &sizes)),
            samples(&adapt(44_100, 2, &u, &sizes)),
            samples(&adapt(44_100, 2, &w, &sizes)),
        ] {
            assert_eq!(got.len(), want.len());
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max();
            assert!(worst.unwrap_or(0) <= 2, "differ by {worst:?}");
        }
        // Full scale and silence of each type.
        assert_eq!(0u16.to_f32(), -1.0);
        assert_eq!(32_768u16.to_f32(), 0.0);
        assert_eq!(i16::MIN.to_f32(), -1.0);
        assert_eq!(i32::MIN.to_f32(), -1.0);
    }

    #[test]
    fn nothing_comes_out_before_a_whole_chunk_and_flush_pads() {
        let mut a = ChunkAdapter::new(16_000, 1).unwrap();
        let mut out = Vec::new();
        a.push(&[0.25f32; 319], &mut out);
        assert!(out.is_empty());
        a.push(&[0.25f32; 2], &mut out);
        assert_eq!(out.len(), 1);
        a.flush(&mut out);
        assert_eq!(out.len(), 2);
        let tail = samples(&out[1..]);
        assert_eq!(tail[0], 8192);
        assert!(tail[1..].iter().all(|&v| v == 0));
        // An empty stream flushes to nothing.
        let mut out = Vec::new();
        ChunkAdapter::new(44_100, 2).unwrap().flush(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn bad_formats_are_refused() {
        assert!(matches!(
            ChunkAdapter::new(16_000, 0),
            Err(ListenError::NoChannels)
        ));
        let e = ChunkAdapter::new(96_000, 2).unwrap_err();
        assert!(e.to_string().contains("96000"), "{e}");
    }

    #[tokio::test]
    async fn pump_sends_chunks_fills_drops_with_silence_and_half_closes() {
        let (cap_tx, cap_rx) = mpsc::channel(8);
        let (req_tx, mut req_rx) = mpsc::channel(64);
        let adapter = ChunkAdapter::new(16_000, 1).unwrap();
        // 10 ms captured, 20 ms lost to a full queue, then 15 ms more, then the end.
        for (n, lost_before) in [(160, 0), (240, 320)] {
            let samples = vec![0.5; n];
            let msg = Captured::Samples {
                samples,
                lost_before,
            };
            cap_tx.send(msg).await.unwrap();
        }
        drop(cap_tx);
        let report = pump(cap_rx, adapter, 3, req_tx, std::future::pending::<()>()).await;
        assert_eq!(
            report,
            PumpReport {
                end: PumpEnd::CaptureClosed,
                lost_samples: 320
            }
        );
        let mut data = Vec::new();
        while let Some(r) = req_rx.recv().await {
            let Some(stream_call_request::Request::Audio(a)) = r.request else {
                panic!("not audio");
            };
            assert_eq!(a.channel_id, 3);
            assert_eq!(a.data.len(), CHUNK_BYTES);
            data.push(a.data);
        }
        // 45 ms in all: three chunks, the last padded; the gap is silence.
        let x = samples(&data);
        assert_eq!(x.len(), 3 * CHUNK_SAMPLES);
        assert!(x[..160].iter().all(|&v| v == 16_384));
        assert!(x[160..480].iter().all(|&v| v == 0));
        assert!(x[480..720].iter().all(|&v| v == 16_384));
        assert!(x[720..].iter().all(|&v| v == 0));
    }

    #[tokio::test]
    async fn pump_stops_on_request_and_on_a_lost_device() {
        let (_cap_tx, cap_rx) = mpsc::channel(8);
        let (req_tx, _req_rx) = mpsc::channel(8);
        let adapter = ChunkAdapter::new(48_000, 2).unwrap();
        let report = pump(cap_rx, adapter, 0, req_tx, async {}).await;
        assert_eq!(report.end, PumpEnd::Stopped);

        let (cap_tx, cap_rx) = mpsc::channel(8);
        let (req_tx, _req_rx) = mpsc::channel(8);
        let adapter = ChunkAdapter::new(48_000, 2).unwrap();
        cap_tx
            .send(Captured::Error {
                message: "unplugged".into(),
                fatal: true,
            })
            .await
            .unwrap();
        let report = pump(cap_rx, adapter, 0, req_tx, std::future::pending::<()>()).await;
        assert_eq!(report.end, PumpEnd::DeviceGone("unplugged".into()));
    }
}
