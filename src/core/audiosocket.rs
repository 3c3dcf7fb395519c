//! Asterisk AudioSocket framing, sans-I/O: bytes from a TCP stream become [`Message`]s.
//!
//! Every message is a 3-byte header (1 byte kind, 2 bytes big-endian payload length) and
//! the payload. Kinds: hangup (`0x00`, no payload), the call's UUID (`0x01`, 16 bytes,
//! binary), a DTMF digit (`0x03`, one ASCII byte), audio (`0x10`, signed linear 16-bit
//! little-endian, 8 kHz, mono) and an error (`0xff`, an optional one-byte code).
//!
//! The decoder is told bytes and returns messages; the shell owns the socket. Framing
//! errors are fatal for the stream: the length field is the only way to find the next
//! header, so once a message is known to be malformed nothing after it can be trusted,
//! and the decoder stays poisoned (see [`FrameDecoder::next_message`]).
//!
//! Lenient where being strict would only throw away meaning: a hangup is a hangup
//! whatever payload it carries, and an error message keeps the first byte of its payload
//! as the code. Strict where a lenient reading would have to guess: a UUID is 16 bytes,
//! a DTMF message is one digit, audio is whole 16-bit samples.

/// Hangup: the call is over (no payload).
pub const KIND_HANGUP: u8 = 0x00;
/// The call's UUID, 16 bytes, binary; Asterisk sends it first.
pub const KIND_UUID: u8 = 0x01;
/// A DTMF digit, one ASCII byte.
pub const KIND_DTMF: u8 = 0x03;
/// Audio: signed linear 16-bit, 8 kHz, mono, little-endian.
pub const KIND_AUDIO: u8 = 0x10;
/// An error, with an optional one-byte error code.
pub const KIND_ERROR: u8 = 0xff;

/// Sample rate of AudioSocket audio, Hz.
pub const AUDIO_RATE_HZ: u32 = 8000;
/// Header length: kind and 16-bit length, bytes.
pub const HEADER_LEN: usize = 3;
/// Largest payload the length field can carry, bytes.
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize;
/// Length of a UUID payload, bytes.
const UUID_LEN: usize = 16;

/// One AudioSocket message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The call is over.
    Hangup,
    /// The call's UUID (print it with [`uuid_string`]).
    Uuid([u8; 16]),
    /// A DTMF digit: `0`–`9`, `*`, `#` or `A`–`D`.
    Dtmf(char),
    /// Audio payload: 16-bit little-endian samples at [`AUDIO_RATE_HZ`], an even number
    /// of bytes.
    Audio(Vec<u8>),
    /// The peer reported an error, with its code when it sent one.
    Error(Option<u8>),
    /// A message of a kind this decoder does not know, its payload skipped. Newer Asterisk
    /// versions may send audio at other rates under new kinds; the shell decides whether
    /// to ignore or refuse them.
    Unknown {
        /// The kind byte.
        kind: u8,
        /// Payload length, bytes.
        len: usize,
    },
}

/// Why a stream of AudioSocket bytes cannot be decoded. All are fatal for the stream.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AudioSocketError {
    /// A UUID message whose payload is not 16 bytes.
    #[error("AudioSocket UUID message has a {len}-byte payload, expected 16")]
    BadUuidLength {
        /// Payload length, bytes.
        len: usize,
    },
    /// A DTMF message whose payload is not one byte.
    #[error("AudioSocket DTMF message has a {len}-byte payload, expected 1")]
    BadDtmfLength {
        /// Payload length, bytes.
        len: usize,
    },
    /// A DTMF message whose byte is not a DTMF digit.
    #[error(
        "AudioSocket DTMF message carries byte 0x{byte:02x}, not a DTMF digit (0-9, *, #, A-D)"
    )]
    BadDtmf {
        /// The byte received.
        byte: u8,
    },
    /// An audio message with an odd payload: 16-bit samples come in pairs of bytes, so
    /// the peer is not sending the signed linear audio AudioSocket carries.
    #[error("AudioSocket audio message has an odd payload of {len} bytes; 16-bit samples need an even length")]
    AudioOddLength {
        /// Payload length, bytes.
        len: usize,
    },
    /// A message longer than the decoder accepts.
    #[error("AudioSocket message of kind 0x{kind:02x} has a {len}-byte payload, more than the {max} bytes allowed")]
    TooLong {
        /// The kind byte.
        kind: u8,
        /// Payload length from the header, bytes.
        len: usize,
        /// The decoder's limit, bytes.
        max: usize,
    },
}

/// Incremental decoder: feed bytes as they arrive from TCP, take messages out.
///
/// Memory is bounded by what the caller pushes at once plus one message (at most
/// 3 + 65535 bytes): a shell that takes every message out after each push holds no more.
/// A header whose length is over the limit is refused as soon as its 3 bytes arrive,
/// before its payload is waited for, and once poisoned the decoder keeps no bytes.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// Bytes pushed and not yet consumed start at `start`.
    buf: Vec<u8>,
    start: usize,
    max_len: usize,
    poisoned: Option<AudioSocketError>,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder that accepts any payload length the header can carry (65535 bytes).
    pub fn new() -> Self {
        Self::with_max_len(MAX_PAYLOAD_LEN)
    }

    /// A decoder that refuses payloads longer than `max` bytes (`max` above 65535 is the
    /// same as 65535). Asterisk sends 20 ms of audio, 320 bytes, per message.
    pub fn with_max_len(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_len: max.min(MAX_PAYLOAD_LEN),
            poisoned: None,
        }
    }

    /// Appends bytes received from the stream. Ignored once the decoder is poisoned.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.poisoned.is_some() {
            return;
        }
        if self.start > 0 {
            // Drop consumed bytes: what remains is at most one message.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed. After an `Err`
    /// the decoder is poisoned and returns the same error again: a stream with a broken
    /// frame cannot be resynchronised.
    pub fn next_message(&mut self) -> Result<Option<Message>, AudioSocketError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        match self.decode() {
            Ok(Some((msg, used))) => {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(msg))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.poisoned = Some(e.clone());
                self.buf = Vec::new();
                self.start = 0;
                Err(e)
            }
        }
    }

    /// Bytes pushed and not yet returned as a message: after `next_message` has returned
    /// `Ok(None)`, the bytes of the incomplete message held (0 at a clean boundary), so
    /// the shell can tell a stream that ended between messages from one cut in the middle
    /// of one (even right after a header). 0 once poisoned.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Decodes the message at `start`, if complete: the message and the bytes it used.
    fn decode(&self) -> Result<Option<(Message, usize)>, AudioSocketError> {
        let rest = &self.buf[self.start..];
        let [kind, hi, lo, ..] = *rest else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        // Everything the header alone shows to be wrong fails before the payload arrives.
        if len > self.max_len {
            return Err(AudioSocketError::TooLong {
                kind,
                len,
                max: self.max_len,
            });
        }
        match kind {
            KIND_UUID if len != UUID_LEN => return Err(AudioSocketError::BadUuidLength { len }),
            KIND_DTMF if len != 1 => return Err(AudioSocketError::BadDtmfLength { len }),
            KIND_AUDIO if len % 2 == 1 => return Err(AudioSocketError::AudioOddLength { len }),
            _ => {}
        }
        let Some(payload) = rest.get(HEADER_LEN..HEADER_LEN + len) else {
            return Ok(None);
        };
        let msg = match kind {
            KIND_HANGUP => Message::Hangup,
            KIND_UUID => {
                let mut id = [0u8; UUID_LEN];
                id.copy_from_slice(payload);
                Message::Uuid(id)
            }
            KIND_DTMF => {
                let &[byte] = payload else {
                    return Err(AudioSocketError::BadDtmfLength { len });
                };
                if !is_dtmf_digit(byte) {
                    return Err(AudioSocketError::BadDtmf { byte });
                }
                Message::Dtmf(char::from(byte))
            }
            KIND_AUDIO => Message::Audio(payload.to_vec()),
            KIND_ERROR => Message::Error(payload.first().copied()),
            _ => Message::Unknown { kind, len },
        };
        Ok(Some((msg, HEADER_LEN + len)))
    }
}

/// The sixteen DTMF keys.
fn is_dtmf_digit(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'*' | b'#' | b'A'..=b'D')
}

fn put(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    // Callers keep payloads within the length field; saturate rather than panic.
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload[..usize::from(len)]);
}

/// Encodes a message, header and payload (for test clients and tools).
///
/// Audio longer than one message can carry (65535 bytes) is written as consecutive
/// audio messages of at most 65534 bytes (whole samples). `Unknown { kind, len }` is
/// written as `kind` with `len` zero bytes (at most 65535). A DTMF character that is
/// not ASCII, which the decoder never produces, is written as `?`.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    match msg {
        Message::Hangup => put(&mut out, KIND_HANGUP, &[]),
        Message::Uuid(id) => put(&mut out, KIND_UUID, id),
        Message::Dtmf(c) => put(&mut out, KIND_DTMF, &[u8::try_from(*c).unwrap_or(b'?')]),
        Message::Audio(data) => {
            if data.is_empty() {
                put(&mut out, KIND_AUDIO, &[]);
            }
            for piece in data.chunks(MAX_PAYLOAD_LEN - 1) {
                put(&mut out, KIND_AUDIO, piece);
            }
        }
        Message::Error(code) => put(&mut out, KIND_ERROR, code.as_slice()),
        Message::Unknown { kind, len } => {
            put(&mut out, *kind, &vec![0; (*len).min(MAX_PAYLOAD_LEN)]);
        }
    }
    out
}

/// A UUID as 8-4-4-4-12 lowercase hex, e.g. `6ba7b810-9dad-11d1-80b4-00c04fd430c8`.
pub fn uuid_string(id: &[u8; 16]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(36);
    for (i, b) in id.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Samples judged at once by [`LinearCheck`]: 500 ms at 8 kHz.
pub const LINEAR_CHECK_WINDOW: usize = 4000;

/// Tells 16-bit linear audio from G.711 (or other one-byte codec) bytes sent under the
/// audio kind.
///
/// Asterisk's AudioSocket channel driver (`Dial(AudioSocket/host:port/uuid)`, and
/// ExternalMedia with `encapsulation=audiosocket`) sends the channel's own format under
/// kind `0x10` unless told `c(slin)` / `format=slin`: μ-law or A-law bytes, two to a
/// "sample". Read as 16-bit samples they are loud noise: the high byte is a G.711 code,
/// and the codes of a quiet signal (μ-law `0x7x`/`0xFx`, A-law `0x5x`/`0xDx`) put about
/// half of the "samples" above half of full scale; and the two bytes, codes of
/// neighbouring samples, are mostly close. Linear speech does neither: even clipped, it
/// keeps most samples below half scale, and its low byte is noise, unrelated to its
/// high byte. The check looks at windows of [`LINEAR_CHECK_WINDOW`] samples until one
/// carries sound (mean magnitude of at least [`QUIET_MEAN`]) and decides on that one;
/// the audio before the decision has gone to the call.
#[derive(Debug, Clone, Default)]
pub struct LinearCheck {
    n: usize,
    loud: usize,
    sum_abs: u64,
    close: usize,
    verdict: Option<bool>,
}

/// Mean magnitude below which a window is too quiet to judge (about -50 dBFS).
pub const QUIET_MEAN: u64 = 100;

impl LinearCheck {
    /// A check that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one audio payload (16-bit little-endian). Returns `Some(false)` once, when a
    /// window with sound is not linear audio, `Some(true)` once when it is, and `None`
    /// before a decision and after it.
    pub fn push(&mut self, payload: &[u8]) -> Option<bool> {
        if self.verdict.is_some() {
            return None;
        }
        for pair in payload.chunks_exact(2) {
            let x = i32::from(i16::from_le_bytes([pair[0], pair[1]]));
            if x.unsigned_abs() >= 16_384 {
                self.loud += 1;
            }
            self.sum_abs += u64::from(x.unsigned_abs());
            if pair[0]
                .wrapping_sub(pair[1])
                .min(pair[1].wrapping_sub(pair[0]))
                <= 16
            {
                self.close += 1;
            }
            self.n += 1;
            if self.n == LINEAR_CHECK_WINDOW {
                let mean = self.sum_abs / self.n as u64;
                if mean >= QUIET_MEAN {
                    // Over 30 % of samples above half scale, and over 30 % whose two
                    // bytes are within 16 of each other: two codes of neighbouring
                    // samples, not one sample (linear audio: about 13 %, its low byte
                    // being noise). Measured in the test below: linear speech 14-15 %,
                    // G.711 speech and hiss 49-91 % of both.
                    let linear = !(self.loud * 10 > self.n * 3 && self.close * 10 > self.n * 3);
                    self.verdict = Some(linear);
                    return self.verdict;
                }
                *self = LinearCheck::default();
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::SplitMix64;

    /// The RFC 4122 namespace UUID for DNS names.
    const NS_DNS: [u8; 16] = [
        0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30,
        0xc8,
    ];

    /// Decodes everything in `bytes` pushed at once.
    fn decode_all(bytes: &[u8]) -> Result<Vec<Message>, AudioSocketError> {
        let mut d = FrameDecoder::new();
        d.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = d.next_message()? {
            out.push(m);
        }
        assert_eq!(d.pending(), 0, "bytes left over");
        Ok(out)
    }

    fn one(bytes: &[u8]) -> Result<Message, AudioSocketError> {
        let mut msgs = decode_all(bytes)?;
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        Ok(msgs.remove(0))
    }

    #[test]
    fn byte_literal_vectors_for_each_kind() {
        assert_eq!(one(&[0x00, 0x00, 0x00]), Ok(Message::Hangup));
        let mut uuid = vec![0x01, 0x00, 0x10];
        uuid.extend_from_slice(&NS_DNS);
        assert_eq!(one(&uuid), Ok(Message::Uuid(NS_DNS)));
        assert_eq!(one(&[0x03, 0x00, 0x01, b'7']), Ok(Message::Dtmf('7')));
        assert_eq!(one(&[0x03, 0x00, 0x01, b'#']), Ok(Message::Dtmf('#')));
        assert_eq!(one(&[0x03, 0x00, 0x01, b'D']), Ok(Message::Dtmf('D')));
        // Two samples: 1 and -2, little-endian.
        assert_eq!(
            one(&[0x10, 0x00, 0x04, 0x01, 0x00, 0xfe, 0xff]),
            Ok(Message::Audio(vec![0x01, 0x00, 0xfe, 0xff]))
        );
        assert_eq!(one(&[0x10, 0x00, 0x00]), Ok(Message::Audio(vec![])));
        assert_eq!(one(&[0xff, 0x00, 0x00]), Ok(Message::Error(None)));
        assert_eq!(one(&[0xff, 0x00, 0x01, 0x02]), Ok(Message::Error(Some(2))));
        // Lenient: a hangup with a payload is still a hangup; an error keeps its first byte.
        assert_eq!(one(&[0x00, 0x00, 0x02, 9, 9]), Ok(Message::Hangup));
        assert_eq!(one(&[0xff, 0x00, 0x02, 4, 5]), Ok(Message::Error(Some(4))));
    }

    #[test]
    fn a_320_byte_audio_frame_as_asterisk_sends_it() {
        // 20 ms at 8 kHz: 160 samples, 320 bytes; length 0x0140.
        let samples: Vec<i16> = (0..160).map(|i| (i * 100 - 8000) as i16).collect();
        let mut bytes = vec![0x10, 0x01, 0x40];
        for s in &samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let Ok(Message::Audio(data)) = one(&bytes) else {
            panic!("not audio");
        };
        let back: Vec<i16> = data
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(back, samples);
    }

    #[test]
    fn a_message_split_byte_by_byte() {
        let mut bytes = vec![0x01, 0x00, 0x10];
        bytes.extend_from_slice(&NS_DNS);
        bytes.extend_from_slice(&[0x10, 0x00, 0x02, 0x34, 0x12]);
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            d.push(std::slice::from_ref(b));
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
            // Pending counts the bytes of the message still incomplete.
            let boundary = i + 1 == 19 || i + 1 == bytes.len();
            assert_eq!(d.pending() == 0, boundary, "after byte {i}");
        }
        assert_eq!(
            got,
            vec![Message::Uuid(NS_DNS), Message::Audio(vec![0x34, 0x12])]
        );
    }

    #[test]
    fn pending_tells_a_bare_header_from_a_clean_boundary() {
        let mut d = FrameDecoder::new();
        assert_eq!(d.pending(), 0);
        d.push(&[0x10, 0x01, 0x40]);
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(d.pending(), 3);
        d.push(&[0; 320]);
        assert!(matches!(d.next_message(), Ok(Some(Message::Audio(a))) if a.len() == 320));
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn several_messages_in_one_push() {
        let msgs = vec![
            Message::Uuid(NS_DNS),
            Message::Audio(vec![1, 2, 3, 4]),
            Message::Dtmf('*'),
            Message::Audio(vec![5, 6]),
            Message::Error(Some(0x10)),
            Message::Hangup,
        ];
        let bytes: Vec<u8> = msgs.iter().flat_map(encode).collect();
        assert_eq!(decode_all(&bytes), Ok(msgs));
    }

    #[test]
    fn an_unknown_kind_is_skipped_and_the_stream_goes_on() {
        // Kind 0x12 with 4 bytes, then a hangup.
        let bytes = [0x12, 0x00, 0x04, 1, 2, 3, 4, 0x00, 0x00, 0x00];
        assert_eq!(
            decode_all(&bytes),
            Ok(vec![
                Message::Unknown { kind: 0x12, len: 4 },
                Message::Hangup
            ])
        );
    }

    #[test]
    fn malformed_messages_name_what_was_wrong() {
        let cases: Vec<(Vec<u8>, AudioSocketError, &str)> = vec![
            (
                [vec![0x01, 0x00, 0x0f], vec![0; 15]].concat(),
                AudioSocketError::BadUuidLength { len: 15 },
                "UUID",
            ),
            (
                vec![0x03, 0x00, 0x01, b'x'],
                AudioSocketError::BadDtmf { byte: b'x' },
                "not a DTMF digit",
            ),
            (
                vec![0x03, 0x00, 0x02, b'1', b'2'],
                AudioSocketError::BadDtmfLength { len: 2 },
                "DTMF",
            ),
            (
                vec![0x10, 0x00, 0x03, 0, 0, 0],
                AudioSocketError::AudioOddLength { len: 3 },
                "odd",
            ),
        ];
        for (bytes, want, words) in cases {
            let got = decode_all(&bytes).unwrap_err();
            assert_eq!(got, want);
            assert!(got.to_string().contains(words), "{got}");
        }
    }

    #[test]
    fn header_errors_come_before_the_payload() {
        // A UUID header with length 15: no need to wait for the 15 bytes.
        let mut d = FrameDecoder::new();
        d.push(&[0x01, 0x00, 0x0f]);
        assert_eq!(
            d.next_message(),
            Err(AudioSocketError::BadUuidLength { len: 15 })
        );
        // Over the cap: refused on the header, not after buffering 60 KB.
        let mut d = FrameDecoder::with_max_len(640);
        d.push(&[0x10, 0xea, 0x60]);
        let e = d.next_message().unwrap_err();
        assert_eq!(
            e,
            AudioSocketError::TooLong {
                kind: 0x10,
                len: 60_000,
                max: 640
            }
        );
        assert!(e.to_string().contains("640"), "{e}");
        // At the cap is fine.
        let mut d = FrameDecoder::with_max_len(2);
        d.push(&[0x10, 0x00, 0x02, 7, 0]);
        assert_eq!(d.next_message(), Ok(Some(Message::Audio(vec![7, 0]))));
    }

    #[test]
    fn a_poisoned_decoder_repeats_its_error_and_holds_nothing() {
        let mut d = FrameDecoder::new();
        d.push(&[
            0x10, 0x00, 0x02, 1, 0, 0x03, 0x00, 0x01, b'?', 0x00, 0x00, 0x00,
        ]);
        assert_eq!(d.next_message(), Ok(Some(Message::Audio(vec![1, 0]))));
        let e = AudioSocketError::BadDtmf { byte: b'?' };
        assert_eq!(d.next_message(), Err(e.clone()));
        // The hangup after the bad frame is never reached, and new bytes are ignored.
        assert_eq!(d.next_message(), Err(e.clone()));
        d.push(&[0x00, 0x00, 0x00]);
        assert_eq!(d.pending(), 0);
        assert_eq!(d.next_message(), Err(e));
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut rng = SplitMix64::new(11);
        let mut msgs = vec![
            Message::Hangup,
            Message::Uuid(NS_DNS),
            Message::Error(None),
            Message::Error(Some(0xff)),
            Message::Unknown { kind: 0x42, len: 0 },
            Message::Unknown { kind: 0x11, len: 7 },
        ];
        msgs.extend("0123456789*#ABCD".chars().map(Message::Dtmf));
        for len in [0, 2, 320, 640, 65_534] {
            let data = (0..len).map(|_| rng.next_u64() as u8).collect();
            msgs.push(Message::Audio(data));
        }
        for m in &msgs {
            assert_eq!(one(&encode(m)).as_ref(), Ok(m), "{m:?}");
        }
        // Byte layout of one message.
        assert_eq!(
            encode(&Message::Audio(vec![1, 2])),
            vec![0x10, 0x00, 0x02, 1, 2]
        );
        assert_eq!(encode(&Message::Error(Some(3))), vec![0xff, 0x00, 0x01, 3]);
        // Audio too long for one message becomes several, in order, whole samples each.
        let long: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        let got = decode_all(&encode(&Message::Audio(long.clone()))).unwrap();
        assert_eq!(got.len(), 2);
        let joined: Vec<u8> = got
            .into_iter()
            .flat_map(|m| match m {
                Message::Audio(a) => a,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(joined, long);
    }

    #[test]
    fn uuid_string_of_a_known_value() {
        assert_eq!(uuid_string(&NS_DNS), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
        assert_eq!(
            uuid_string(&[0xff; 16]),
            "ffffffff-ffff-ffff-ffff-ffffffffffff"
        );
    }

    #[test]
    fn no_panic_and_bounded_memory_on_random_bytes() {
        let mut rng = SplitMix64::new(0xA0D1_050C);
        let (mut messages, mut errors) = (0, 0);
        for round in 0..2_000 {
            // Small caps now and then, and a bias toward known kinds so frames parse.
            let mut d = if round % 5 == 0 {
                FrameDecoder::with_max_len(rng.below(400))
            } else {
                FrameDecoder::new()
            };
            for _ in 0..rng.below(20) {
                let n = rng.below(300);
                let mut bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                if let Some(first) = bytes.first_mut() {
                    *first = [0x00, 0x01, 0x03, 0x10, 0xff, *first][rng.below(6)];
                }
                if bytes.len() > 1 && rng.below(2) == 0 {
                    bytes[1] = 0; // short lengths, so whole frames happen
                }
                d.push(&bytes);
                loop {
                    match d.next_message() {
                        Ok(Some(_)) => messages += 1,
                        Ok(None) => break,
                        Err(_) => {
                            errors += 1;
                            break;
                        }
                    }
                }
                // Whatever is held is one incomplete message at most.
                assert!(d.pending() < HEADER_LEN + MAX_PAYLOAD_LEN);
            }
        }
        assert!(messages > 100 && errors > 100, "{messages} {errors}");
    }

    #[test]
    fn g711_bytes_under_the_audio_kind_are_told_from_linear_speech() {
        use crate::core::codec::g711;
        // A voiced, speech-like signal: 150 Hz with harmonics, rising and falling.
        let speech: Vec<i16> = (0..16_000)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let env = (std::f32::consts::PI * t / 2.0).sin().abs();
                let v: f32 = (1..6)
                    .map(|h| (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32)
                    .sum();
                (v * env * 9000.0) as i16
            })
            .collect();
        let judge = |bytes: &[u8]| {
            let mut c = LinearCheck::new();
            let mut out = None;
            for frame in bytes.chunks(320) {
                if let Some(v) = c.push(frame) {
                    assert!(out.is_none(), "one verdict");
                    out = Some(v);
                }
            }
            out
        };
        let linear: Vec<u8> = speech.iter().flat_map(|s| s.to_le_bytes()).collect();
        assert_eq!(judge(&linear), Some(true));
        // Clipped hard: still linear.
        let clipped: Vec<u8> = speech
            .iter()
            .flat_map(|&s| (s.saturating_mul(4)).to_le_bytes())
            .collect();
        assert_eq!(judge(&clipped), Some(true));
        // A full-scale 1004 Hz test tone (the telephone test tone): linear.
        let tone: Vec<u8> = (0..8000)
            .flat_map(|i| {
                (((2.0 * std::f32::consts::PI * 1004.0 * i as f32 / 8000.0).sin() * 32000.0) as i16)
                    .to_le_bytes()
            })
            .collect();
        assert_eq!(judge(&tone), Some(true));
        // The same speech as μ-law and as A-law bytes, and quiet line noise as μ-law.
        let ulaw: Vec<u8> = speech.iter().map(|&s| g711::ulaw_encode(s)).collect();
        assert_eq!(judge(&ulaw), Some(false));
        let alaw: Vec<u8> = speech.iter().map(|&s| g711::alaw_encode(s)).collect();
        assert_eq!(judge(&alaw), Some(false));
        let mut rng = SplitMix64::new(5);
        let hiss: Vec<u8> = (0..16_000)
            .map(|_| g711::ulaw_encode((rng.normal() * 30.0) as i16))
            .collect();
        assert_eq!(judge(&hiss), Some(false));
        // Digital silence decides nothing, in either form; the check waits for sound.
        assert_eq!(judge(&[0u8; 16_000]), None);
        assert_eq!(judge(&[0xffu8; 16_000]), None);
        let mut late = vec![0xffu8; 16_000];
        late.extend(&ulaw);
        assert_eq!(judge(&late), Some(false));
    }
}
