//! Fuzzes the RTP parser, and through it the jitter buffer and the DTMF tracker.
//!
//! The whole input is parsed as one datagram. Then it is read as a script of datagrams,
//! each `[len, ms since the last, flags, len bytes...]`: parsed, pushed into a
//! `JitterBuffer` with the clock advanced by `ms` (flags pick the samples the packet
//! claims and whether to pop), and every event played out is fed to a `DtmfTracker`.
#![no_main]

use callmood::core::rtp::dtmf::{parse_event, DtmfTracker};
use callmood::core::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use callmood::core::rtp::{parse, OwnedPacket};
use libfuzzer_sys::fuzz_target;

const MAX_PACKETS: usize = 32;

fn feed(out: &mut Vec<Playout>, tracker: &mut DtmfTracker) {
    for p in out.drain(..) {
        if let Playout::Event {
            timestamp, payload, ..
        } = p
        {
            if let Ok(ev) = parse_event(&payload) {
                let _ = tracker.push(timestamp, ev);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = parse(data) {
        assert!(!p.payload.is_empty());
    }

    let mut cfg = JitterConfig::new(8000);
    cfg.max_packets = MAX_PACKETS;
    cfg.depth_ms = u32::from(data.first().copied().unwrap_or(80));
    let mut jb = JitterBuffer::new(cfg);
    let mut tracker = DtmfTracker::default();
    let mut out = Vec::new();
    let mut now = 1_000u64;
    let mut rest = data.get(1..).unwrap_or_default();
    while let [len, dt, flags, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (datagram, next) = tail.split_at(n);
        rest = next;
        now += u64::from(*dt);
        if let Ok(pkt) = OwnedPacket::parse(datagram.to_vec()) {
            let samples = [0, 160, 80, 1][usize::from(flags & 3)];
            jb.push(now, pkt, samples);
            assert!(jb.len() <= MAX_PACKETS);
        }
        if flags & 4 != 0 {
            jb.pop(now, &mut out);
            feed(&mut out, &mut tracker);
        }
        if let Some(due) = jb.next_due_ms() {
            if flags & 8 != 0 && due <= now + 1000 {
                jb.pop(due, &mut out);
                feed(&mut out, &mut tracker);
            }
        }
    }
    jb.flush(&mut out);
    feed(&mut out, &mut tracker);
    let _ = tracker.flush();
    assert!(jb.is_empty());
});
