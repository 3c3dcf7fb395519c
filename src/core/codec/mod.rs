//! Codecs: where a telephony byte becomes a sample.
//!
//! - [`g711`]: μ-law and A-law companding (ITU-T G.711).
//! - [`wav`]: RIFF/WAVE parsing from bytes.
//! - [`audio_file`]: recording files of any container call archives use (WAV, FLAC, MP3,
//!   Ogg Vorbis, Ogg Opus), told apart by their first bytes and decoded from bytes.
//! - [`i16_to_sample`] / [`sample_to_i16`], [`ulaw_to_sample`], [`alaw_to_sample`],
//!   [`ByteOrder::l16_to_sample`]: the one place a telephony byte becomes a sample in
//!   -1..1 (and back). The WAV parser, the RTP leg and the streaming decoder all call them.
//! - [`decode_into`]: whole samples of one buffer (an RTP payload); 16-bit linear PCM is
//!   little-endian in WAV and the proto's `LINEAR16`, big-endian on RTP.
//! - [`Decoder`]: streaming decode of raw call audio (`LINEAR16`, `MULAW`, `ALAW`) into
//!   f32 samples in -1..1, chunk by chunk, as it arrives from the network.

pub mod audio_file;
pub mod g711;
pub mod wav;

pub use audio_file::{decode_audio_file, read_audio_file, AudioFileError};
pub use wav::{parse_wav, read_wav_file, WavAudio, WavEncoding, WavError};

/// Encoding of raw call audio (the proto's `LINEAR16` / `MULAW` / `ALAW`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Signed 16-bit little-endian PCM.
    Linear16,
    /// G.711 μ-law, one byte per sample.
    Mulaw,
    /// G.711 A-law, one byte per sample.
    Alaw,
}

impl Encoding {
    /// Bytes per sample.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Encoding::Linear16 => 2,
            Encoding::Mulaw | Encoding::Alaw => 1,
        }
    }
}

/// Scale from 16-bit integer to -1..1.
const I16_SCALE: f32 = 1.0 / 32768.0;

/// A 16-bit linear sample as a sample in -1..1 (-32768 is -1.0; 32767 just under 1.0).
/// Exact: [`sample_to_i16`] gives every value back.
pub fn i16_to_sample(value: i16) -> f32 {
    f32::from(value) * I16_SCALE
}

/// A sample in -1..1 as a 16-bit integer (rounded; out-of-range values clipped): the
/// inverse of [`i16_to_sample`], for whatever sends `LINEAR16` or G.711.
pub fn sample_to_i16(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// A G.711 μ-law byte as a sample in -1..1.
pub fn ulaw_to_sample(byte: u8) -> f32 {
    i16_to_sample(g711::ulaw_decode(byte))
}

/// A G.711 A-law byte as a sample in -1..1.
pub fn alaw_to_sample(byte: u8) -> f32 {
    i16_to_sample(g711::alaw_decode(byte))
}

/// Byte order of 16-bit linear PCM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Little-endian: WAV files and the proto's `LINEAR16`.
    Little,
    /// Big-endian (network byte order): L16 on RTP (RFC 3551 §4.5.11).
    Big,
}

impl ByteOrder {
    /// Two bytes of 16-bit linear PCM in this order as a sample in -1..1.
    pub fn l16_to_sample(self, bytes: [u8; 2]) -> f32 {
        i16_to_sample(match self {
            ByteOrder::Little => i16::from_le_bytes(bytes),
            ByteOrder::Big => i16::from_be_bytes(bytes),
        })
    }
}

/// Decodes the whole samples in `bytes`, appending samples in -1..1 to `out`;
/// `Linear16` is read in `order`. Stateless, for a buffer that holds whole samples (an
/// RTP payload): an odd trailing byte of `Linear16` is ignored. A stream whose chunks
/// may split a sample goes through [`Decoder`].
pub fn decode_into(encoding: Encoding, order: ByteOrder, bytes: &[u8], out: &mut Vec<f32>) {
    match encoding {
        Encoding::Mulaw => out.extend(bytes.iter().map(|&b| ulaw_to_sample(b))),
        Encoding::Alaw => out.extend(bytes.iter().map(|&b| alaw_to_sample(b))),
        Encoding::Linear16 => {
            let pairs = bytes.chunks_exact(2).map(|p| [p[0], p[1]]);
            match order {
                ByteOrder::Little => out.extend(pairs.map(|p| ByteOrder::Little.l16_to_sample(p))),
                ByteOrder::Big => out.extend(pairs.map(|p| ByteOrder::Big.l16_to_sample(p))),
            }
        }
    }
}

/// Streaming decoder for one channel of raw call audio.
///
/// Chunks may split a 16-bit sample: the odd trailing byte is kept for the next chunk.
#[derive(Clone, Debug)]
pub struct Decoder {
    encoding: Encoding,
    /// Low byte of a `Linear16` sample whose high byte has not arrived yet.
    pending: Option<u8>,
}

impl Decoder {
    /// A decoder for `encoding`.
    pub fn new(encoding: Encoding) -> Self {
        Self {
            encoding,
            pending: None,
        }
    }

    /// The encoding this decoder reads.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Whether a partial sample (one byte of `Linear16`) is waiting for the next chunk.
    pub fn has_pending_byte(&self) -> bool {
        self.pending.is_some()
    }

    /// Decodes `bytes`, appending samples in -1..1 to `out` (which only grows).
    pub fn decode_into(&mut self, bytes: &[u8], out: &mut Vec<f32>) {
        let mut rest = bytes;
        if self.encoding == Encoding::Linear16 {
            if let Some(lo) = self.pending {
                let Some((&hi, tail)) = rest.split_first() else {
                    return;
                };
                out.push(ByteOrder::Little.l16_to_sample([lo, hi]));
                self.pending = None;
                rest = tail;
            }
            self.pending = rest.chunks_exact(2).remainder().first().copied();
        }
        decode_into(self.encoding, ByteOrder::Little, rest, out);
    }

    /// Forgets any partial sample (e.g. after a gap in the stream).
    pub fn reset(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear16_split_across_chunks() {
        let samples: Vec<i16> = vec![0, 1, -1, 12345, -32768, 32767, 7];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let want: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
        for chunk in 1..=bytes.len() {
            let mut d = Decoder::new(Encoding::Linear16);
            let mut out = Vec::new();
            for c in bytes.chunks(chunk) {
                d.decode_into(c, &mut out);
            }
            assert_eq!(out, want, "chunk size {chunk}");
            assert!(!d.has_pending_byte());
        }
    }

    #[test]
    fn linear16_odd_byte_waits() {
        let mut d = Decoder::new(Encoding::Linear16);
        let mut out = Vec::new();
        d.decode_into(&[0x00], &mut out);
        assert!(out.is_empty() && d.has_pending_byte());
        d.decode_into(&[], &mut out);
        assert!(out.is_empty() && d.has_pending_byte());
        d.decode_into(&[0x40, 0x01], &mut out);
        assert_eq!(out, vec![0.5]);
        assert!(d.has_pending_byte());
    }

    #[test]
    fn i16_round_trips_through_a_sample() {
        for x in i16::MIN..=i16::MAX {
            let s = i16_to_sample(x);
            assert!((-1.0..1.0).contains(&s), "{x}");
            assert_eq!(sample_to_i16(s), x);
        }
        assert_eq!(i16_to_sample(i16::MIN), -1.0);
        assert_eq!(i16_to_sample(16384), 0.5);
        assert_eq!(sample_to_i16(1.5), i16::MAX);
        assert_eq!(sample_to_i16(-1.5), i16::MIN);
    }

    #[test]
    fn l16_byte_orders() {
        assert_eq!(ByteOrder::Big.l16_to_sample([0x40, 0x00]), 0.5);
        assert_eq!(ByteOrder::Little.l16_to_sample([0x00, 0x40]), 0.5);
        assert_eq!(ByteOrder::Big.l16_to_sample([0x80, 0x00]), -1.0);
        assert_eq!(ByteOrder::Little.l16_to_sample([0x00, 0x80]), -1.0);
        assert_eq!(ByteOrder::Big.l16_to_sample([0xFF, 0xFF]), -1.0 / 32768.0);
        let bytes = [0x40, 0x00, 0xC0, 0x00, 0x00, 0x01, 0x7F];
        let mut be = Vec::new();
        decode_into(Encoding::Linear16, ByteOrder::Big, &bytes, &mut be);
        assert_eq!(
            be,
            vec![0.5, -0.5, 1.0 / 32768.0],
            "odd trailing byte ignored"
        );
        let mut le = Vec::new();
        decode_into(Encoding::Linear16, ByteOrder::Little, &bytes, &mut le);
        assert_eq!(le, vec![64.0 / 32768.0, 192.0 / 32768.0, 256.0 / 32768.0]);
    }

    #[test]
    fn g711_bytes_to_samples() {
        assert_eq!(ulaw_to_sample(0xFF), 0.0);
        assert_eq!(ulaw_to_sample(0x00), -32124.0 / 32768.0);
        assert_eq!(ulaw_to_sample(0x80), 32124.0 / 32768.0);
        assert_eq!(alaw_to_sample(0xD5), 8.0 / 32768.0);
        assert_eq!(alaw_to_sample(0x55), -8.0 / 32768.0);
        let mut out = Vec::new();
        decode_into(Encoding::Mulaw, ByteOrder::Big, &[0xFF, 0x00], &mut out);
        decode_into(Encoding::Alaw, ByteOrder::Little, &[0xD5], &mut out);
        assert_eq!(out, vec![0.0, -32124.0 / 32768.0, 8.0 / 32768.0]);
    }

    #[test]
    fn g711_streams() {
        let mut out = Vec::new();
        Decoder::new(Encoding::Mulaw).decode_into(&[0xFF, 0x00], &mut out);
        Decoder::new(Encoding::Alaw).decode_into(&[0xD5], &mut out);
        assert_eq!(out, vec![0.0, -32124.0 / 32768.0, 8.0 / 32768.0]);
    }
}
