//! RTP ingest for telephony (RFC 3550), sans-I/O: bytes and timestamps in, values out.
//!
//! - [`parse`] / [`build`]: the RTP fixed header, CSRC list, header extension and padding.
//!   [`OwnedPacket::parse`] parses a datagram the caller hands over and keeps it, the
//!   payload read in place ([`Payload`]): the receive path copies a packet once, off the
//!   socket, and moves it from there to the decoder.
//! - [`dtmf`]: RFC 4733 telephone-events, collapsed into one [`dtmf::Dtmf`] per key press.
//! - [`jitter`]: a per-leg jitter buffer, told the arrival time, that puts packets back in
//!   order, detects loss and keeps the audio timeline true (gaps become silence or
//!   concealment).
//! - [`plc`]: lost packets concealed by repeating the last pitch period (G.711
//!   Appendix I), not silence.
//!
//! Nothing here opens a socket or reads a clock; the shell feeds datagrams and its own
//! monotonic time in milliseconds.
//!
//! The parser never panics and never indexes out of bounds, whatever the bytes: every
//! malformed datagram is an [`RtpError`], which the shell counts by [`RtpError::kind`] and
//! drops. All errors are per packet and recoverable: the next datagram may be fine.

use std::ops::{Deref, Range};

pub mod dtmf;
pub mod jitter;
pub mod leg;
pub mod plc;

/// RTP version this crate speaks (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;
/// Size of the fixed RTP header, bytes.
pub const FIXED_HEADER_LEN: usize = 12;
/// Most CSRC identifiers a header can carry (the CC field is 4 bits).
pub const MAX_CSRCS: usize = 15;

/// A parsed RTP packet borrowing the datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Marker bit: for audio, the first packet of a talkspurt (RFC 3551 §4.1).
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number (wraps at 2^16).
    pub sequence: u16,
    /// RTP timestamp, in clock units of the payload format (wraps at 2^32).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// CSRC identifiers (0..=15 of them). Telephony streams almost never carry any, and an
    /// empty `Vec` does not allocate, so the common parse is allocation-free.
    pub csrcs: Vec<u32>,
    /// Header extension (profile-defined id, data), if the X bit is set. The data is whole
    /// 32-bit words; RFC 8285 elements inside it are left to the caller.
    pub extension: Option<(u16, &'a [u8])>,
    /// Payload with any padding removed (never empty: see [`RtpError::EmptyPayload`]).
    pub payload: &'a [u8],
}

/// Why a datagram is not a usable RTP packet. Every variant is recoverable: drop the
/// datagram, count it by [`RtpError::kind`], and carry on with the next.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RtpError {
    /// Fewer bytes than the fixed header.
    #[error("RTP packet of {len} bytes, shorter than the {FIXED_HEADER_LEN}-byte fixed header")]
    TooShort {
        /// Datagram length, bytes.
        len: usize,
    },
    /// The version field is not 2.
    #[error("RTP version {0}, expected {RTP_VERSION}")]
    BadVersion(u8),
    /// The CSRC count runs past the end of the datagram.
    #[error("CSRC count {count} needs a {needed}-byte header, packet has {len} bytes")]
    CsrcOverrun {
        /// The CC field, 0..=15.
        count: u8,
        /// Header bytes the CSRC list needs.
        needed: usize,
        /// Datagram length, bytes.
        len: usize,
    },
    /// The header extension's length runs past the end of the datagram.
    #[error("header extension needs a {needed}-byte header, packet has {len} bytes")]
    ExtensionOverrun {
        /// Header bytes the extension needs (including its own 4-byte header).
        needed: usize,
        /// Datagram length, bytes.
        len: usize,
    },
    /// The P bit is set but the padding count is 0 or longer than what follows the header.
    #[error("padding of {padding} bytes, but {available} bytes follow the {header}-byte header")]
    BadPadding {
        /// The padding count (the datagram's last byte).
        padding: u8,
        /// Bytes after the header (payload plus padding).
        available: usize,
        /// Header length, bytes.
        header: usize,
    },
    /// An RTCP packet on a port muxing RTP and RTCP (RFC 5761 §4): not RTP.
    #[error("RTCP packet (type {packet_type}) where RTP was expected")]
    Rtcp {
        /// The RTCP packet type (second byte), 192..=223.
        packet_type: u8,
    },
    /// A valid header with nothing after it (e.g. an RFC 6263 keepalive): nothing to play.
    #[error("RTP packet with an empty payload")]
    EmptyPayload,
    /// A telephone-event payload shorter than its 4 bytes (RFC 4733 §2.3).
    #[error("telephone-event payload of {len} bytes, expected at least 4")]
    EventTooShort {
        /// Payload length, bytes.
        len: usize,
    },
}

impl RtpError {
    /// A short, stable name for the error, usable as a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            RtpError::TooShort { .. } => "too_short",
            RtpError::BadVersion(_) => "bad_version",
            RtpError::CsrcOverrun { .. } => "csrc_overrun",
            RtpError::ExtensionOverrun { .. } => "extension_overrun",
            RtpError::BadPadding { .. } => "bad_padding",
            RtpError::Rtcp { .. } => "rtcp",
            RtpError::EmptyPayload => "empty_payload",
            RtpError::EventTooShort { .. } => "event_too_short",
        }
    }
}

/// Second bytes that mark RTCP on a muxed port. RFC 5761 §4 forbids RTP payload types
/// 64..=95 when muxing precisely so that RTCP types 192..=223 (with the marker bit in the
/// same place) can never be taken for RTP; checking the whole range rather than only
/// SR..APP (200..=204) also refuses feedback (205, 206) and XR (207) reports.
const RTCP_TYPES: std::ops::RangeInclusive<u8> = 192..=223;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses one RTP datagram (RFC 3550 §5.1, §5.3.1).
///
/// Checks, in order: a first byte is there, version 2, not RTCP (RFC 5761), the 12-byte
/// fixed header, CSRC list, extension, padding, a non-empty payload.
pub fn parse(buf: &[u8]) -> Result<RtpPacket<'_>, RtpError> {
    parse_in_place(buf).map(|(packet, _)| packet)
}

/// As [`parse`], with the offset of the payload in `buf`.
fn parse_in_place(buf: &[u8]) -> Result<(RtpPacket<'_>, usize), RtpError> {
    let len = buf.len();
    let &b0 = buf.first().ok_or(RtpError::TooShort { len })?;
    let version = b0 >> 6;
    if version != RTP_VERSION {
        return Err(RtpError::BadVersion(version));
    }
    // RTCP is recognised before the length check: a receiver report without blocks is
    // only 8 bytes and should be named for what it is, not "too short".
    if let Some(&b1) = buf.get(1) {
        if RTCP_TYPES.contains(&b1) {
            return Err(RtpError::Rtcp { packet_type: b1 });
        }
    }
    let (Some(b1), Some(sequence), Some(timestamp), Some(ssrc)) =
        (buf.get(1), be16(buf, 2), be32(buf, 4), be32(buf, 8))
    else {
        return Err(RtpError::TooShort { len });
    };
    let has_padding = b0 & 0x20 != 0;
    let has_extension = b0 & 0x10 != 0;
    let count = b0 & 0x0F;

    let mut at = FIXED_HEADER_LEN;
    let needed = at + 4 * usize::from(count);
    if needed > len {
        return Err(RtpError::CsrcOverrun { count, needed, len });
    }
    let csrcs = (0..usize::from(count))
        .filter_map(|i| be32(buf, at + 4 * i))
        .collect();
    at = needed;

    let extension = if has_extension {
        let (Some(id), Some(words)) = (be16(buf, at), be16(buf, at + 2)) else {
            return Err(RtpError::ExtensionOverrun {
                needed: at + 4,
                len,
            });
        };
        let start = at + 4;
        let end = start + 4 * usize::from(words);
        let Some(data) = buf.get(start..end) else {
            return Err(RtpError::ExtensionOverrun { needed: end, len });
        };
        at = end;
        Some((id, data))
    } else {
        None
    };

    let rest = buf.get(at..).unwrap_or_default();
    let payload = if has_padding {
        // The last byte counts the padding, itself included (RFC 3550 §5.1), so 0 is invalid.
        let padding = rest.last().copied().unwrap_or(0);
        let available = rest.len();
        match available.checked_sub(usize::from(padding)) {
            Some(keep) if padding > 0 => rest.get(..keep).unwrap_or_default(),
            _ => {
                return Err(RtpError::BadPadding {
                    padding,
                    available,
                    header: at,
                })
            }
        }
    } else {
        rest
    };
    if payload.is_empty() {
        return Err(RtpError::EmptyPayload);
    }
    let packet = RtpPacket {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7F,
        sequence,
        timestamp,
        ssrc,
        csrcs,
        extension,
        payload,
    };
    // The payload starts right after the header: `rest` is `buf[at..]`.
    Ok((packet, at))
}

/// An RTP payload where it came in: the whole datagram, owned, and where the payload lies
/// in it. The receive path moves the datagram the socket filled to the decoder and reads
/// the payload in place, so the bytes are never copied out. Reads as the payload's bytes
/// (`Deref<Target = [u8]>`); compares by them.
#[derive(Clone)]
pub struct Payload {
    datagram: Vec<u8>,
    range: Range<usize>,
}

impl Payload {
    /// The payload's bytes (padding removed).
    pub fn as_slice(&self) -> &[u8] {
        self.datagram.get(self.range.clone()).unwrap_or_default()
    }

    /// The whole datagram back (header and padding included), e.g. to reuse its buffer.
    pub fn into_datagram(self) -> Vec<u8> {
        self.datagram
    }
}

impl From<Vec<u8>> for Payload {
    /// A payload that is the whole buffer.
    fn from(payload: Vec<u8>) -> Self {
        let range = 0..payload.len();
        Self {
            datagram: payload,
            range,
        }
    }
}

impl Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Payload {}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq<Vec<u8>> for Payload {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// An RTP packet that owns its datagram, parsed in place: what the jitter buffer holds.
/// The header fields the receive path uses are read out; CSRCs and the header extension
/// stay in the datagram, unread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedPacket {
    /// Marker bit: for audio, the first packet of a talkspurt (RFC 3551 §4.1).
    pub marker: bool,
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Sequence number (wraps at 2^16).
    pub sequence: u16,
    /// RTP timestamp, in clock units of the payload format (wraps at 2^32).
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload with any padding removed (never empty), in place in the datagram.
    pub payload: Payload,
}

impl OwnedPacket {
    /// Parses `datagram` as [`parse`] does and keeps it: no byte is copied. On an error
    /// the datagram is dropped.
    pub fn parse(datagram: Vec<u8>) -> Result<Self, RtpError> {
        let (p, start) = parse_in_place(&datagram)?;
        let (marker, payload_type, sequence, timestamp, ssrc) =
            (p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc);
        let range = start..start + p.payload.len();
        Ok(Self {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            payload: Payload { datagram, range },
        })
    }
}

impl RtpPacket<'_> {
    /// Appends the packet's wire form to `out`, with `padding` bytes of padding (0 for
    /// none; the last padding byte holds the count, RFC 3550 §5.1).
    ///
    /// What the header cannot express is cut rather than refused, since this is for tests
    /// and test senders: more than 15 CSRCs keep the first 15, the payload type keeps its
    /// low 7 bits, extension data is zero-filled to a 32-bit boundary and cut at 65535 words.
    pub fn write_into(&self, padding: u8, out: &mut Vec<u8>) {
        let csrcs = &self.csrcs[..self.csrcs.len().min(MAX_CSRCS)];
        let mut b0 = (RTP_VERSION << 6) | csrcs.len() as u8;
        if padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.push(b0);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for c in csrcs {
            out.extend_from_slice(&c.to_be_bytes());
        }
        if let Some((id, data)) = self.extension {
            let words = data.len().div_ceil(4).min(usize::from(u16::MAX));
            let data = &data[..data.len().min(4 * words)];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(words as u16).to_be_bytes());
            out.extend_from_slice(data);
            out.resize(out.len() + (4 * words - data.len()), 0);
        }
        out.extend_from_slice(self.payload);
        if padding > 0 {
            out.resize(out.len() + usize::from(padding) - 1, 0);
            out.push(padding);
        }
    }

    /// The packet's wire form with `padding` bytes of padding; see [`RtpPacket::write_into`].
    pub fn to_bytes(&self, padding: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            FIXED_HEADER_LEN + 4 * self.csrcs.len() + self.payload.len() + usize::from(padding),
        );
        self.write_into(padding, &mut out);
        out
    }
}

/// Serialises a packet (for tests and test senders): version 2, no CSRCs, no extension,
/// no padding. The payload type keeps its low 7 bits.
pub fn build(
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    build_padded(marker, payload_type, sequence, timestamp, ssrc, payload, 0)
}

/// As [`build`], with `padding` bytes of padding (0 for none).
pub fn build_padded(
    marker: bool,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
    padding: u8,
) -> Vec<u8> {
    RtpPacket {
        marker,
        payload_type,
        sequence,
        timestamp,
        ssrc,
        csrcs: Vec::new(),
        extension: None,
        payload,
    }
    .to_bytes(padding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::SplitMix64;

    /// V=2, PT 0 (PCMU), seq 0x1234, ts 0xDEADBEEF, SSRC 0x01020304, 4 payload bytes.
    const MINIMAL: [u8; 16] = [
        0x80, 0x00, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0x01, 0x02, 0x03, 0x04, 0xFF, 0x7F, 0x00,
        0x80,
    ];

    #[test]
    fn minimal_header() {
        let p = parse(&MINIMAL).unwrap();
        assert_eq!(
            p,
            RtpPacket {
                marker: false,
                payload_type: 0,
                sequence: 0x1234,
                timestamp: 0xDEAD_BEEF,
                ssrc: 0x0102_0304,
                csrcs: vec![],
                extension: None,
                payload: &[0xFF, 0x7F, 0x00, 0x80],
            }
        );
    }

    #[test]
    fn marker_and_dynamic_type() {
        // Marker set, PT 101 (a common telephone-event number): 0x80 | 101 = 0xE5.
        let buf = [
            0x80, 0xE5, 0x00, 0x01, 0x00, 0x00, 0x00, 0xA0, 0x00, 0x00, 0x00, 0x2A, 0x05, 0x0A,
            0x00, 0xA0,
        ];
        let p = parse(&buf).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 101);
        assert_eq!((p.sequence, p.timestamp, p.ssrc), (1, 160, 42));
        assert_eq!(p.payload, &[0x05, 0x0A, 0x00, 0xA0]);
    }

    #[test]
    fn with_csrcs() {
        let buf = [
            0x82, 0x08, 0x00, 0x07, 0x00, 0x00, 0x01, 0x00, 0xAA, 0xBB, 0xCC,
            0xDD, // CC=2, PT 8
            0x11, 0x11, 0x11, 0x11, // CSRC 1
            0x22, 0x22, 0x22, 0x22, // CSRC 2
            0xD5, 0xD5, // payload
        ];
        let p = parse(&buf).unwrap();
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.csrcs, vec![0x1111_1111, 0x2222_2222]);
        assert_eq!(p.payload, &[0xD5, 0xD5]);
        assert_eq!(p.to_bytes(0), buf);
    }

    #[test]
    fn with_extension() {
        let buf = [
            0x90, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01, 0x00, 0xAA, 0xBB, 0xCC, 0xDD, // X=1
            0xBE, 0xDE, 0x00, 0x02, // RFC 8285 one-byte profile, 2 words
            0x10, 0xFF, 0x00, 0x00, 0x21, 0x01, 0x02, 0x00, // extension data
            0x01, 0x02, 0x03, // payload
        ];
        let p = parse(&buf).unwrap();
        assert_eq!(
            p.extension,
            Some((0xBEDE, &[0x10, 0xFF, 0, 0, 0x21, 0x01, 0x02, 0][..]))
        );
        assert_eq!(p.payload, &[1, 2, 3]);
        assert_eq!(p.to_bytes(0), buf);
    }

    #[test]
    fn with_padding() {
        let buf = [
            0xA0, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01, 0x00, 0xAA, 0xBB, 0xCC, 0xDD, // P=1
            0x55, 0x66, // payload
            0x00, 0x00, 0x03, // 3 bytes of padding, count last
        ];
        let p = parse(&buf).unwrap();
        assert_eq!(p.payload, &[0x55, 0x66]);
        assert_eq!(
            build_padded(false, 0, 7, 256, 0xAABB_CCDD, &[0x55, 0x66], 3),
            buf
        );
    }

    #[test]
    fn owned_packet_reads_the_payload_in_place() {
        let p = OwnedPacket::parse(MINIMAL.to_vec()).unwrap();
        assert_eq!(
            (p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (false, 0, 0x1234, 0xDEAD_BEEF, 0x0102_0304)
        );
        assert_eq!(p.payload, vec![0xFF, 0x7F, 0x00, 0x80]);
        assert_eq!(p.payload.into_datagram(), MINIMAL.to_vec());
        // CSRCs, an extension and padding around the payload: the same bytes as `parse`.
        let pkt = RtpPacket {
            marker: true,
            payload_type: 96,
            sequence: 9,
            timestamp: 10,
            ssrc: 11,
            csrcs: vec![1, 2],
            extension: Some((0xBEDE, &[1, 2, 3, 4])),
            payload: &[5, 6, 7],
        };
        let bytes = pkt.to_bytes(6);
        let p = OwnedPacket::parse(bytes.clone()).unwrap();
        assert_eq!(*p.payload, [5, 6, 7]);
        assert_eq!(p.payload.len(), 3);
        assert_eq!((p.marker, p.payload_type), (true, 96));
        for n in 0..=bytes.len() {
            let owned = OwnedPacket::parse(bytes[..n].to_vec());
            let borrowed = parse(&bytes[..n]);
            assert_eq!(
                owned.as_ref().map(|p| p.payload.as_slice()),
                borrowed.as_ref().map(|p| p.payload),
                "{n} bytes"
            );
        }
    }

    #[test]
    fn malformed() {
        let err = |b: &[u8]| parse(b).unwrap_err();
        assert_eq!(err(&[]), RtpError::TooShort { len: 0 });
        assert_eq!(err(&MINIMAL[..11]), RtpError::TooShort { len: 11 });
        assert_eq!(err(&MINIMAL[..1]), RtpError::TooShort { len: 1 });
        let mut v1 = MINIMAL;
        v1[0] = 0x40;
        assert_eq!(err(&v1), RtpError::BadVersion(1));
        assert_eq!(err(&v1).to_string(), "RTP version 1, expected 2");
        assert_eq!(err(&[0x00]), RtpError::BadVersion(0));
        // CC=3 needs 24 header bytes; only 16 here.
        let mut cc = MINIMAL;
        cc[0] = 0x83;
        assert_eq!(
            err(&cc),
            RtpError::CsrcOverrun {
                count: 3,
                needed: 24,
                len: 16
            }
        );
        // X=1 with a length of 0x0100 words after the fixed header.
        let ext = [
            0x90, 0x00, 0x00, 0x07, 0x00, 0x00, 0x01, 0x00, 0xAA, 0xBB, 0xCC, 0xDD, 0xBE, 0xDE,
            0x01, 0x00, 0x01, 0x02,
        ];
        assert_eq!(
            err(&ext),
            RtpError::ExtensionOverrun {
                needed: 16 + 1024,
                len: 18
            }
        );
        // X=1 but not even the extension's own header fits.
        assert_eq!(
            err(&ext[..14]),
            RtpError::ExtensionOverrun {
                needed: 16,
                len: 14
            }
        );
        // P=1, padding count 9 with 4 bytes after the header.
        let mut pad = MINIMAL;
        pad[0] = 0xA0;
        pad[15] = 9;
        assert_eq!(
            err(&pad),
            RtpError::BadPadding {
                padding: 9,
                available: 4,
                header: 12
            }
        );
        pad[15] = 0;
        assert_eq!(err(&pad).kind(), "bad_padding");
        // P=1 and the padding is the whole rest: nothing left to play.
        pad[15] = 4;
        assert_eq!(err(&pad), RtpError::EmptyPayload);
        assert_eq!(err(&MINIMAL[..12]), RtpError::EmptyPayload);
        // An RTCP receiver report (PT 201) with no report blocks: 8 bytes.
        let rr = [0x80, 0xC9, 0x00, 0x01, 0x12, 0x34, 0x56, 0x78];
        assert_eq!(err(&rr), RtpError::Rtcp { packet_type: 201 });
        // A sender report (200) and an XR (207) at full length too.
        let mut sr = MINIMAL;
        sr[1] = 200;
        assert_eq!(err(&sr).kind(), "rtcp");
        sr[1] = 207;
        assert_eq!(err(&sr), RtpError::Rtcp { packet_type: 207 });
    }

    #[test]
    fn messages_and_kinds_are_distinct() {
        let all = [
            RtpError::TooShort { len: 3 },
            RtpError::BadVersion(1),
            RtpError::CsrcOverrun {
                count: 1,
                needed: 16,
                len: 12,
            },
            RtpError::ExtensionOverrun {
                needed: 20,
                len: 16,
            },
            RtpError::BadPadding {
                padding: 0,
                available: 1,
                header: 12,
            },
            RtpError::Rtcp { packet_type: 200 },
            RtpError::EmptyPayload,
            RtpError::EventTooShort { len: 2 },
        ];
        let kinds: std::collections::HashSet<_> = all.iter().map(RtpError::kind).collect();
        assert_eq!(kinds.len(), all.len());
        for e in &all {
            assert!(!e.to_string().is_empty());
        }
        assert_eq!(
            RtpError::TooShort { len: 3 }.to_string(),
            "RTP packet of 3 bytes, shorter than the 12-byte fixed header"
        );
    }

    #[test]
    fn round_trip() {
        let mut rng = SplitMix64::new(1);
        for i in 0..500u32 {
            let len = 1 + rng.below(200);
            let payload: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            let marker = i % 3 == 0;
            // Skip 64..=95: with the marker bit those are the RTCP types of RFC 5761.
            let pt = [0u8, 8, 9, 18, 96, 101, 127][i as usize % 7];
            let seq = rng.next_u64() as u16;
            let ts = rng.next_u64() as u32;
            let ssrc = rng.next_u64() as u32;
            let padding = (rng.below(4) * rng.below(60)) as u8;
            let csrcs: Vec<u32> = (0..rng.below(16)).map(|_| rng.next_u64() as u32).collect();
            let ext_data: Vec<u8> = (0..4 * rng.below(5))
                .map(|_| rng.next_u64() as u8)
                .collect();
            let ext = (i % 2 == 0).then_some((rng.next_u64() as u16, &ext_data[..]));
            let want = RtpPacket {
                marker,
                payload_type: pt,
                sequence: seq,
                timestamp: ts,
                ssrc,
                csrcs,
                extension: ext,
                payload: &payload,
            };
            let bytes = want.to_bytes(padding);
            assert_eq!(parse(&bytes).unwrap(), want);
            let plain = build(marker, pt, seq, ts, ssrc, &payload);
            let p = parse(&plain).unwrap();
            assert_eq!((p.marker, p.payload_type), (marker, pt));
            assert_eq!((p.sequence, p.timestamp, p.ssrc), (seq, ts, ssrc));
            assert_eq!(p.payload, &payload[..]);
        }
    }

    #[test]
    fn unaligned_extension_is_zero_filled() {
        let data = [1u8, 2, 3, 4, 5];
        let pkt = RtpPacket {
            marker: false,
            payload_type: 0,
            sequence: 1,
            timestamp: 2,
            ssrc: 3,
            csrcs: vec![],
            extension: Some((7, &data)),
            payload: &[9],
        };
        let bytes = pkt.to_bytes(0);
        let p = parse(&bytes).unwrap();
        assert_eq!(p.extension, Some((7, &[1u8, 2, 3, 4, 5, 0, 0, 0][..])));
        assert_eq!(p.payload, &[9]);
    }

    #[test]
    fn no_panic_on_prefixes_and_noise() {
        let ext = RtpPacket {
            marker: true,
            payload_type: 96,
            sequence: 65535,
            timestamp: u32::MAX,
            ssrc: 5,
            csrcs: vec![1, 2, 3],
            extension: Some((0xBEDE, &[1, 2, 3, 4, 5, 6, 7, 8])),
            payload: &[0xAB; 40],
        };
        let valid = [
            MINIMAL.to_vec(),
            ext.to_bytes(0),
            ext.to_bytes(17),
            build_padded(false, 0, 1, 2, 3, &[0; 160], 255),
        ];
        for v in &valid {
            assert!(parse(v).is_ok());
            for n in 0..v.len() {
                let _ = parse(&v[..n]);
            }
        }
        let mut rng = SplitMix64::new(0x5EED);
        for _ in 0..5000 {
            let len = rng.below(80);
            let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            // Half with a valid version so the deeper paths get exercised.
            if let Some(first) = b.first_mut() {
                if rng.below(2) == 0 {
                    *first = 0x80 | (*first & 0x3F);
                }
            }
            if let Ok(p) = parse(&b) {
                assert!(!p.payload.is_empty() && p.csrcs.len() <= MAX_CSRCS);
            }
        }
    }
}
