//! Fuzzes the AudioSocket frame decoder.
//!
//! The input is `[mode, max hi, max lo, stream...]`. Bit 7 of `mode` picks a decoder with
//! the 16-bit max length that follows, bit 6 one with `usize::MAX` (else
//! `FrameDecoder::new()`); `mode` also seeds the sizes of the chunks the stream is pushed
//! in, as TCP would cut it. After each push every complete message is taken out. It checks
//! that nothing panics; that each message is the frame at its place in the stream (kind,
//! length, payload) and is well formed; that after a drain `pending()` is the bytes of one
//! incomplete message, under header + max length; that after an error the decoder is
//! poisoned as documented (the same error again, nothing held, pushes ignored); that the
//! same stream pushed in one piece gives the same messages and error; and that every
//! message, re-encoded with `encode`, decodes back to itself.
#![no_main]

use callmood::core::audiosocket::{
    encode, AudioSocketError, FrameDecoder, Message, HEADER_LEN, KIND_AUDIO, KIND_DTMF, KIND_ERROR,
    KIND_HANGUP, KIND_UUID, MAX_PAYLOAD_LEN,
};
use libfuzzer_sys::fuzz_target;

/// Everything `d` decodes from `bytes` pushed in one piece.
fn one_piece(mut d: FrameDecoder, bytes: &[u8]) -> (Vec<Message>, Option<AudioSocketError>) {
    d.push(bytes);
    let mut msgs = Vec::new();
    loop {
        match d.next_message() {
            Ok(Some(m)) => msgs.push(m),
            Ok(None) => return (msgs, None),
            Err(e) => return (msgs, Some(e)),
        }
    }
}

/// Checks that `m` is the frame `raw` (header and payload as they came) and well formed.
fn check_frame(m: &Message, raw: &[u8], max: usize) {
    let [kind, hi, lo, payload @ ..] = raw else {
        panic!("a message from {} bytes", raw.len());
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    assert_eq!(payload.len(), len, "{m:?}");
    assert!(len <= max, "{m:?} over the max {max}");
    match m {
        Message::Hangup => assert_eq!(*kind, KIND_HANGUP),
        Message::Uuid(id) => {
            assert_eq!(*kind, KIND_UUID);
            assert_eq!(&id[..], payload);
        }
        Message::Dtmf(c) => {
            assert_eq!(*kind, KIND_DTMF);
            assert_eq!(payload, &[*c as u8]);
            assert!(matches!(c, '0'..='9' | '*' | '#' | 'A'..='D'), "{c:?}");
        }
        Message::Audio(a) => {
            assert_eq!(*kind, KIND_AUDIO);
            assert_eq!(&a[..], payload);
            assert_eq!(a.len() % 2, 0);
        }
        Message::Error(code) => {
            assert_eq!(*kind, KIND_ERROR);
            assert_eq!(*code, payload.first().copied());
        }
        Message::Unknown { kind: k, len: l } => {
            assert_eq!(k, kind);
            assert_eq!(*l, len);
            assert!(![KIND_HANGUP, KIND_UUID, KIND_DTMF, KIND_AUDIO, KIND_ERROR].contains(k));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, max_hi, max_lo, stream @ ..] = data else {
        return;
    };
    let (fresh, max) = if mode & 0x80 != 0 {
        let max = usize::from(u16::from_be_bytes([*max_hi, *max_lo]));
        (FrameDecoder::with_max_len(max), max)
    } else if mode & 0x40 != 0 {
        // Above what the length field can carry: the same as `new()`.
        (FrameDecoder::with_max_len(usize::MAX), MAX_PAYLOAD_LEN)
    } else {
        (FrameDecoder::new(), MAX_PAYLOAD_LEN)
    };

    let mut d = fresh.clone();
    let mut msgs = Vec::new();
    let mut error = None;
    // Start of the first byte not yet returned as a message.
    let mut pos = 0usize;
    let mut pushed = 0usize;
    let mut seed = u32::from(*mode) | 0x100;
    while pushed < stream.len() && error.is_none() {
        // xorshift: chunks of 1..=64 bytes, now and then a larger one.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = if seed % 8 == 0 {
            (seed as usize >> 8) % 4096 + 1
        } else {
            (seed as usize >> 8) % 64 + 1
        };
        let chunk = &stream[pushed..(pushed + n).min(stream.len())];
        pushed += chunk.len();
        d.push(chunk);
        assert_eq!(d.pending(), pushed - pos);
        loop {
            let before = d.pending();
            match d.next_message() {
                Ok(Some(m)) => {
                    let used = before - d.pending();
                    check_frame(&m, &stream[pos..pos + used], max);
                    pos += used;
                    msgs.push(m);
                }
                Ok(None) => {
                    assert_eq!(d.pending(), before);
                    break;
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = &error {
            // Poisoned: the same error again, nothing held, new bytes ignored.
            assert_eq!(d.pending(), 0);
            assert_eq!(d.next_message().as_ref(), Err(e));
            d.push(&[KIND_HANGUP, 0, 0]);
            assert_eq!(d.pending(), 0);
            assert_eq!(d.next_message().as_ref(), Err(e));
            // The header at `pos` had arrived and shows what is wrong.
            let [kind, hi, lo, ..] = stream[pos..] else {
                panic!("{e:?} before a whole header");
            };
            let len = usize::from(u16::from_be_bytes([hi, lo]));
            match e {
                AudioSocketError::TooLong {
                    kind: k,
                    len: l,
                    max: m,
                } => {
                    assert_eq!((*k, *l, *m), (kind, len, max));
                    assert!(len > max);
                }
                AudioSocketError::BadUuidLength { len: l } => {
                    assert_eq!((kind, *l), (KIND_UUID, len));
                    assert_ne!(len, 16);
                }
                AudioSocketError::BadDtmfLength { len: l } => {
                    assert_eq!((kind, *l), (KIND_DTMF, len));
                    assert_ne!(len, 1);
                }
                AudioSocketError::BadDtmf { byte } => {
                    assert_eq!((kind, len), (KIND_DTMF, 1));
                    assert_eq!(stream.get(pos + HEADER_LEN), Some(byte));
                }
                AudioSocketError::AudioOddLength { len: l } => {
                    assert_eq!((kind, *l), (KIND_AUDIO, len));
                    assert_eq!(len % 2, 1);
                }
            }
        } else {
            // What is held is one incomplete message.
            assert_eq!(d.pending(), pushed - pos);
            assert!(d.pending() < HEADER_LEN + max, "{} held", d.pending());
        }
    }

    // Chunking changes nothing.
    assert_eq!(one_piece(fresh.clone(), stream), (msgs.clone(), error));

    // Re-encoded, each message decodes back to itself, even under the same max length.
    for m in &msgs {
        let bytes = encode(m);
        assert_eq!(one_piece(fresh.clone(), &bytes), (vec![m.clone()], None));
        let mut again = fresh.clone();
        again.push(&bytes);
        let _ = again.next_message();
        assert_eq!(again.pending(), 0, "{m:?} left bytes over");
    }
});
