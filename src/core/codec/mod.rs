//! Codecs: where a telephony byte becomes a sample.
//!
//! - [`g711`]: μ-law and A-law companding (ITU-T G.711).
//! - [`wav`]: RIFF/WAVE parsing from bytes.
//! - [`Decoder`]: streaming decode of raw call audio (`LINEAR16`, `MULAW`, `ALAW`) into
//!   f32 samples in -1..1, chunk by chunk, as it arrives from the network.

pub mod g711;
pub mod wav;

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

/// A sample in -1..1 as a 16-bit integer (rounded; out-of-range values clipped): the
/// inverse of the decoders' scaling, for whatever sends `LINEAR16` or G.711.
pub fn sample_to_i16(sample: f32) -> i16 {
    (sample * 32768.0).round().clamp(-32768.0, 32767.0) as i16
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
        match self.encoding {
            Encoding::Mulaw => out.extend(
                bytes
                    .iter()
                    .map(|&b| f32::from(g711::ulaw_decode(b)) * I16_SCALE),
            ),
            Encoding::Alaw => out.extend(
                bytes
                    .iter()
                    .map(|&b| f32::from(g711::alaw_decode(b)) * I16_SCALE),
            ),
            Encoding::Linear16 => {
                let mut rest = bytes;
                if let Some(lo) = self.pending {
                    let Some((&hi, tail)) = rest.split_first() else {
                        return;
                    };
                    out.push(f32::from(i16::from_le_bytes([lo, hi])) * I16_SCALE);
                    self.pending = None;
                    rest = tail;
                }
                let pairs = rest.chunks_exact(2);
                self.pending = pairs.remainder().first().copied();
                out.extend(pairs.map(|p| f32::from(i16::from_le_bytes([p[0], p[1]])) * I16_SCALE));
            }
        }
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
    fn g711_streams() {
        let mut out = Vec::new();
        Decoder::new(Encoding::Mulaw).decode_into(&[0xFF, 0x00], &mut out);
        Decoder::new(Encoding::Alaw).decode_into(&[0xD5], &mut out);
        assert_eq!(out, vec![0.0, -32124.0 / 32768.0, 8.0 / 32768.0]);
    }
}
