//! RFC 4733 telephone-events: the DTMF key presses a phone system sends in band as RTP.
//!
//! One key press is several packets: all carry the RTP timestamp of the event's start, the
//! duration grows with each (in clock units, 8000 Hz usually), and the last one has the end
//! bit set and is sent up to three times (RFC 4733 §2.5.1.4). [`DtmfTracker`] collapses
//! them into one [`Dtmf`] per press, reported once, as soon as it is known to have ended.
//!
//! Events outside 0..=15 (e.g. 16, flash) have no key and are never reported: they are
//! still tracked, so that one of them ends the press before it like any other event.

use super::RtpError;

/// One telephone-event payload block (RFC 4733 §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0..=15 are DTMF keys, see [`event_char`].
    pub event: u8,
    /// End bit: this packet reports the event's final duration.
    pub end: bool,
    /// Power level, −dBm0 (0..=63; larger is quieter).
    pub volume: u8,
    /// Duration so far, clock units from the event's start timestamp.
    pub duration: u16,
}

/// Reads the first 4-byte event block of a telephone-event payload. Later blocks (RFC 4733
/// §2.5.1.5 redundancy) repeat earlier events and are ignored.
pub fn parse_event(payload: &[u8]) -> Result<TelephoneEvent, RtpError> {
    let &[event, flags, d0, d1, ..] = payload else {
        return Err(RtpError::EventTooShort { len: payload.len() });
    };
    Ok(TelephoneEvent {
        event,
        end: flags & 0x80 != 0,
        // Bit 0x40 is reserved: ignored on receipt (RFC 4733 §2.3.3).
        volume: flags & 0x3F,
        duration: u16::from_be_bytes([d0, d1]),
    })
}

/// The key of a DTMF event: '0'..='9', '*', '#', 'A'..='D' for events 0..=15; `None`
/// otherwise (e.g. 16, flash).
pub fn event_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// A digit press, reported once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dtmf {
    /// The key: '0'..='9', '*', '#', 'A'..='D'.
    pub digit: char,
    /// The event code, 0..=15.
    pub event: u8,
    /// RTP timestamp of the event start.
    pub timestamp: u32,
    /// Clock units (8000 Hz usually). For a press whose end was lost, the longest duration
    /// seen. Long presses split into segments (RFC 4733 §2.5.1.3) are summed.
    pub duration: u32,
    /// Power level, −dBm0, of the last packet seen.
    pub volume: u8,
}

/// The event being tracked.
#[derive(Clone, Copy, Debug)]
struct Current {
    event: u8,
    /// Timestamp of the press's first segment: the one reported.
    start: u32,
    /// Timestamp of the segment now being received.
    segment: u32,
    /// Duration of the earlier segments, clock units.
    before: u32,
    /// Longest duration seen in this segment (reordered packets can carry a shorter one).
    duration: u16,
    volume: u8,
    ended: bool,
    reported: bool,
}

impl Current {
    fn new(timestamp: u32, ev: TelephoneEvent) -> Self {
        Self {
            event: ev.event,
            start: timestamp,
            segment: timestamp,
            before: 0,
            duration: ev.duration,
            volume: ev.volume,
            ended: ev.end,
            reported: false,
        }
    }

    /// The press, once: marks it reported. `None` for events that are not keys.
    fn report(&mut self) -> Option<Dtmf> {
        if self.reported {
            return None;
        }
        self.reported = true;
        Some(Dtmf {
            digit: event_char(self.event)?,
            event: self.event,
            timestamp: self.start,
            duration: self.before.saturating_add(u32::from(self.duration)),
            volume: self.volume,
        })
    }
}

/// Collapses the packets of each event (several per press, same timestamp, growing
/// duration, end bit sent up to 3 times) into one [`Dtmf`].
///
/// Feed it telephone-event packets in order (after the jitter buffer) or as they arrive:
/// a packet whose timestamp is older than the event being tracked (a retransmitted end, a
/// reordered packet of an earlier press) is ignored, so no press is reported twice.
#[derive(Clone, Debug, Default)]
pub struct DtmfTracker {
    current: Option<Current>,
}

impl DtmfTracker {
    /// Feed one telephone-event packet's (timestamp, parsed event); returns a finished press
    /// once: when the end bit is first seen, or when a packet with a new timestamp arrives
    /// while the old event had no end (lost end packets).
    ///
    /// If that new packet is itself an end (a short press whose other packets were all
    /// lost), its press is returned by the next call with its timestamp, or by
    /// [`DtmfTracker::flush`].
    pub fn push(&mut self, timestamp: u32, ev: TelephoneEvent) -> Option<Dtmf> {
        let Some(cur) = &mut self.current else {
            let cur = self.current.insert(Current::new(timestamp, ev));
            return if cur.ended { cur.report() } else { None };
        };
        // Serial-number order (RFC 1982), so timestamp wrap-around is no special case.
        let ahead = timestamp.wrapping_sub(cur.segment) as i32;
        if ahead < 0 {
            return None;
        }
        if ahead > 0 {
            // A press longer than 0xFFFF units continues in a new segment whose timestamp is
            // the old one plus 0xFFFF, the old segment ending without the end bit (§2.5.1.3).
            let continues = ev.event == cur.event && !cur.ended && ahead == 0xFFFF;
            if !continues {
                let finished = cur.report();
                let next = self.current.insert(Current::new(timestamp, ev));
                if finished.is_some() {
                    return finished;
                }
                return if next.ended { next.report() } else { None };
            }
            cur.before = cur.before.saturating_add(0xFFFF);
            cur.segment = timestamp;
            cur.duration = 0;
        }
        cur.duration = cur.duration.max(ev.duration);
        cur.volume = ev.volume;
        cur.ended |= ev.end;
        if cur.ended {
            cur.report()
        } else {
            None
        }
    }

    /// End of stream: the press in progress, if its end was never seen (or was seen but not
    /// yet returned, see [`DtmfTracker::push`]).
    pub fn flush(&mut self) -> Option<Dtmf> {
        self.current.as_mut().and_then(Current::report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: u8, end: bool, duration: u16) -> TelephoneEvent {
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
    }

    #[test]
    fn parse_and_chars() {
        // Event 9, end bit, reserved bit set (ignored), volume 10, duration 1600.
        assert_eq!(
            parse_event(&[0x09, 0xCA, 0x06, 0x40, 0xFF]).unwrap(),
            TelephoneEvent {
                event: 9,
                end: true,
                volume: 10,
                duration: 1600
            }
        );
        assert_eq!(
            parse_event(&[0x05, 0x0A, 0x00]),
            Err(RtpError::EventTooShort { len: 3 })
        );
        let keys: String = (0..=15).filter_map(event_char).collect();
        assert_eq!(keys, "0123456789*#ABCD");
        assert_eq!(event_char(16), None);
        assert_eq!(event_char(255), None);
    }

    #[test]
    fn rfc4733_flow_gives_one_press() {
        // Modelled on RFC 4733 §5: a '9' held 200 ms at 8000 Hz, a packet every 50 ms, all
        // stamped with the start, the end sent three times.
        let mut t = DtmfTracker::default();
        let ts = 0x0001_0000;
        let mut out = Vec::new();
        for d in [400, 800, 1200] {
            out.extend(t.push(ts, ev(9, false, d)));
        }
        for _ in 0..3 {
            out.extend(t.push(ts, ev(9, true, 1600)));
        }
        out.extend(t.flush());
        assert_eq!(
            out,
            vec![Dtmf {
                digit: '9',
                event: 9,
                timestamp: ts,
                duration: 1600,
                volume: 10
            }]
        );
    }

    #[test]
    fn lost_end_reported_by_next_press_or_flush() {
        let mut t = DtmfTracker::default();
        assert_eq!(t.push(100, ev(1, false, 400)), None);
        assert_eq!(t.push(100, ev(1, false, 800)), None);
        // The end packets of '1' are lost; '2' starts.
        let one = t.push(4000, ev(2, false, 400)).unwrap();
        assert_eq!((one.digit, one.timestamp, one.duration), ('1', 100, 800));
        assert_eq!(t.push(4000, ev(2, false, 800)), None);
        let two = t.flush().unwrap();
        assert_eq!((two.digit, two.timestamp, two.duration), ('2', 4000, 800));
        assert_eq!(t.flush(), None);
    }

    #[test]
    fn two_presses_in_a_row_and_late_retransmissions() {
        let mut t = DtmfTracker::default();
        let mut out = Vec::new();
        for (ts, key) in [(1000u32, 10u8), (3000, 11)] {
            out.extend(t.push(ts, ev(key, false, 400)));
            out.extend(t.push(ts, ev(key, true, 960)));
            out.extend(t.push(ts, ev(key, true, 960)));
        }
        // A third copy of the first press's end, reordered behind the second press.
        out.extend(t.push(1000, ev(10, true, 960)));
        out.extend(t.push(3000, ev(11, true, 960)));
        out.extend(t.flush());
        let got: Vec<(char, u32, u32)> = out
            .iter()
            .map(|d| (d.digit, d.timestamp, d.duration))
            .collect();
        assert_eq!(got, vec![('*', 1000, 960), ('#', 3000, 960)]);
    }

    #[test]
    fn short_press_seen_only_by_its_end() {
        let mut t = DtmfTracker::default();
        assert_eq!(t.push(0, ev(3, false, 400)), None);
        // '3' lost its end and '4' lost all but its end: both presses come out, in order.
        assert_eq!(t.push(8000, ev(4, true, 800)).map(|d| d.digit), Some('3'));
        assert_eq!(t.push(8000, ev(4, true, 800)).map(|d| d.digit), Some('4'));
        assert_eq!(t.push(8000, ev(4, true, 800)), None);
        assert_eq!(t.flush(), None);
        // The first packet of a fresh tracker may be an end too.
        let mut t = DtmfTracker::default();
        assert_eq!(t.push(5, ev(0, true, 320)).map(|d| d.digit), Some('0'));
    }

    #[test]
    fn non_key_events_are_not_reported_but_end_a_press() {
        let mut t = DtmfTracker::default();
        assert_eq!(t.push(0, ev(5, false, 400)), None);
        assert_eq!(t.push(2000, ev(16, false, 400)).map(|d| d.digit), Some('5'));
        assert_eq!(t.push(2000, ev(16, true, 800)), None);
        assert_eq!(t.flush(), None);
    }

    #[test]
    fn long_press_segments_are_one_press() {
        let mut t = DtmfTracker::default();
        let ts = u32::MAX - 100; // the segments' timestamps wrap around
        assert_eq!(t.push(ts, ev(7, false, 30_000)), None);
        assert_eq!(t.push(ts, ev(7, false, 0xFFFF)), None);
        let next = ts.wrapping_add(0xFFFF);
        assert_eq!(t.push(next, ev(7, false, 4000)), None);
        let d = t.push(next, ev(7, true, 8000)).unwrap();
        assert_eq!((d.digit, d.timestamp, d.duration), ('7', ts, 0xFFFF + 8000));
    }
}
