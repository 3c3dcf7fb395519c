//! One RTP leg, sans-I/O: datagrams in, samples and key presses out.
//!
//! ```text
//! datagram ─► OwnedPacket::parse ─► payload type? ─► audio / telephone-event ─► JitterBuffer
//!                      │ malformed: dropped, counted       │ unknown: dropped, counted
//! JitterBuffer ─► Audio: G.711 / big-endian L16 decode (codec) ─► samples
//!              ─► Gap: zeros (lost packets, sender silence), so audio time stays true
//!              ─► Event: DtmfTracker ─► one key press per event
//! ```
//! The shell tells it the time (`now_ms`, a monotonic clock shared by the legs
//! of a call) at every packet and on a timer; nothing here reads a clock.
//!
//! A datagram handed over with [`RtpLeg::push_owned`] is moved through the jitter buffer
//! and decoded from where it lies: the leg copies no packet bytes.
use crate::core::codec::{self, ByteOrder, Encoding};
use crate::core::rtp::dtmf::{parse_event, Dtmf, DtmfTracker};
use crate::core::rtp::jitter::{JitterBuffer, JitterConfig, Playout, PushResult};
use crate::core::rtp::plc::Concealer;
use crate::core::rtp::{OwnedPacket, RtpError};
use crate::proto;

/// Static RTP payload type of G.711 μ-law (RFC 3551).
pub const PT_PCMU: u8 = 0;
/// Static RTP payload type of G.711 A-law (RFC 3551).
pub const PT_PCMA: u8 = 8;
/// Default dynamic payload type of L16 audio.
pub const DEFAULT_PT_L16: u8 = 96;
/// Default payload type of RFC 4733 telephone-events (what Asterisk and most
/// SIP stacks offer).
pub const DEFAULT_PT_DTMF: u8 = 101;
/// Default jitter buffer depth, ms.
pub const DEFAULT_JITTER_MS: u32 = crate::core::rtp::jitter::DEFAULT_DEPTH_MS;
/// Deepest jitter buffer accepted, ms.
pub const MAX_JITTER_MS: u32 = 1000;

/// How a channel's RTP is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtpSettings {
    /// Payload type of the audio.
    pub payload_type: u8,
    /// Payload type of telephone-events.
    pub dtmf_payload_type: u8,
    /// Jitter buffer depth, ms.
    pub jitter_ms: u32,
}

impl RtpSettings {
    /// The defaults for an encoding: PCMU 0, PCMA 8, L16 96; DTMF 101; 80 ms.
    pub fn for_encoding(encoding: Encoding) -> Self {
        Self {
            payload_type: match encoding {
                Encoding::Mulaw => PT_PCMU,
                Encoding::Alaw => PT_PCMA,
                Encoding::Linear16 => DEFAULT_PT_L16,
            },
            dtmf_payload_type: DEFAULT_PT_DTMF,
            jitter_ms: DEFAULT_JITTER_MS,
        }
    }

    /// Settings from the wire (0 means the default), checked.
    pub fn from_wire(
        encoding: Encoding,
        payload_type: u32,
        dtmf_payload_type: u32,
        jitter_ms: u32,
    ) -> Result<Self, RtpSettingsError> {
        let mut s = Self::for_encoding(encoding);
        if payload_type != 0 {
            let ok = match encoding {
                Encoding::Linear16 => (96..=127).contains(&payload_type),
                Encoding::Mulaw | Encoding::Alaw => payload_type <= 127,
            };
            if !ok {
                return Err(RtpSettingsError::PayloadType {
                    payload_type,
                    encoding,
                });
            }
            s.payload_type = payload_type as u8;
        }
        if dtmf_payload_type != 0 {
            if !(96..=127).contains(&dtmf_payload_type) {
                return Err(RtpSettingsError::DtmfPayloadType(dtmf_payload_type));
            }
            s.dtmf_payload_type = dtmf_payload_type as u8;
        }
        if s.dtmf_payload_type == s.payload_type {
            return Err(RtpSettingsError::SharedPayloadType(s.payload_type));
        }
        if jitter_ms != 0 {
            if jitter_ms > MAX_JITTER_MS {
                return Err(RtpSettingsError::JitterTooLong { jitter_ms });
            }
            s.jitter_ms = jitter_ms;
        }
        Ok(s)
    }

    /// Bytes of audio an RTP datagram carries, for pacing: its payload, unless it is a
    /// telephone-event or no RTP packet at all (then 0). Unknown payload types count as
    /// audio: the leg drops them, but they took the sender's bandwidth all the same.
    pub fn audio_bytes(&self, datagram: &[u8]) -> usize {
        match crate::core::rtp::parse(datagram) {
            Ok(p) if p.payload_type != self.dtmf_payload_type => p.payload.len(),
            _ => 0,
        }
    }
}

/// Why RTP settings from the wire are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RtpSettingsError {
    #[error(
        "payload type {payload_type} is not usable for {encoding:?} (L16 needs a dynamic type 96..=127)"
    )]
    PayloadType {
        payload_type: u32,
        encoding: Encoding,
    },
    #[error("DTMF payload type {0} is not a dynamic type 96..=127")]
    DtmfPayloadType(u32),
    #[error("audio and DTMF share payload type {0}")]
    SharedPayloadType(u8),
    #[error("jitter buffer of {jitter_ms} ms is over the limit of {MAX_JITTER_MS} ms")]
    JitterTooLong { jitter_ms: u32 },
}

/// What a leg hands back, in the order of its audio timeline.
#[derive(Clone, Debug, PartialEq)]
pub enum LegOut {
    /// Samples in -1..1 at the leg's rate (decoded audio or concealment).
    Samples(Vec<f32>),
    /// The first packet of a telephone-event was played out here.
    DtmfBegin { timestamp: u32 },
    /// A finished key press.
    Dtmf(Dtmf),
}

/// Counters of one leg, beyond what the jitter buffer counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LegCounters {
    pub malformed: u64,
    pub unknown_payload_type: u64,
    pub foreign_source: u64,
    pub not_allowed: u64,
    pub ahead_dropped: u64,
    pub dtmf_events: u32,
}

/// One RTP leg: parse, jitter buffer, decode, DTMF.
pub struct RtpLeg {
    encoding: Encoding,
    rate_hz: u32,
    settings: RtpSettings,
    jitter: JitterBuffer,
    dtmf: DtmfTracker,
    /// Timestamp of the last telephone-event seen (one event, many packets).
    event_ts: Option<u32>,
    counters: LegCounters,
    playout: Vec<Playout>,
    /// Fills lost packets' time by pitch repetition.
    plc: Concealer,
}

impl RtpLeg {
    /// A leg carrying `encoding` at `rate_hz` (the RTP clock rate of the audio).
    pub fn new(encoding: Encoding, rate_hz: u32, settings: RtpSettings) -> Self {
        let mut cfg = JitterConfig::new(rate_hz);
        cfg.depth_ms = settings.jitter_ms;
        Self {
            encoding,
            rate_hz,
            settings,
            jitter: JitterBuffer::new(cfg),
            dtmf: DtmfTracker::default(),
            event_ts: None,
            counters: LegCounters::default(),
            playout: Vec::new(),
            plc: Concealer::new(rate_hz),
        }
    }

    /// Takes one datagram that arrived at `now_ms`; appends what is due.
    /// A packet that cannot be used is dropped and counted; the error says why.
    /// The datagram is moved into the jitter buffer, not copied.
    pub fn push_owned(
        &mut self,
        now_ms: u64,
        datagram: Vec<u8>,
        out: &mut Vec<LegOut>,
    ) -> Result<(), RtpError> {
        let r = self.accept(now_ms, datagram);
        self.pop(now_ms, out);
        r
    }

    /// As [`RtpLeg::push_owned`], for a caller that keeps its buffer: the datagram is
    /// copied once.
    pub fn push(
        &mut self,
        now_ms: u64,
        datagram: &[u8],
        out: &mut Vec<LegOut>,
    ) -> Result<(), RtpError> {
        self.push_owned(now_ms, datagram.to_vec(), out)
    }

    fn accept(&mut self, now_ms: u64, datagram: Vec<u8>) -> Result<(), RtpError> {
        let pkt = match OwnedPacket::parse(datagram) {
            Ok(p) => p,
            Err(e) => {
                self.counters.malformed += 1;
                return Err(e);
            }
        };
        let pt = pkt.payload_type;
        let samples = if pt == self.settings.dtmf_payload_type {
            if parse_event(&pkt.payload).is_err() {
                self.counters.malformed += 1;
                return Ok(());
            }
            0
        } else if let Some(enc) = self.audio_encoding(pt) {
            let n = pkt.payload.len() / enc.bytes_per_sample();
            if n == 0 {
                self.counters.malformed += 1;
                return Ok(());
            }
            n as u32
        } else {
            self.counters.unknown_payload_type += 1;
            return Ok(());
        };
        match self.jitter.push(now_ms, pkt, samples) {
            PushResult::Accepted | PushResult::Duplicate | PushResult::Late => Ok(()),
        }
    }

    /// How the audio of payload type `pt` is encoded on this leg, if it is
    /// audio this leg takes: its own type, and on a G.711 leg both G.711
    /// types (senders switch between them at the same rate).
    fn audio_encoding(&self, pt: u8) -> Option<Encoding> {
        match self.encoding {
            Encoding::Linear16 => (pt == self.settings.payload_type).then_some(Encoding::Linear16),
            Encoding::Mulaw | Encoding::Alaw => {
                if pt == self.settings.payload_type {
                    Some(self.encoding)
                } else if pt == PT_PCMU {
                    Some(Encoding::Mulaw)
                } else if pt == PT_PCMA {
                    Some(Encoding::Alaw)
                } else {
                    None
                }
            }
        }
    }

    /// Appends what is due at `now_ms` (call it on a timer when no packets come).
    pub fn tick(&mut self, now_ms: u64, out: &mut Vec<LegOut>) {
        self.pop(now_ms, out);
    }

    /// End of the leg: everything held is played out, a press in progress reported.
    pub fn flush(&mut self, out: &mut Vec<LegOut>) {
        let mut playout = std::mem::take(&mut self.playout);
        playout.clear();
        self.jitter.flush(&mut playout);
        self.convert(&playout, out);
        self.playout = playout;
        if let Some(d) = self.dtmf.flush() {
            self.counters.dtmf_events += 1;
            out.push(LegOut::Dtmf(d));
        }
    }

    /// When the next held packet becomes due, if any.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.jitter.next_due_ms()
    }

    /// Counts a datagram from an address other than the leg's sender.
    pub fn count_foreign(&mut self) {
        self.counters.foreign_source += 1;
    }

    /// Counts a datagram from an address outside the allowed networks.
    pub fn count_not_allowed(&mut self) {
        self.counters.not_allowed += 1;
    }

    /// Counts a datagram dropped for running too far ahead of the leg's wall clock.
    pub fn count_ahead_dropped(&mut self) {
        self.counters.ahead_dropped += 1;
    }

    /// The RTP clock rate of the audio, Hz.
    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    fn pop(&mut self, now_ms: u64, out: &mut Vec<LegOut>) {
        let mut playout = std::mem::take(&mut self.playout);
        playout.clear();
        self.jitter.pop(now_ms, &mut playout);
        self.convert(&playout, out);
        self.playout = playout;
    }

    fn convert(&mut self, playout: &[Playout], out: &mut Vec<LegOut>) {
        for p in playout {
            match p {
                Playout::Audio {
                    payload_type,
                    payload,
                    ..
                } => {
                    let enc = self.audio_encoding(*payload_type).unwrap_or(self.encoding);
                    let mut samples = Vec::with_capacity(payload.len() / enc.bytes_per_sample());
                    // L16 on RTP is big-endian (RFC 3551 §4.5.11).
                    codec::decode_into(enc, ByteOrder::Big, payload, &mut samples);
                    self.plc.audio(&mut samples);
                    out.push(LegOut::Samples(samples));
                }
                Playout::Gap { samples, lost } => {
                    let mut filled = Vec::with_capacity(*samples as usize);
                    if *lost {
                        self.plc.conceal(*samples as usize, &mut filled);
                    } else {
                        self.plc.silence(*samples as usize, &mut filled);
                    }
                    out.push(LegOut::Samples(filled));
                }
                Playout::Event {
                    timestamp, payload, ..
                } => {
                    let Ok(ev) = parse_event(payload) else {
                        continue;
                    };
                    if self.event_ts != Some(*timestamp) {
                        self.event_ts = Some(*timestamp);
                        out.push(LegOut::DtmfBegin {
                            timestamp: *timestamp,
                        });
                    }
                    if let Some(d) = self.dtmf.push(*timestamp, ev) {
                        self.counters.dtmf_events += 1;
                        out.push(LegOut::Dtmf(d));
                    }
                }
            }
        }
    }

    /// Statistics for the call summary.
    pub fn stats(&self, channel_id: u32, role: proto::Role, transport: &str) -> proto::LegStats {
        let j = self.jitter.stats();
        proto::LegStats {
            channel_id,
            role: role as i32,
            transport: transport.to_string(),
            packets_received: j.received
                + self.counters.malformed
                + self.counters.unknown_payload_type,
            packets_lost: j.lost,
            packets_late: j.late,
            packets_duplicate: j.duplicate,
            packets_malformed: self.counters.malformed,
            packets_unknown_payload_type: self.counters.unknown_payload_type,
            concealed_ms: (j.concealed_samples * 1000 / self.rate_hz.max(1) as u64)
                .min(u32::MAX as u64) as u32,
            dtmf_events: self.counters.dtmf_events,
            ssrc_changes: j.ssrc_changes.min(u32::MAX as u64) as u32,
            packets_foreign_source: self.counters.foreign_source,
            packets_not_allowed: self.counters.not_allowed,
            packets_ahead_dropped: self.counters.ahead_dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::codec::g711::ulaw_encode;
    use crate::core::rtp;

    fn samples(out: &[LegOut]) -> Vec<f32> {
        out.iter()
            .flat_map(|o| match o {
                LegOut::Samples(s) => s.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn pcmu_leg() -> RtpLeg {
        RtpLeg::new(
            Encoding::Mulaw,
            8000,
            RtpSettings::for_encoding(Encoding::Mulaw),
        )
    }

    #[test]
    fn settings_from_the_wire() {
        let s = RtpSettings::from_wire(Encoding::Mulaw, 0, 0, 0).unwrap();
        assert_eq!(
            (s.payload_type, s.dtmf_payload_type, s.jitter_ms),
            (0, 101, 80)
        );
        let s = RtpSettings::from_wire(Encoding::Linear16, 0, 0, 0).unwrap();
        assert_eq!(s.payload_type, 96);
        assert!(RtpSettings::from_wire(Encoding::Linear16, 11, 0, 0).is_err());
        assert!(RtpSettings::from_wire(Encoding::Mulaw, 0, 8, 0).is_err());
        assert!(RtpSettings::from_wire(Encoding::Linear16, 101, 0, 0).is_err());
        assert!(RtpSettings::from_wire(Encoding::Mulaw, 0, 0, 5000).is_err());
        assert_eq!(
            RtpSettings::from_wire(Encoding::Mulaw, 0, 0, 200)
                .unwrap()
                .jitter_ms,
            200
        );
    }

    #[test]
    fn pcmu_packets_decode_in_order_and_losses_are_concealed() {
        let mut leg = pcmu_leg();
        let mut out = Vec::new();
        let code = ulaw_encode(8000);
        for seq in 0u16..10 {
            if seq == 4 {
                continue; // lost
            }
            let pkt = rtp::build(false, 0, seq, seq as u32 * 160, 7, &[code; 160]);
            leg.push(seq as u64 * 20, &pkt, &mut out).unwrap();
        }
        leg.flush(&mut out);
        let s = samples(&out);
        assert_eq!(s.len(), 10 * 160, "audio time stays true");
        // The lost packet's 20 ms repeat the signal before it (full level for 10 ms,
        // then fading), not silence.
        assert!(s[..720].iter().all(|&x| (x - 0.244).abs() < 0.01));
        assert!(s[720..800].iter().all(|&x| x > 0.0 && x <= 0.25));
        let st = leg.stats(0, proto::Role::Caller, "rtp-udp");
        assert_eq!((st.packets_received, st.packets_lost), (9, 1));
        assert_eq!(st.concealed_ms, 20);
    }

    #[test]
    fn a_sender_that_changes_ssrc_on_every_packet_keeps_its_audio() {
        let mut leg = pcmu_leg();
        let mut out = Vec::new();
        let code = ulaw_encode(8000);
        for k in 0u16..100 {
            let pkt = rtp::build(
                false,
                0,
                k,
                u32::from(k) * 160,
                0x5000 + u32::from(k),
                &[code; 160],
            );
            leg.push(u64::from(k) * 20, &pkt, &mut out).unwrap();
        }
        leg.flush(&mut out);
        let s = samples(&out);
        assert_eq!(s.len(), 100 * 160, "2 s in, 2 s out");
        assert!(
            s.iter().all(|&x| (x - 0.244).abs() < 0.01),
            "all of it audio"
        );
        let st = leg.stats(0, proto::Role::Caller, "rtp-udp");
        assert_eq!((st.ssrc_changes, st.packets_lost), (99, 0));
    }

    #[test]
    fn the_audio_of_a_datagram_is_its_payload_unless_it_is_an_event() {
        let s = RtpSettings::for_encoding(Encoding::Mulaw);
        assert_eq!(
            s.audio_bytes(&rtp::build(false, 0, 1, 0, 7, &[0xff; 160])),
            160
        );
        assert_eq!(
            s.audio_bytes(&rtp::build(false, 101, 1, 0, 7, &[5, 10, 0, 160])),
            0
        );
        assert_eq!(s.audio_bytes(b"not rtp"), 0);
    }

    #[test]
    fn garbage_and_foreign_payload_types_are_counted_not_played() {
        let mut leg = pcmu_leg();
        let mut out = Vec::new();
        assert!(leg.push(0, b"hello", &mut out).is_err());
        let video = rtp::build(false, 34, 0, 0, 7, &[1; 100]);
        leg.push(0, &video, &mut out).unwrap();
        let empty = rtp::build(false, 0, 1, 0, 7, &[]);
        let _ = leg.push(0, &empty, &mut out);
        leg.flush(&mut out);
        assert!(samples(&out).is_empty());
        let st = leg.stats(0, proto::Role::Caller, "rtp-udp");
        assert_eq!(st.packets_unknown_payload_type, 1);
        assert_eq!(st.packets_malformed, 2);
        assert_eq!(st.packets_received, 3);
    }

    #[test]
    fn l16_is_big_endian() {
        let settings = RtpSettings::for_encoding(Encoding::Linear16);
        let mut leg = RtpLeg::new(Encoding::Linear16, 16000, settings);
        let mut out = Vec::new();
        let pkt = rtp::build(false, 96, 0, 0, 1, &[0x40, 0x00, 0xC0, 0x00]);
        leg.push(0, &pkt, &mut out).unwrap();
        leg.flush(&mut out);
        assert_eq!(samples(&out), vec![0.5, -0.5]);
    }

    #[test]
    fn a_key_press_is_reported_once_with_its_place_in_the_audio() {
        let mut leg = pcmu_leg();
        let mut out = Vec::new();
        let code = ulaw_encode(0);
        let mut seq = 0u16;
        let mut send =
            |leg: &mut RtpLeg, out: &mut Vec<LegOut>, pt: u8, ts: u32, payload: &[u8]| {
                let pkt = rtp::build(false, pt, seq, ts, 9, payload);
                leg.push(seq as u64 * 20, &pkt, out).unwrap();
                seq += 1;
            };
        send(&mut leg, &mut out, 0, 0, &[code; 160]);
        // '5' pressed at ts 160: three updates, then the end bit three times.
        for d in [160u16, 320, 480] {
            let [hi, lo] = d.to_be_bytes();
            send(&mut leg, &mut out, 101, 160, &[5, 10, hi, lo]);
        }
        for _ in 0..3 {
            send(&mut leg, &mut out, 101, 160, &[5, 0x80 | 10, 0x02, 0x80]);
        }
        send(&mut leg, &mut out, 0, 800, &[code; 160]);
        leg.flush(&mut out);
        let presses: Vec<&Dtmf> = out
            .iter()
            .filter_map(|o| match o {
                LegOut::Dtmf(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(presses.len(), 1);
        assert_eq!(presses[0].digit, '5');
        assert_eq!(presses[0].duration, 640);
        let begin = out
            .iter()
            .position(|o| matches!(o, LegOut::DtmfBegin { timestamp: 160 }))
            .expect("begin marker");
        assert_eq!(
            samples(&out[..begin]).len(),
            160,
            "begins after the first packet"
        );
        assert_eq!(
            samples(&out).len(),
            960,
            "DTMF time is silence in the timeline"
        );
        assert_eq!(leg.stats(0, proto::Role::Caller, "x").dtmf_events, 1);
    }
}
