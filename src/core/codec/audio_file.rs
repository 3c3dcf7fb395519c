//! Recording files in the containers call archives use: WAV, FLAC, MP3, Ogg Vorbis and
//! Ogg Opus, decoded from bytes (no I/O in the decoder itself) into the same
//! [`WavAudio`] the WAV parser returns, channels kept apart (stereo calls: caller left,
//! agent right).
//!
//! - WAV goes through this crate's own parser ([`super::wav`]), unchanged.
//! - FLAC, MP3 and Ogg Vorbis go through Symphonia (pure Rust, demuxer and decoder), with
//!   its gapless trimming: an MP3's encoder delay and padding (LAME header) and an Ogg
//!   stream's end trim (granule position) are cut, so the audio lines up with the original.
//! - Ogg Opus is demuxed by Symphonia (which has no Opus decoder) and decoded by libopus
//!   (the `opus` crate, which builds the reference libopus from source with cmake) at
//!   16 kHz, the rate the analysis runs at (a third of the memory of 48 kHz, and no
//!   resampling); the stream's pre-skip and end trim are cut and its output gain applied.
//!
//! The format is told by the file's first bytes, never by its name. Decoded audio is
//! capped at [`MAX_DECODED_SAMPLES`]: a small compressed file must not expand without
//! bound (a 64 MiB MP3 at 8 kbit/s is 18 hours).

use std::io::Cursor;
use std::path::Path;

use symphonia::core::codecs::audio::well_known::CODEC_ID_OPUS;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::wav::{parse_wav, WavAudio, WavEncoding, WavError};

/// Decoded samples (all channels together) one file may yield at most: 2^28, 1 GiB as
/// f32; 4.6 hours of 8 kHz stereo, 46 minutes of 48 kHz stereo.
pub const MAX_DECODED_SAMPLES: usize = 1 << 28;

/// Channels a compressed recording may have (a call has two legs; more are refused here
/// rather than by the call, so the error names the file's format).
pub const MAX_CHANNELS: usize = 8;

/// The rate Ogg Opus pre-skip and granule positions count in, Hz (RFC 7845 §4).
const OPUS_GRANULE_RATE_HZ: usize = 48_000;
/// The rate libopus decodes at here, Hz: the analysis rate (libopus decodes at 8, 12,
/// 16, 24 or 48 kHz natively).
const OPUS_DECODE_RATE_HZ: u32 = crate::SAMPLE_RATE;
/// Longest Opus packet, samples per channel at the decode rate (120 ms).
const OPUS_MAX_FRAME: usize = OPUS_DECODE_RATE_HZ as usize * 120 / 1000;

/// 48 kHz granule samples as samples at the decode rate, rounded.
fn opus_frames(granules: usize) -> usize {
    let ratio = OPUS_GRANULE_RATE_HZ / OPUS_DECODE_RATE_HZ as usize;
    granules.saturating_add(ratio / 2) / ratio
}

/// File name extensions of the recordings `analyze` looks for in a directory (any case).
pub const EXTENSIONS: [&str; 6] = ["wav", "flac", "mp3", "ogg", "oga", "opus"];

/// Whether `path` has one of the [`EXTENSIONS`].
pub fn has_recording_extension(path: &Path) -> bool {
    path.extension().is_some_and(|x| {
        EXTENSIONS
            .iter()
            .any(|e| x.eq_ignore_ascii_case(std::ffi::OsStr::new(e)))
    })
}

/// A recording's container and codec, as told by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// RIFF/WAVE.
    Wav,
    /// Native FLAC (`fLaC`).
    Flac,
    /// MPEG audio layer III, with or without an ID3v2 tag in front.
    Mp3,
    /// Ogg, codec not yet known (Vorbis or Opus once its first packet is read).
    Ogg,
}

impl std::fmt::Display for FileFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileFormat::Wav => "WAV",
            FileFormat::Flac => "FLAC",
            FileFormat::Mp3 => "MP3",
            FileFormat::Ogg => "Ogg",
        })
    }
}

/// The format `bytes` start like, if any.
pub fn sniff(bytes: &[u8]) -> Option<FileFormat> {
    match bytes {
        [b'R', b'I', b'F', b'F', ..] => Some(FileFormat::Wav),
        [b'f', b'L', b'a', b'C', ..] => Some(FileFormat::Flac),
        [b'O', b'g', b'g', b'S', ..] => Some(FileFormat::Ogg),
        [b'I', b'D', b'3', ..] => Some(FileFormat::Mp3),
        // An MPEG audio frame sync (11 bits set) with layer III (bits 01).
        [0xFF, b, ..] if b & 0xE0 == 0xE0 && (b >> 1) & 0x03 == 0x01 => Some(FileFormat::Mp3),
        _ => None,
    }
}

/// What is wrong with a recording file.
#[derive(Debug, thiserror::Error)]
pub enum AudioFileError {
    /// A RIFF file the WAV parser refused.
    #[error(transparent)]
    Wav(#[from] WavError),
    /// Neither WAV nor FLAC, MP3 or Ogg. (Worded to start as the WAV parser's own error,
    /// which was all `analyze` said before it read other formats.)
    #[error("not a RIFF file, nor FLAC, MP3 or Ogg (starts with {0:?})")]
    Unrecognised(Vec<u8>),
    /// The container or codec could not be read.
    #[error("{format}: {message}")]
    Malformed {
        /// The format the bytes started like (`Ogg Opus` once known).
        format: String,
        /// What the demuxer or decoder said.
        message: String,
    },
    /// An Ogg stream whose codec is neither Vorbis nor Opus (e.g. FLAC-in-Ogg, Speex).
    #[error("Ogg stream of a codec callmood does not read (Vorbis and Opus are read)")]
    UnsupportedOggCodec,
    /// No audio in the file.
    #[error("{0}: no audio track")]
    NoAudio(FileFormat),
    /// More channels than [`MAX_CHANNELS`] (or than Ogg Opus mapping family 0's two).
    #[error("{format}: {channels} channels, at most {max} are read")]
    TooManyChannels {
        /// The format, in words.
        format: String,
        /// Channels in the file.
        channels: usize,
        /// Channels read at most.
        max: usize,
    },
    /// The sample rate changed in the middle of the stream.
    #[error("{format}: sample rate changes from {from} Hz to {to} Hz mid-stream")]
    RateChanged {
        /// The format, in words.
        format: String,
        /// Rate of the first audio, Hz.
        from: u32,
        /// The later rate, Hz.
        to: u32,
    },
    /// Decoding would yield more than [`MAX_DECODED_SAMPLES`].
    #[error("{format}: more than {max} decoded samples (about {hours:.1} h at this rate and channel count)")]
    TooLong {
        /// The format, in words.
        format: String,
        /// [`MAX_DECODED_SAMPLES`].
        max: usize,
        /// How long that is for this file, hours.
        hours: f64,
    },
    /// Reading the file failed (only from [`read_audio_file`]).
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Decodes a recording of any format [`sniff`] knows. WAV goes to [`parse_wav`]
/// unchanged; the others come back with `encoding` saying what their samples were before
/// they became f32: FLAC's bit depth, [`WavEncoding::Float32`] for the lossy codecs.
pub fn decode_audio_file(bytes: &[u8]) -> Result<WavAudio, AudioFileError> {
    match sniff(bytes) {
        Some(FileFormat::Wav) => Ok(parse_wav(bytes)?),
        Some(format) => decode_with_symphonia(format, bytes),
        None => Err(AudioFileError::Unrecognised(
            bytes.iter().take(4).copied().collect(),
        )),
    }
}

/// Reads and decodes a recording file (thin I/O helper for the shell; the decoder is
/// [`decode_audio_file`]).
pub fn read_audio_file(path: impl AsRef<Path>) -> Result<WavAudio, AudioFileError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| AudioFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    decode_audio_file(&bytes)
}

/// Decoded channels growing packet by packet, within the sample cap.
struct Collector {
    /// The format, in words, for errors.
    format: String,
    channels: Vec<Vec<f32>>,
    rate: Option<u32>,
    total: usize,
}

impl Collector {
    fn new(format: String) -> Self {
        Self {
            format,
            channels: Vec::new(),
            rate: None,
            total: 0,
        }
    }

    /// Appends planar samples (one slice per channel, equal lengths) at `rate` Hz.
    fn push(&mut self, rate: u32, planes: &[&[f32]]) -> Result<(), AudioFileError> {
        let Some(frames) = planes.first().map(|p| p.len()) else {
            return Ok(());
        };
        if planes.len() > MAX_CHANNELS {
            return Err(AudioFileError::TooManyChannels {
                format: self.format.clone(),
                channels: planes.len(),
                max: MAX_CHANNELS,
            });
        }
        match self.rate {
            Some(from) if from != rate => {
                return Err(AudioFileError::RateChanged {
                    format: self.format.clone(),
                    from,
                    to: rate,
                })
            }
            _ => self.rate = Some(rate),
        }
        if self.channels.is_empty() {
            self.channels = vec![Vec::new(); planes.len()];
        } else if self.channels.len() != planes.len() {
            return Err(AudioFileError::Malformed {
                format: self.format.clone(),
                message: format!(
                    "channel count changes from {} to {} mid-stream",
                    self.channels.len(),
                    planes.len()
                ),
            });
        }
        self.total = self.total.saturating_add(frames * planes.len());
        if self.total > MAX_DECODED_SAMPLES {
            let per_hour = 3600.0 * f64::from(rate.max(1)) * planes.len() as f64;
            return Err(AudioFileError::TooLong {
                format: self.format.clone(),
                max: MAX_DECODED_SAMPLES,
                hours: MAX_DECODED_SAMPLES as f64 / per_hour,
            });
        }
        for (ch, plane) in self.channels.iter_mut().zip(planes) {
            // Same clipping as the WAV parser: the samples promise -1..1 and finite values.
            ch.extend(plane.iter().map(|&s| {
                if s.is_finite() {
                    s.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            }));
        }
        Ok(())
    }

    fn finish(
        self,
        encoding: WavEncoding,
        no_audio: FileFormat,
    ) -> Result<WavAudio, AudioFileError> {
        let (Some(rate), false) = (self.rate, self.channels.is_empty()) else {
            return Err(AudioFileError::NoAudio(no_audio));
        };
        Ok(WavAudio {
            sample_rate: rate,
            channels: self.channels.len() as u16,
            encoding,
            samples: self.channels,
        })
    }
}

fn malformed(format: &str) -> impl Fn(SymphoniaError) -> AudioFileError + '_ {
    move |e| AudioFileError::Malformed {
        format: format.to_string(),
        message: e.to_string(),
    }
}

/// FLAC, MP3 and Ogg through Symphonia's demuxers; Ogg Opus on to [`decode_opus`].
fn decode_with_symphonia(format: FileFormat, bytes: &[u8]) -> Result<WavAudio, AudioFileError> {
    let name = format.to_string();
    let mss = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut reader = symphonia::default::get_probe()
        .probe(
            &Hint::new(),
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| match (format, e) {
            (FileFormat::Ogg, SymphoniaError::Unsupported(_)) => {
                AudioFileError::UnsupportedOggCodec
            }
            (_, e) => malformed(&name)(e),
        })?;
    let track = reader
        .default_track(TrackType::Audio)
        .ok_or(AudioFileError::NoAudio(format))?;
    let track_id = track.id;
    let delay = track.delay.unwrap_or(0) as usize;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .cloned()
        .ok_or(AudioFileError::NoAudio(format))?;
    if params.codec == CODEC_ID_OPUS {
        return decode_opus(reader.as_mut(), track_id, delay, &params);
    }
    if format == FileFormat::Ogg
        && params.codec != symphonia::core::codecs::audio::well_known::CODEC_ID_VORBIS
    {
        return Err(AudioFileError::UnsupportedOggCodec);
    }
    let name = if format == FileFormat::Ogg {
        "Ogg Vorbis".to_string()
    } else {
        name
    };
    let encoding = match (format, params.bits_per_sample) {
        (FileFormat::Flac, Some(b)) if b <= 8 => WavEncoding::PcmU8,
        (FileFormat::Flac, Some(b)) if b <= 16 => WavEncoding::PcmI16,
        (FileFormat::Flac, Some(b)) if b <= 24 => WavEncoding::PcmI24,
        (FileFormat::Flac, _) => WavEncoding::PcmI32,
        _ => WavEncoding::Float32,
    };
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(malformed(&name))?;
    let mut out = Collector::new(name.clone());
    let mut planes: Vec<Vec<f32>> = Vec::new();
    while let Some(packet) = next_packet(reader.as_mut(), &name)? {
        if packet.track_id != track_id {
            continue;
        }
        let buf = decoder.decode(&packet).map_err(malformed(&name))?;
        let rate = buf.spec().rate();
        buf.copy_to_vecs_planar::<f32>(&mut planes);
        let refs: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
        out.push(rate, &refs)?;
    }
    out.finish(encoding, format)
}

/// The next packet, `None` at the end of the stream (a file cut short ends there too, as
/// a truncated WAV yields the frames it has).
fn next_packet(
    reader: &mut dyn FormatReader,
    format: &str,
) -> Result<Option<symphonia::core::packet::Packet>, AudioFileError> {
    match reader.next_packet() {
        Ok(p) => Ok(p),
        Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Ok(None)
        }
        Err(e) => Err(malformed(format)(e)),
    }
}

/// Ogg Opus: Symphonia's packets decoded by libopus at 16 kHz; the first `pre_skip`
/// samples (RFC 7845 §4.2) and each packet's end trim cut, the header's output gain
/// applied.
fn decode_opus(
    reader: &mut dyn FormatReader,
    track_id: u32,
    pre_skip: usize,
    params: &AudioCodecParameters,
) -> Result<WavAudio, AudioFileError> {
    const NAME: &str = "Ogg Opus";
    let n = params.channels.as_ref().map_or(0, |c| c.count());
    let channels = match n {
        1 => opus::Channels::Mono,
        2 => opus::Channels::Stereo,
        _ => {
            // Mapping families 1 and 255 (more than two channels) need libopus's
            // multistream decoder; calls are mono or stereo.
            return Err(AudioFileError::TooManyChannels {
                format: NAME.into(),
                channels: n,
                max: 2,
            });
        }
    };
    // OpusHead: output gain, Q7.8 dB, at byte 16 (RFC 7845 §5.1).
    let gain_db = params
        .extra_data
        .as_deref()
        .and_then(|h| h.get(16..18))
        .map_or(0.0, |g| f32::from(i16::from_le_bytes([g[0], g[1]])) / 256.0);
    let gain = 10f32.powf(gain_db / 20.0);
    let opus_error = |e: opus::Error| AudioFileError::Malformed {
        format: NAME.into(),
        message: e.to_string(),
    };
    let mut decoder = opus::Decoder::new(OPUS_DECODE_RATE_HZ, channels).map_err(opus_error)?;
    let mut interleaved = vec![0f32; OPUS_MAX_FRAME * n];
    let mut planes: Vec<Vec<f32>> = vec![Vec::with_capacity(OPUS_MAX_FRAME); n];
    let mut out = Collector::new(NAME.into());
    let mut skip = opus_frames(pre_skip);
    while let Some(packet) = next_packet(reader, NAME)? {
        if packet.track_id != track_id {
            continue;
        }
        let frames = decoder
            .decode_float(&packet.data, &mut interleaved, false)
            .map_err(opus_error)?;
        let trim_end = opus_frames(usize::try_from(packet.trim_end.get()).unwrap_or(usize::MAX));
        let keep_end = frames.saturating_sub(trim_end);
        let start = skip.min(keep_end);
        skip -= start;
        for (c, plane) in planes.iter_mut().enumerate() {
            plane.clear();
            plane.extend(
                interleaved[start * n..keep_end * n]
                    .iter()
                    .skip(c)
                    .step_by(n)
                    .map(|s| s * gain),
            );
        }
        let refs: Vec<&[f32]> = planes.iter().map(Vec::as_slice).collect();
        out.push(OPUS_DECODE_RATE_HZ, &refs)?;
    }
    out.finish(WavEncoding::Float32, FileFormat::Ogg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::codec::wav::build_wav;

    #[test]
    fn formats_are_told_by_their_first_bytes() {
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVE"), Some(FileFormat::Wav));
        assert_eq!(sniff(b"fLaC\0"), Some(FileFormat::Flac));
        assert_eq!(sniff(b"OggS\0"), Some(FileFormat::Ogg));
        assert_eq!(sniff(b"ID3\x04"), Some(FileFormat::Mp3));
        // MPEG-1 layer III frame sync; layer II (bits 10) is not MP3.
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90]), Some(FileFormat::Mp3));
        assert_eq!(sniff(&[0xFF, 0xFD, 0x90]), None);
        assert_eq!(sniff(b"this is not audio"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn wav_goes_through_the_wav_parser_unchanged() {
        let data: Vec<u8> = [0i16, 16384, -32768]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let wav = build_wav(1, 1, 8000, 16, &data, false);
        assert_eq!(decode_audio_file(&wav).unwrap(), parse_wav(&wav).unwrap());
        let e = decode_audio_file(b"RIFF\0\0\0\0AVI ").unwrap_err();
        assert!(
            matches!(e, AudioFileError::Wav(WavError::NotWave(_))),
            "{e}"
        );
    }

    #[test]
    fn unknown_bytes_are_named_in_the_error() {
        let e = decode_audio_file(b"this is not audio").unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a RIFF file, nor FLAC, MP3 or Ogg (starts with [116, 104, 105, 115])"
        );
    }

    #[test]
    fn broken_containers_are_errors_not_panics() {
        // Valid magic, then garbage and every prefix of it: an error or (for a cut that
        // leaves nothing to decode) no audio, never a panic.
        let mut state = 0x9E37_79B9u32;
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        };
        for magic in [
            &b"fLaC"[..],
            b"OggS",
            b"ID3\x04\0\0\0\0\0\x10",
            &[0xFF, 0xFB, 0x90, 0x64],
        ] {
            let mut bytes = magic.to_vec();
            bytes.extend((0..600).map(|_| noise()));
            for cut in (0..bytes.len()).step_by(37) {
                let _ = decode_audio_file(&bytes[..cut]);
            }
            // An MP3 reader resyncs past garbage, so only the others must refuse it.
            if magic == b"fLaC" || magic == b"OggS" {
                assert!(decode_audio_file(&bytes).is_err());
            }
        }
    }
}
