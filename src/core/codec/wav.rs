//! RIFF/WAVE parsing from bytes (no I/O in the parser itself).
//!
//! Supported: format tags 1 (integer PCM, 8/16/24/32-bit), 3 (IEEE float, 32/64-bit),
//! 6 (A-law), 7 (μ-law) and 0xFFFE (`WAVE_FORMAT_EXTENSIBLE`, whose sub-format GUID names
//! one of those), any channel count. Unknown chunks are skipped; a missing pad byte after an
//! odd-sized chunk is tolerated; a `data` chunk that claims more bytes than the file holds
//! (a truncated or still-growing stream) yields the whole frames that are there.
//!
//! The parser never panics and never allocates more than the input's size suggests.

use std::path::Path;

use super::{alaw_to_sample, ulaw_to_sample, ByteOrder};

/// Sample encoding of a WAV file's `data` chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WavEncoding {
    /// Unsigned 8-bit integer PCM (silence at 128).
    PcmU8,
    /// Signed 16-bit little-endian integer PCM.
    PcmI16,
    /// Signed 24-bit little-endian integer PCM (packed, 3 bytes).
    PcmI24,
    /// Signed 32-bit little-endian integer PCM.
    PcmI32,
    /// 32-bit IEEE float.
    Float32,
    /// 64-bit IEEE float.
    Float64,
    /// G.711 A-law, 8 bits.
    Alaw,
    /// G.711 μ-law, 8 bits.
    Mulaw,
}

impl WavEncoding {
    /// Bytes one sample of one channel occupies.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            WavEncoding::PcmU8 | WavEncoding::Alaw | WavEncoding::Mulaw => 1,
            WavEncoding::PcmI16 => 2,
            WavEncoding::PcmI24 => 3,
            WavEncoding::PcmI32 | WavEncoding::Float32 => 4,
            WavEncoding::Float64 => 8,
        }
    }
}

/// Decoded WAV audio.
#[derive(Clone, Debug, PartialEq)]
pub struct WavAudio {
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Number of channels (≥ 1).
    pub channels: u16,
    /// Encoding the file used.
    pub encoding: WavEncoding,
    /// Samples per channel, in -1..1: integers scaled, floats clipped (non-finite floats
    /// become 0).
    pub samples: Vec<Vec<f32>>,
}

impl WavAudio {
    /// Number of sample frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.first().map_or(0, Vec::len)
    }

    /// Duration, seconds.
    pub fn duration_s(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// What is wrong with a WAV file.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// The first four bytes are not `RIFF` (RIFX and RF64 are not supported).
    #[error("not a RIFF file (starts with {0:?})")]
    NotRiff([u8; 4]),
    /// The RIFF form type is not `WAVE`.
    #[error("RIFF form type is {0:?}, not WAVE")]
    NotWave([u8; 4]),
    /// Fewer than 12 bytes: no room for the RIFF header.
    #[error("file too short for a RIFF header ({0} bytes)")]
    TooShort(usize),
    /// No `fmt ` chunk before the end of the file.
    #[error("no fmt chunk")]
    NoFmtChunk,
    /// The `fmt ` chunk is shorter than its format needs.
    #[error("fmt chunk too short ({len} bytes, need {need})")]
    FmtTooShort {
        /// Bytes present.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A format tag other than 1, 3, 6, 7 or 0xFFFE.
    #[error("unsupported WAV format tag {0:#06x}")]
    UnsupportedFormatTag(u16),
    /// `WAVE_FORMAT_EXTENSIBLE` with a sub-format GUID that is not one of the supported tags.
    #[error("unsupported WAVE_FORMAT_EXTENSIBLE sub-format {0}")]
    UnsupportedSubFormat(String),
    /// A bit depth the format tag does not allow (or we do not read).
    #[error("unsupported bits per sample {bits} for format tag {format_tag:#06x}")]
    UnsupportedBitsPerSample {
        /// Format tag after resolving `WAVE_FORMAT_EXTENSIBLE`.
        format_tag: u16,
        /// Declared bits per sample.
        bits: u16,
    },
    /// The fmt chunk declares zero channels.
    #[error("fmt chunk declares zero channels")]
    ZeroChannels,
    /// The fmt chunk declares a zero sample rate.
    #[error("fmt chunk declares a zero sample rate")]
    ZeroSampleRate,
    /// No `data` chunk before the end of the file.
    #[error("no data chunk")]
    NoDataChunk,
    /// Reading the file failed (only from [`read_wav_file`]).
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_ALAW: u16 = 6;
const FORMAT_MULAW: u16 = 7;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// The 14 bytes after the 2-byte tag in every `KSDATAFORMAT_SUBTYPE_*` GUID derived from a
/// WAVE format tag (`xxxx0000-0000-0010-8000-00aa00389b71`).
const KSDATAFORMAT_SUFFIX: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn id_at(b: &[u8], at: usize) -> Option<[u8; 4]> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some([s[0], s[1], s[2], s[3]])
}

/// A plausible chunk id: four printable ASCII characters.
fn looks_like_chunk_id(b: &[u8], at: usize) -> bool {
    id_at(b, at).is_some_and(|id| id.iter().all(|c| (0x20..=0x7E).contains(c)))
}

struct Fmt {
    channels: u16,
    sample_rate: u32,
    encoding: WavEncoding,
}

fn parse_fmt(body: &[u8]) -> Result<Fmt, WavError> {
    let too_short = |need| WavError::FmtTooShort {
        len: body.len(),
        need,
    };
    let mut tag = u16_at(body, 0).ok_or(too_short(16))?;
    let channels = u16_at(body, 2).ok_or(too_short(16))?;
    let sample_rate = u32_at(body, 4).ok_or(too_short(16))?;
    let bits = u16_at(body, 14).ok_or(too_short(16))?;
    if tag == FORMAT_EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4) subFormat GUID(16) from offset 16.
        let guid = body.get(24..40).ok_or(too_short(40))?;
        if guid[2..] != KSDATAFORMAT_SUFFIX {
            let hex: String = guid.iter().map(|b| format!("{b:02x}")).collect();
            return Err(WavError::UnsupportedSubFormat(hex));
        }
        tag = u16::from_le_bytes([guid[0], guid[1]]);
        if tag == FORMAT_EXTENSIBLE {
            return Err(WavError::UnsupportedSubFormat(format!("{tag:#06x}")));
        }
    }
    if channels == 0 {
        return Err(WavError::ZeroChannels);
    }
    if sample_rate == 0 {
        return Err(WavError::ZeroSampleRate);
    }
    let bad_bits = WavError::UnsupportedBitsPerSample {
        format_tag: tag,
        bits,
    };
    let encoding = match tag {
        FORMAT_PCM => match bits {
            8 => WavEncoding::PcmU8,
            16 => WavEncoding::PcmI16,
            24 => WavEncoding::PcmI24,
            32 => WavEncoding::PcmI32,
            _ => return Err(bad_bits),
        },
        FORMAT_FLOAT => match bits {
            32 => WavEncoding::Float32,
            64 => WavEncoding::Float64,
            _ => return Err(bad_bits),
        },
        FORMAT_ALAW | FORMAT_MULAW => {
            if bits != 8 {
                return Err(bad_bits);
            }
            if tag == FORMAT_ALAW {
                WavEncoding::Alaw
            } else {
                WavEncoding::Mulaw
            }
        }
        other => return Err(WavError::UnsupportedFormatTag(other)),
    };
    Ok(Fmt {
        channels,
        sample_rate,
        encoding,
    })
}

/// Parses a complete (or truncated) WAV file held in memory.
pub fn parse_wav(bytes: &[u8]) -> Result<WavAudio, WavError> {
    if bytes.len() < 12 {
        // Say "not RIFF" when even the magic is wrong: more useful than "too short".
        if let Some(id) = id_at(bytes, 0) {
            if &id != b"RIFF" {
                return Err(WavError::NotRiff(id));
            }
        }
        return Err(WavError::TooShort(bytes.len()));
    }
    let magic = id_at(bytes, 0).ok_or(WavError::TooShort(bytes.len()))?;
    if &magic != b"RIFF" {
        return Err(WavError::NotRiff(magic));
    }
    let form = id_at(bytes, 8).ok_or(WavError::TooShort(bytes.len()))?;
    if &form != b"WAVE" {
        return Err(WavError::NotWave(form));
    }
    // The RIFF size is ignored: streaming writers leave it 0 or 0xFFFFFFFF.

    let mut fmt: Option<Fmt> = None;
    let mut data: Option<&[u8]> = None;
    let mut pos = 12usize;
    while let (Some(id), Some(size)) = (id_at(bytes, pos), u32_at(bytes, pos + 4)) {
        let body_start = pos + 8;
        let declared_end = body_start.saturating_add(size as usize);
        let body_end = declared_end.min(bytes.len());
        let body = &bytes[body_start..body_end];
        match &id {
            b"fmt " if fmt.is_none() => fmt = Some(parse_fmt(body)?),
            b"data" if data.is_none() => data = Some(body),
            _ => {}
        }
        if declared_end >= bytes.len() {
            break;
        }
        pos = declared_end;
        // RIFF pads odd-sized chunks to even length; some writers forget the pad byte.
        if size % 2 == 1 && !looks_like_chunk_id(bytes, pos) {
            pos += 1;
        }
        if fmt.is_some() && data.is_some() {
            break;
        }
    }

    let fmt = fmt.ok_or(WavError::NoFmtChunk)?;
    let data = data.ok_or(WavError::NoDataChunk)?;
    let channels = usize::from(fmt.channels);
    let frame_bytes = fmt.encoding.bytes_per_sample() * channels;
    let frames = data.len() / frame_bytes;
    let mut samples: Vec<Vec<f32>> = (0..channels).map(|_| Vec::with_capacity(frames)).collect();
    for frame in data.chunks_exact(frame_bytes) {
        for (ch, s) in samples
            .iter_mut()
            .zip(frame.chunks_exact(fmt.encoding.bytes_per_sample()))
        {
            ch.push(decode_sample(fmt.encoding, s));
        }
    }
    Ok(WavAudio {
        sample_rate: fmt.sample_rate,
        channels: fmt.channels,
        encoding: fmt.encoding,
        samples,
    })
}

/// Decodes one sample; `s` has exactly `encoding.bytes_per_sample()` bytes.
fn decode_sample(encoding: WavEncoding, s: &[u8]) -> f32 {
    let v = match (encoding, s) {
        (WavEncoding::PcmU8, [a]) => (f32::from(*a) - 128.0) / 128.0,
        (WavEncoding::PcmI16, [a, b]) => ByteOrder::Little.l16_to_sample([*a, *b]),
        (WavEncoding::PcmI24, [a, b, c]) => {
            // Place in the top 24 bits of an i32 to sign-extend.
            (i32::from_le_bytes([0, *a, *b, *c]) >> 8) as f32 / 8_388_608.0
        }
        (WavEncoding::PcmI32, [a, b, c, d]) => {
            i32::from_le_bytes([*a, *b, *c, *d]) as f32 / 2_147_483_648.0
        }
        (WavEncoding::Float32, [a, b, c, d]) => f32::from_le_bytes([*a, *b, *c, *d]),
        (WavEncoding::Float64, [a, b, c, d, e, f, g, h]) => {
            // Clipped before narrowing, so a finite 1e300 is 1, not an infinity (then 0).
            let x = f64::from_le_bytes([*a, *b, *c, *d, *e, *f, *g, *h]);
            if x.is_finite() {
                x.clamp(-1.0, 1.0) as f32
            } else {
                f32::NAN
            }
        }
        (WavEncoding::Alaw, [a]) => alaw_to_sample(*a),
        (WavEncoding::Mulaw, [a]) => ulaw_to_sample(*a),
        _ => 0.0,
    };
    // Float files may hold any finite value; clip them to the range the samples promise,
    // or filters downstream overflow (near f32::MAX the resampler's FFT made rubato panic).
    if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// Reads and parses a WAV file (thin I/O helper for the shell; the parser is [`parse_wav`]).
pub fn read_wav_file(path: impl AsRef<Path>) -> Result<WavAudio, WavError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| WavError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_wav(&bytes)
}

/// Builds a WAV file in memory: canonical 16-byte fmt chunk (or the 40-byte extensible one
/// when `extensible`), then `data`. For tests and tools.
pub fn build_wav(
    format_tag: u16,
    channels: u16,
    sample_rate: u32,
    bits: u16,
    data: &[u8],
    extensible: bool,
) -> Vec<u8> {
    let block_align = channels.wrapping_mul(bits / 8);
    let mut fmt = Vec::with_capacity(40);
    fmt.extend_from_slice(
        &(if extensible {
            FORMAT_EXTENSIBLE
        } else {
            format_tag
        })
        .to_le_bytes(),
    );
    fmt.extend_from_slice(&channels.to_le_bytes());
    fmt.extend_from_slice(&sample_rate.to_le_bytes());
    fmt.extend_from_slice(&(sample_rate.wrapping_mul(u32::from(block_align))).to_le_bytes());
    fmt.extend_from_slice(&block_align.to_le_bytes());
    fmt.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        fmt.extend_from_slice(&22u16.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        fmt.extend_from_slice(&0u32.to_le_bytes());
        fmt.extend_from_slice(&format_tag.to_le_bytes());
        fmt.extend_from_slice(&KSDATAFORMAT_SUFFIX);
    }
    let mut out = Vec::with_capacity(44 + fmt.len() + data.len());
    out.extend_from_slice(b"RIFF");
    let riff_len = 4 + 8 + fmt.len() + 8 + data.len() + data.len() % 2;
    out.extend_from_slice(&(riff_len as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
    out.extend_from_slice(&fmt);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm16(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    #[test]
    fn pcm16_mono() {
        let wav = build_wav(1, 1, 16000, 16, &pcm16(&[0, 16384, -32768, 32767]), false);
        let a = parse_wav(&wav).expect("valid");
        assert_eq!(a.sample_rate, 16000);
        assert_eq!(a.channels, 1);
        assert_eq!(a.encoding, WavEncoding::PcmI16);
        assert_eq!(a.samples, vec![vec![0.0, 0.5, -1.0, 32767.0 / 32768.0]]);
    }

    #[test]
    fn stereo_is_deinterleaved() {
        let wav = build_wav(1, 2, 8000, 16, &pcm16(&[1, -1, 2, -2, 3, -3]), false);
        let a = parse_wav(&wav).expect("valid");
        assert_eq!(a.frames(), 3);
        let s = 1.0 / 32768.0;
        assert_eq!(a.samples[0], vec![s, 2.0 * s, 3.0 * s]);
        assert_eq!(a.samples[1], vec![-s, -2.0 * s, -3.0 * s]);
    }

    #[test]
    fn u8_i24_i32_float_formats() {
        let a = parse_wav(&build_wav(1, 1, 8000, 8, &[128, 0, 255], false)).expect("u8");
        assert_eq!(a.samples[0], vec![0.0, -1.0, 127.0 / 128.0]);

        let d24 = [0x00, 0x00, 0x80, 0xFF, 0xFF, 0x7F, 0x00, 0x00, 0x40];
        let a = parse_wav(&build_wav(1, 1, 8000, 24, &d24, false)).expect("i24");
        assert_eq!(a.encoding, WavEncoding::PcmI24);
        assert_eq!(a.samples[0], vec![-1.0, 8_388_607.0 / 8_388_608.0, 0.5]);

        let d32: Vec<u8> = [i32::MIN, 1 << 30]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse_wav(&build_wav(1, 1, 8000, 32, &d32, false)).expect("i32");
        assert_eq!(a.samples[0], vec![-1.0, 0.5]);

        let f: Vec<u8> = [0.25f32, -0.75, f32::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse_wav(&build_wav(3, 1, 48000, 32, &f, false)).expect("f32");
        assert_eq!(a.encoding, WavEncoding::Float32);
        assert_eq!(a.samples[0], vec![0.25, -0.75, 0.0]);
    }

    #[test]
    fn float_samples_are_clipped_to_the_unit_range() {
        // Found by the `wav_parse` fuzz target: an extensible 44.1 kHz float file with
        // samples near f32::MAX. Passed through unclipped, they made the resampler's FFT
        // overflow and rubato panic ("Imaginary part of first value was non-zero").
        let fuzzed: [u8; 93] = [
            0x52, 0x49, 0x46, 0x46, 0x7c, 0x06, 0x00, 0x00, 0x57, 0x41, 0x56, 0x45, 0x66, 0x6d,
            0x74, 0x20, 0x28, 0x00, 0x00, 0x00, 0xfe, 0xff, 0x01, 0x00, 0x44, 0xac, 0x00, 0x00,
            0x10, 0xb1, 0x02, 0x00, 0x04, 0x00, 0x20, 0x00, 0x16, 0x00, 0x20, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa,
            0x00, 0x38, 0x9b, 0x71, 0x64, 0x61, 0x74, 0x61, 0x40, 0x06, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0xc4, 0x4d, 0xbe, 0x77, 0xfd, 0xbd, 0xf6, 0x84, 0x74, 0xbd, 0x56, 0xff,
            0xbe, 0xe2, 0xae, 0xfd, 0xbe, 0x31, 0x08, 0xfb, 0xbd,
        ];
        let a = parse_wav(&fuzzed).expect("valid");
        assert_eq!(a.encoding, WavEncoding::Float32);
        assert_eq!((a.sample_rate, a.frames()), (44100, 6));
        assert_eq!(a.samples[0][1], 1.0);
        assert_eq!(a.samples[0][3], -1.0);
        assert!(a.samples[0].iter().all(|s| (-1.0..=1.0).contains(s)));
        let mut r =
            crate::core::dsp::resample::Resampler::new(a.sample_rate).expect("supported rate");
        let mut out = Vec::new();
        r.process_into(&a.samples[0], &mut out);
        r.flush_into(&mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|s| s.is_finite()));

        let f: Vec<u8> = [2.0f32, -3e38, 0.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse_wav(&build_wav(3, 1, 8000, 32, &f, false)).expect("f32");
        assert_eq!(a.samples[0], vec![1.0, -1.0, 0.5]);
        let d: Vec<u8> = [-2.0f64, 0.25, 1e300, f64::NAN]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let a = parse_wav(&build_wav(3, 1, 8000, 64, &d, false)).expect("f64");
        assert_eq!(a.samples[0], vec![-1.0, 0.25, 1.0, 0.0]);
    }

    #[test]
    fn g711_formats() {
        let a = parse_wav(&build_wav(7, 1, 8000, 8, &[0xFF, 0x00, 0x80], false)).expect("mulaw");
        assert_eq!(a.encoding, WavEncoding::Mulaw);
        assert_eq!(
            a.samples[0],
            vec![0.0, -32124.0 / 32768.0, 32124.0 / 32768.0]
        );
        let a = parse_wav(&build_wav(6, 1, 8000, 8, &[0xD5, 0x55], false)).expect("alaw");
        assert_eq!(a.encoding, WavEncoding::Alaw);
        assert_eq!(a.samples[0], vec![8.0 / 32768.0, -8.0 / 32768.0]);
    }

    #[test]
    fn extensible_resolves_sub_format() {
        let a = parse_wav(&build_wav(1, 2, 44100, 16, &pcm16(&[5, 6]), true)).expect("ext pcm");
        assert_eq!(a.encoding, WavEncoding::PcmI16);
        assert_eq!(a.channels, 2);
        let f: Vec<u8> = 0.5f32.to_le_bytes().to_vec();
        let a = parse_wav(&build_wav(3, 1, 48000, 32, &f, true)).expect("ext float");
        assert_eq!(a.encoding, WavEncoding::Float32);
        let mut bad = build_wav(1, 1, 8000, 16, &pcm16(&[0]), true);
        // Corrupt the GUID suffix (fmt body starts at 20; GUID at body offset 24).
        bad[20 + 24 + 5] ^= 0xFF;
        assert!(matches!(
            parse_wav(&bad),
            Err(WavError::UnsupportedSubFormat(_))
        ));
    }

    #[test]
    fn typed_errors() {
        assert!(matches!(
            parse_wav(b"RIFX\0\0\0\0WAVE"),
            Err(WavError::NotRiff(_))
        ));
        assert!(matches!(parse_wav(b"OggS"), Err(WavError::NotRiff(_))));
        assert!(matches!(
            parse_wav(b"RIFF\0\0\0\0AVI "),
            Err(WavError::NotWave(_))
        ));
        assert!(matches!(parse_wav(b"RIFF"), Err(WavError::TooShort(4))));
        assert!(matches!(
            parse_wav(b"RIFF\0\0\0\0WAVEdata\0\0\0\0"),
            Err(WavError::NoFmtChunk)
        ));
        let mut w = build_wav(1, 1, 8000, 16, &[], false);
        w.truncate(36); // drop the data chunk header
        assert!(matches!(parse_wav(&w), Err(WavError::NoDataChunk)));
        let e = parse_wav(&build_wav(2, 1, 8000, 4, &[0; 4], false)).unwrap_err();
        assert!(matches!(e, WavError::UnsupportedFormatTag(2)));
        assert_eq!(e.to_string(), "unsupported WAV format tag 0x0002");
        let e = parse_wav(&build_wav(1, 1, 8000, 12, &[0; 4], false)).unwrap_err();
        assert!(matches!(
            e,
            WavError::UnsupportedBitsPerSample {
                format_tag: 1,
                bits: 12
            }
        ));
        assert!(matches!(
            parse_wav(&build_wav(1, 0, 8000, 16, &[0; 4], false)),
            Err(WavError::ZeroChannels)
        ));
        assert!(matches!(
            parse_wav(&build_wav(1, 1, 0, 16, &[0; 4], false)),
            Err(WavError::ZeroSampleRate)
        ));
    }

    #[test]
    fn skips_unknown_chunks_and_tolerates_missing_pad() {
        let data = pcm16(&[100, 200]);
        let base = build_wav(1, 1, 16000, 16, &data, false);
        // Insert an odd-sized LIST chunk between fmt and data, with and without pad byte.
        for pad in [true, false] {
            let mut w = base[..36].to_vec();
            w.extend_from_slice(b"LIST");
            w.extend_from_slice(&3u32.to_le_bytes());
            w.extend_from_slice(b"abc");
            if pad {
                w.push(0);
            }
            w.extend_from_slice(&base[36..]);
            let a = parse_wav(&w).expect("valid");
            assert_eq!(
                a.samples[0],
                vec![100.0 / 32768.0, 200.0 / 32768.0],
                "pad={pad}"
            );
        }
    }

    #[test]
    fn truncated_data_takes_whole_frames_present() {
        let mut w = build_wav(1, 2, 8000, 16, &pcm16(&[1, 2, 3, 4, 5, 6]), false);
        // Streaming writers put 0xFFFFFFFF as the data length.
        let n = w.len();
        w[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        w.truncate(n - 3); // cut mid-frame
        let a = parse_wav(&w).expect("truncated is fine");
        assert_eq!(a.frames(), 2);
        assert_eq!(a.samples[1], vec![2.0 / 32768.0, 4.0 / 32768.0]);
    }

    #[test]
    fn never_panics_on_prefixes_or_garbage() {
        let data: Vec<u8> = (0..400u32).map(|i| (i * 37 % 251) as u8).collect();
        let valid = [
            build_wav(1, 2, 16000, 16, &data, false),
            build_wav(3, 1, 16000, 32, &data, true),
            build_wav(1, 3, 16000, 24, &data, false),
        ];
        for wav in &valid {
            for cut in 0..=wav.len() {
                let _ = parse_wav(&wav[..cut]);
            }
            // Flip every byte of the header region in turn.
            for i in 0..wav.len().min(80) {
                let mut w = wav.clone();
                w[i] ^= 0xA5;
                let _ = parse_wav(&w);
                w[i] = 0xFF;
                let _ = parse_wav(&w);
            }
        }
        // Pseudo-random garbage behind a valid magic.
        let mut state = 0x1234_5678u32;
        for len in 0..300 {
            let mut w = b"RIFF\xff\xff\xff\xffWAVE".to_vec();
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                w.push(state as u8);
            }
            let _ = parse_wav(&w);
        }
    }
}
