//! A per-leg jitter buffer, told the time: packets in as they arrive, in order out, with the
//! audio timeline kept true.
//!
//! # How it works
//!
//! - **Extended numbers.** Sequence numbers and timestamps are extended to 64 bits against
//!   the newest packet seen (RFC 3550 Appendix A.1), so 16-bit sequence and 32-bit
//!   timestamp wrap-around need no special case.
//! - **One timeline.** Every packet gets a timeline position, in clock units:
//!   its extended timestamp plus the offset of its stream. The output is that timeline
//!   played in order: each [`Playout::Audio`] is preceded by a [`Playout::Gap`] when its
//!   position is past the end of the audio before it, so the samples of Audio + Gap add up
//!   to the timeline and audio time stays true. A gap is `lost` (concealment) when sequence
//!   numbers were skipped since the last audio, else the sender's own silence
//!   (discontinuous transmission after a talkspurt, or the time a DTMF event took).
//! - **Fixed playout delay.** The schedule is anchored on a packet: position `P` is due at
//!   `anchor_ms + depth_ms + (P - anchor_pos) / clock_rate`. A packet is never held more
//!   than `depth_ms` past its own arrival: a packet early for the schedule (a sender whose
//!   clock runs fast, or an anchor taken from a delayed packet) is due `depth_ms` after it
//!   arrived, so the delay shrinks back to the depth instead of growing. `pop(now)` releases
//!   packets in sequence order while the first held one is due; sequence numbers missing
//!   before it are then given up for lost (`stats.lost`) and play goes on.
//! - **Slewing.** The anchor then follows the quickest transit in 1 ms steps: earlier
//!   when the newest packet comes early for the schedule, later when it comes more than
//!   half the depth late, so clock drift over a long call with no talkspurts (a continuous
//!   stream) does not eat the depth.
//! - **Re-anchoring.** At a talkspurt start (marker bit) or a new stream, if nothing is held,
//!   the schedule is re-anchored on that packet, as adaptive playout does at talkspurt
//!   starts: drift between the sender's clock and ours is absorbed in silence, and the
//!   audio timeline is untouched (the timestamp jump still becomes a silence gap).
//! - **Streams.** A new SSRC, or a timestamp jump the sender cannot mean (forward more than
//!   `max_gap_ms`, or backward at all, for a newer audio packet), starts a new stream
//!   (`ssrc_changes` or `resyncs`): it continues the timeline where the audio received so far
//!   ends, plus the arrival time elapsed since the schedule expected that, at most
//!   `max_gap_ms`, so no gap is ever gigantic. Stragglers of the previous stream arriving
//!   within `depth_ms` of a switch still go to their own stream.
//! - **A new SSRC is taken at once.** By RFC 3550 a new SSRC is a new source, and real
//!   SBCs and PBXs switch SSRC mid-call (re-INVITE, transfer, a media server bridged in),
//!   so a packet of an SSRC that is neither the current stream's nor a straggler of the
//!   previous one re-anchors the sequence and timestamp tracking on itself and is played
//!   on: its payload is never dropped for being from a new source. A sender whose SSRC
//!   changes on every packet thus plays every packet, in arrival order (each is a stream of
//!   its own), and counts one `ssrc_changes` per packet. Who may send on a leg is the
//!   shell's to decide (it latches onto one sender address), not the SSRC's.
//! - **Probation within an SSRC.** A sequence number far from the stream's (RFC 3550's
//!   `MAX_DROPOUT` ahead or `MAX_MISORDER` behind) is held aside until the next sequence
//!   number confirms it, so one stray old packet cannot throw the leg's timeline
//!   (`stats.stray` counts those never confirmed).
//! - **Duplicates and late packets.** A sequence number already held, or played within the
//!   last 1024, is a duplicate; one behind the play position and not played is late. Both
//!   are dropped and counted.
//! - **Bounded.** At most `max_packets` are held. `push` cannot emit, so beyond that the
//!   oldest held packet is dropped (`stats.overflow`) and later concealed as lost.
//! - **No copies.** A packet is pushed as an [`OwnedPacket`] (its datagram, parsed in
//!   place), held, and played out with the same datagram in its [`Payload`]: the buffer
//!   moves packets, it never copies a payload.
//!
//! Overlapping audio (a packet whose position is before the end of the audio already played,
//! which only a broken sender produces) is played whole and counted in
//! `stats.overlap_samples`, since cutting into a codec frame would corrupt it: audio time
//! then runs ahead of the timeline by that much.
//!
//! Non-audio packets (`samples == 0` at push, e.g. telephone-events) are played in sequence
//! order as [`Playout::Event`] and do not move the audio timeline.

use std::collections::VecDeque;

use super::{OwnedPacket, Payload};

/// Default playout delay, ms.
pub const DEFAULT_DEPTH_MS: u32 = 80;
/// Default longest timestamp jump filled with silence, ms.
pub const DEFAULT_MAX_GAP_MS: u32 = 60_000;
/// Default most packets held.
pub const DEFAULT_MAX_PACKETS: usize = 500;

/// A sequence number this far ahead of the newest is a new sequence, not loss (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A sequence number this far behind the newest is a new sequence, not reordering.
const MAX_MISORDER: u16 = 100;
/// Sequence numbers remembered as played, to tell duplicates from late packets.
const PLAYED_WINDOW: i64 = 1024;

/// Jitter buffer settings for one call leg.
#[derive(Clone, Debug, PartialEq)]
pub struct JitterConfig {
    /// Playout delay, ms: packets up to this late are reordered. Default 80 (DEFAULT_DEPTH_MS).
    pub depth_ms: u32,
    /// RTP clock rate, Hz (8000 for G.711). 0 is taken as 1.
    pub clock_rate: u32,
    /// Longest timestamp jump filled with silence, ms; a bigger jump (a sender that reset its
    /// clock) resyncs instead. Default 60_000.
    pub max_gap_ms: u32,
    /// Most packets held; beyond that the oldest is dropped. Default 500. 0 is taken as 1.
    pub max_packets: usize,
}

impl JitterConfig {
    /// Defaults for an RTP clock of `clock_rate` Hz.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            depth_ms: DEFAULT_DEPTH_MS,
            clock_rate,
            max_gap_ms: DEFAULT_MAX_GAP_MS,
            max_packets: DEFAULT_MAX_PACKETS,
        }
    }
}

/// What the buffer plays out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Playout {
    /// An audio packet's payload, in order. `samples` is what the caller said it holds.
    Audio {
        /// RTP payload type.
        payload_type: u8,
        /// The payload, padding removed, in place in the datagram pushed.
        payload: Payload,
        /// Clock units the payload holds, as given to `push`.
        samples: u32,
    },
    /// Samples (clock units) with no audio: `lost` true for concealment of lost packets,
    /// false for a sender's silence (timestamp jump with no sequence gap, e.g. after a
    /// talkspurt marker, or DTMF time).
    Gap {
        /// Length, clock units.
        samples: u32,
        /// Whether packets were lost here (else the sender sent nothing).
        lost: bool,
    },
    /// A non-audio packet (samples == 0 at push, e.g. telephone-event), in order, with its
    /// RTP timestamp.
    Event {
        /// RTP payload type.
        payload_type: u8,
        /// The packet's RTP timestamp (for a telephone-event, the event's start).
        timestamp: u32,
        /// The payload, padding removed, in place in the datagram pushed.
        payload: Payload,
    },
}

/// Counters of one leg's buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Packets pushed (all of them, whatever became of them).
    pub received: u64,
    /// Sequence numbers given up for lost at playout (including overflow drops).
    pub lost: u64,
    /// Packets dropped for arriving after their place was played (or given up), or
    /// after their stream was left; and inconsistent ones (see `stray`).
    pub late: u64,
    /// Packets dropped as copies of one held or played.
    pub duplicate: u64,
    /// Samples (clock units) of `Gap { lost: true }`.
    pub concealed_samples: u64,
    /// Packets that switched the leg to a new SSRC (each starts a stream; none is dropped
    /// for it).
    pub ssrc_changes: u64,
    /// New streams within one SSRC (timestamp or sequence jump).
    pub resyncs: u64,
    /// Packets played out (Audio and Event).
    pub played: u64,
    /// Samples (clock units) of `Gap { lost: false }`.
    pub silence_samples: u64,
    /// Samples (clock units) of audio played over audio already played (broken senders).
    pub overlap_samples: u64,
    /// Held packets dropped because `max_packets` were held.
    pub overflow: u64,
    /// Packets dropped as not fitting the stream: held aside (new SSRC or far sequence
    /// number) and never confirmed, or an older audio packet whose timestamp contradicts
    /// the stream's. Those of the second kind are also reported `Late` by `push`.
    pub stray: u64,
}

/// What became of a pushed packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushResult {
    /// Held for playout (or, for a packet starting a possible new stream, held aside until
    /// the next packet confirms it).
    Accepted,
    /// A copy of a packet held or played: dropped.
    Duplicate,
    /// Too late to play, or not fitting its stream: dropped.
    Late,
}

/// One sender's run of packets: an SSRC, until it jumps.
#[derive(Clone, Copy, Debug)]
struct Stream {
    ssrc: u32,
    /// Orders streams in the buffer: all of one are played before the next.
    epoch: u64,
    /// Extended sequence number the stream was started with.
    first_seq: i64,
    /// Newest extended sequence number seen.
    max_seq: i64,
    /// Newest audio packet's extended sequence number and timestamp: the reference for
    /// extending timestamps and checking them.
    ref_seq: i64,
    ref_ts: i64,
    /// Timeline position minus extended timestamp.
    offset: i64,
}

/// A packet waiting to be played.
#[derive(Clone, Debug)]
struct Held {
    epoch: u64,
    seq: i64,
    /// Timeline position, clock units.
    pos: i64,
    due_ms: u64,
    samples: u32,
    payload_type: u8,
    timestamp: u32,
    payload: Payload,
}

/// A packet held aside until the next sequence number confirms it.
#[derive(Clone, Debug)]
struct Pending {
    now_ms: u64,
    inc: Incoming,
}

/// A pushed packet as admission needs it; its payload moves on into [`Held`].
#[derive(Clone, Debug)]
struct Incoming {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    marker: bool,
    payload_type: u8,
    payload: Payload,
    samples: u32,
}

/// Which stream a packet belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Current,
    Previous,
}

/// The schedule: timeline position `pos` is due `depth_ms` after `ms`.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    ms: u64,
    pos: i64,
}

/// Extends `seq` to 64 bits against `reference` (the nearest value with those low 16 bits).
fn extend_seq(reference: i64, seq: u16) -> i64 {
    reference + i64::from(seq.wrapping_sub(reference as u16) as i16)
}

/// Extends `ts` to 64 bits against `reference` (the nearest value with those low 32 bits).
fn extend_ts(reference: i64, ts: u32) -> i64 {
    reference + i64::from(ts.wrapping_sub(reference as u32) as i32)
}

/// Whether `seq` is close enough to the newest `max_seq` to be the same sequence.
fn seq_near(max_seq: i64, seq: u16) -> bool {
    let ahead = seq.wrapping_sub(max_seq as u16);
    !(MAX_DROPOUT..=u16::MAX - MAX_MISORDER).contains(&ahead)
}

/// A per-leg jitter buffer: see the module documentation.
#[derive(Clone, Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// Clock rate, Hz, at least 1.
    clock: i128,
    /// `max_gap_ms` in clock units.
    max_gap: i64,
    max_packets: usize,
    /// Ordered by (epoch, seq).
    held: VecDeque<Held>,
    current: Option<Stream>,
    previous: Option<Stream>,
    /// Until when (ms) packets of the previous stream are still its own.
    previous_until_ms: u64,
    pending: Option<Pending>,
    next_epoch: u64,
    anchor: Option<Anchor>,
    /// End of the newest audio received, timeline position.
    received_end: i64,
    /// Play position: the epoch being played and the next sequence number expected in it.
    cursor: Option<(u64, i64)>,
    /// Which of the last `PLAYED_WINDOW` sequence numbers before the cursor were played.
    played: [u64; (PLAYED_WINDOW / 64) as usize],
    /// Sequence numbers were skipped since the last audio played.
    skipped: bool,
    /// End of the audio played so far, timeline position.
    played_end: Option<i64>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(cfg: JitterConfig) -> Self {
        let clock = cfg.clock_rate.max(1);
        let max_gap = (u64::from(cfg.max_gap_ms) * u64::from(clock) / 1000).min(i32::MAX as u64);
        Self {
            clock: i128::from(clock),
            max_gap: max_gap as i64,
            max_packets: cfg.max_packets.max(1),
            cfg,
            held: VecDeque::new(),
            current: None,
            previous: None,
            previous_until_ms: 0,
            pending: None,
            next_epoch: 0,
            anchor: None,
            received_end: 0,
            cursor: None,
            played: [0; (PLAYED_WINDOW / 64) as usize],
            skipped: false,
            played_end: None,
            stats: JitterStats::default(),
        }
    }

    /// The settings this buffer was made with.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// `now_ms`: the shell's monotonic clock at arrival. `samples`: audio samples (clock
    /// units) the payload holds; 0 for non-audio packets (telephone-events), which do not
    /// advance the audio timeline. The packet is moved in, and its datagram out again in
    /// [`Playout`]: the payload is never copied.
    pub fn push(&mut self, now_ms: u64, pkt: OwnedPacket, samples: u32) -> PushResult {
        self.stats.received += 1;
        let inc = Incoming {
            ssrc: pkt.ssrc,
            seq: pkt.sequence,
            timestamp: pkt.timestamp,
            marker: pkt.marker,
            payload_type: pkt.payload_type,
            payload: pkt.payload,
            samples,
        };
        let Some(cur) = self.current else {
            self.start_stream(now_ms, inc.ssrc, i64::from(inc.seq), inc.timestamp);
            return self.admit(now_ms, inc, Slot::Current);
        };
        let near = |s: &Stream| s.ssrc == inc.ssrc && seq_near(s.max_seq, inc.seq);
        let near_previous = self
            .previous
            .is_some_and(|p| near(&p) && now_ms <= self.previous_until_ms);
        if near(&cur) && (extend_seq(cur.max_seq, inc.seq) >= cur.first_seq || !near_previous) {
            self.admit(now_ms, inc, Slot::Current)
        } else if near_previous {
            self.admit(now_ms, inc, Slot::Previous)
        } else if inc.ssrc != cur.ssrc {
            // A new source: tracking re-anchors on it and its audio plays on. A packet of
            // the old source held aside can no longer be confirmed.
            if self.pending.take().is_some() {
                self.stats.stray += 1;
            }
            self.stats.ssrc_changes += 1;
            self.start_stream(now_ms, inc.ssrc, i64::from(inc.seq), inc.timestamp);
            self.admit(now_ms, inc, Slot::Current)
        } else {
            self.hold_aside(now_ms, inc)
        }
    }

    /// Appends everything due at `now_ms` (in sequence order), with gaps (silence /
    /// concealment) so that the total samples of Audio+Gap equal the RTP timeline: audio
    /// time stays true.
    pub fn pop(&mut self, now_ms: u64, out: &mut Vec<Playout>) {
        while self.held.front().is_some_and(|h| h.due_ms <= now_ms) {
            if let Some(h) = self.held.pop_front() {
                self.play(h, out);
            }
        }
    }

    /// End of the leg: plays out everything still held. A packet held aside for
    /// confirmation is dropped (`stats.stray`).
    pub fn flush(&mut self, out: &mut Vec<Playout>) {
        while let Some(h) = self.held.pop_front() {
            self.play(h, out);
        }
        if self.pending.take().is_some() {
            self.stats.stray += 1;
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Packets held now (not counting one held aside for confirmation).
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no packet is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// When the next held packet becomes due (ms on the same clock), so the shell knows
    /// when to call pop again; None when empty.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.held.front().map(|h| h.due_ms)
    }

    /// A packet of the current SSRC whose sequence number fits no stream we know: held
    /// aside until the next sequence number confirms it (RFC 3550 A.1's probation, one
    /// packet long), then both start a new stream.
    fn hold_aside(&mut self, now_ms: u64, inc: Incoming) -> PushResult {
        if let Some(p) = self.pending.take() {
            let held = &p.inc;
            if held.ssrc == inc.ssrc {
                if held.seq == inc.seq {
                    self.pending = Some(p);
                    self.stats.duplicate += 1;
                    return PushResult::Duplicate;
                }
                if inc.seq == held.seq.wrapping_add(1) || held.seq == inc.seq.wrapping_add(1) {
                    self.stats.resyncs += 1;
                    self.start_stream(p.now_ms, held.ssrc, i64::from(held.seq), held.timestamp);
                    self.admit(p.now_ms, p.inc, Slot::Current);
                    return self.admit(now_ms, inc, Slot::Current);
                }
            }
            self.stats.stray += 1;
        }
        self.pending = Some(Pending { now_ms, inc });
        PushResult::Accepted
    }

    /// Starts a stream whose first packet (arrived at `now_ms`) has `seq` and `ts`.
    fn start_stream(&mut self, now_ms: u64, ssrc: u32, seq: i64, ts: u32) {
        let pos = match (self.current, self.anchor) {
            (Some(_), Some(a)) => {
                // Where the schedule says a packet arriving now belongs, but never before
                // the audio already received (no overlap) nor more than max_gap after it.
                let end = i128::from(self.received_end);
                let elapsed = i128::from(now_ms) - i128::from(a.ms);
                let on_time = i128::from(a.pos) + elapsed * self.clock / 1000;
                on_time.clamp(end, end + i128::from(self.max_gap)) as i64
            }
            _ => self.received_end,
        };
        let ts = i64::from(ts);
        let stream = Stream {
            ssrc,
            epoch: self.next_epoch,
            first_seq: seq,
            max_seq: seq,
            ref_seq: seq,
            ref_ts: ts,
            offset: pos - ts,
        };
        self.next_epoch += 1;
        self.previous = self.current.replace(stream);
        self.previous_until_ms = now_ms.saturating_add(u64::from(self.cfg.depth_ms));
        if self.held.is_empty() {
            self.anchor = Some(Anchor { ms: now_ms, pos });
        }
    }

    /// Places a packet of a known stream in the buffer, or says why not.
    fn admit(&mut self, now_ms: u64, inc: Incoming, slot: Slot) -> PushResult {
        let stream = match slot {
            Slot::Current => self.current,
            Slot::Previous => self.previous,
        };
        let Some(mut s) = stream else {
            self.stats.late += 1;
            return PushResult::Late;
        };
        let seq = extend_seq(s.max_seq, inc.seq);
        let ts = extend_ts(s.ref_ts, inc.timestamp);
        let audio = inc.samples > 0;
        if audio && seq != s.ref_seq {
            // Audio timestamps rise with sequence numbers; a newer packet may jump ahead by
            // silence (up to max_gap), an older one lies at most max_gap behind.
            let d = ts - s.ref_ts;
            let newer = seq > s.ref_seq;
            let fits = if newer {
                (0..=self.max_gap).contains(&d)
            } else {
                (-self.max_gap..=0).contains(&d)
            };
            if !fits {
                if newer && slot == Slot::Current {
                    self.stats.resyncs += 1;
                    self.start_stream(now_ms, inc.ssrc, seq, inc.timestamp);
                    return self.admit(now_ms, inc, Slot::Current);
                }
                self.stats.stray += 1;
                self.stats.late += 1;
                return PushResult::Late;
            }
        }
        if let Some((epoch, next)) = self.cursor {
            if s.epoch < epoch || (s.epoch == epoch && seq < next) {
                if s.epoch == epoch && self.was_played(seq, next) {
                    self.stats.duplicate += 1;
                    return PushResult::Duplicate;
                }
                self.stats.late += 1;
                return PushResult::Late;
            }
        }
        let key = (s.epoch, seq);
        let at = self.held.partition_point(|h| (h.epoch, h.seq) < key);
        if self.held.get(at).is_some_and(|h| (h.epoch, h.seq) == key) {
            self.stats.duplicate += 1;
            return PushResult::Duplicate;
        }

        let newest = seq > s.max_seq;
        s.max_seq = s.max_seq.max(seq);
        if audio && seq > s.ref_seq {
            s.ref_seq = seq;
            s.ref_ts = ts;
        }
        match slot {
            Slot::Current => self.current = Some(s),
            Slot::Previous => self.previous = Some(s),
        }
        let pos = ts + s.offset;
        if audio {
            self.received_end = self.received_end.max(pos + i64::from(inc.samples));
            if inc.marker && self.held.is_empty() {
                self.anchor = Some(Anchor { ms: now_ms, pos });
            }
        }
        let due_ms = self.due_ms(now_ms, pos);
        if audio && newest {
            self.slew(now_ms, pos);
        }
        self.held.insert(
            at,
            Held {
                epoch: s.epoch,
                seq,
                pos,
                due_ms,
                samples: inc.samples,
                payload_type: inc.payload_type,
                timestamp: inc.timestamp,
                payload: inc.payload,
            },
        );
        if self.held.len() > self.max_packets {
            self.held.pop_front();
            self.stats.overflow += 1;
        }
        PushResult::Accepted
    }

    /// When a packet at timeline position `pos`, arrived at `now_ms`, is due.
    fn due_ms(&self, now_ms: u64, pos: i64) -> u64 {
        let depth = i128::from(self.cfg.depth_ms);
        let latest = i128::from(now_ms) + depth;
        let scheduled = self.anchor.map_or(latest, |a| {
            i128::from(a.ms) + depth + (i128::from(pos) - i128::from(a.pos)) * 1000 / self.clock
        });
        scheduled.min(latest).clamp(0, i128::from(u64::MAX)) as u64
    }

    /// Keeps the schedule on the quickest transit seen, given the newest packet, at
    /// `pos`, arrived at `now_ms`: 1 ms earlier when it came early for the schedule, 1 ms
    /// later when it came more than half the depth late. Without the second, a sender whose
    /// clock runs slower than ours (±100 ppm is common) would eat the whole depth within
    /// 15 minutes of continuous audio, and reordering would turn into loss; steps of 1 ms
    /// keep one delay spike from moving the schedule much.
    fn slew(&mut self, now_ms: u64, pos: i64) {
        let depth = i128::from(self.cfg.depth_ms);
        let Some(a) = &mut self.anchor else {
            return;
        };
        let scheduled =
            i128::from(a.ms) + depth + (i128::from(pos) - i128::from(a.pos)) * 1000 / self.clock;
        let lateness = i128::from(now_ms) + depth - scheduled;
        if lateness < 0 {
            a.ms = a.ms.saturating_sub(1);
        } else if lateness > depth / 2 {
            a.ms = a.ms.saturating_add(1);
        }
    }

    /// Whether `seq` (behind the cursor's `next`, same epoch) was played.
    fn was_played(&self, seq: i64, next: i64) -> bool {
        if next - seq > PLAYED_WINDOW {
            return false;
        }
        let bit = seq.rem_euclid(PLAYED_WINDOW) as usize;
        self.played[bit / 64] & (1 << (bit % 64)) != 0
    }

    fn mark_played(&mut self, seq: i64, played: bool) {
        let bit = seq.rem_euclid(PLAYED_WINDOW) as usize;
        if played {
            self.played[bit / 64] |= 1 << (bit % 64);
        } else {
            self.played[bit / 64] &= !(1 << (bit % 64));
        }
    }

    /// Plays the held packet `h` (the first held) into `out`.
    fn play(&mut self, h: Held, out: &mut Vec<Playout>) {
        match self.cursor {
            Some((epoch, next)) if epoch == h.epoch => {
                if h.seq > next {
                    let missing = h.seq - next;
                    self.stats.lost += missing as u64;
                    self.skipped = true;
                    if missing >= PLAYED_WINDOW {
                        self.played = [0; (PLAYED_WINDOW / 64) as usize];
                    } else {
                        for s in next..h.seq {
                            self.mark_played(s, false);
                        }
                    }
                }
            }
            _ => {
                // A new stream: what was missing at the end of the old one is unknowable,
                // and the gap to the new one is the sender's.
                self.played = [0; (PLAYED_WINDOW / 64) as usize];
                self.skipped = false;
            }
        }
        self.cursor = Some((h.epoch, h.seq + 1));
        self.mark_played(h.seq, true);
        self.stats.played += 1;
        if h.samples == 0 {
            out.push(Playout::Event {
                payload_type: h.payload_type,
                timestamp: h.timestamp,
                payload: h.payload,
            });
            return;
        }
        let end = h.pos + i64::from(h.samples);
        if let Some(played_end) = self.played_end {
            if h.pos > played_end {
                self.gap(h.pos - played_end, out);
            } else if h.pos < played_end {
                self.stats.overlap_samples += (played_end - h.pos).min(i64::from(h.samples)) as u64;
            }
        }
        self.played_end = Some(self.played_end.map_or(end, |e| e.max(end)));
        self.skipped = false;
        out.push(Playout::Audio {
            payload_type: h.payload_type,
            payload: h.payload,
            samples: h.samples,
        });
    }

    /// Emits `samples` of gap, lost if sequence numbers were skipped.
    fn gap(&mut self, samples: i64, out: &mut Vec<Playout>) {
        let lost = self.skipped;
        let mut left = samples.max(0) as u64;
        if lost {
            self.stats.concealed_samples += left;
        } else {
            self.stats.silence_samples += left;
        }
        while left > 0 {
            let n = left.min(u64::from(u32::MAX)) as u32;
            out.push(Playout::Gap { samples: n, lost });
            left -= u64::from(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::SplitMix64;
    use crate::core::rtp::build;
    use crate::core::rtp::dtmf::{parse_event, DtmfTracker};

    const SSRC: u32 = 0x1234_5678;
    /// 20 ms of G.711 at 8000 Hz.
    const FRAME: u32 = 160;

    /// 160 bytes that say which packet they are.
    fn payload(k: u32) -> Payload {
        Payload::from(k.to_be_bytes().repeat(40))
    }

    fn push(jb: &mut JitterBuffer, now: u64, ssrc: u32, seq: u16, ts: u32, k: u32) -> PushResult {
        push_with(jb, now, ssrc, seq, ts, false, &payload(k), FRAME)
    }

    #[allow(clippy::too_many_arguments)]
    fn push_with(
        jb: &mut JitterBuffer,
        now: u64,
        ssrc: u32,
        seq: u16,
        ts: u32,
        marker: bool,
        data: &[u8],
        samples: u32,
    ) -> PushResult {
        let bytes = build(
            marker,
            if samples > 0 { 0 } else { 101 },
            seq,
            ts,
            ssrc,
            data,
        );
        jb.push(now, OwnedPacket::parse(bytes).unwrap(), samples)
    }

    /// Which packets the Audio out are, checking each payload byte for byte.
    fn audio(out: &[Playout]) -> Vec<u32> {
        out.iter()
            .filter_map(|p| match p {
                Playout::Audio { payload, .. } => {
                    let k = u32::from_be_bytes(payload[..4].try_into().unwrap());
                    assert_eq!(*payload, self::payload(k));
                    Some(k)
                }
                _ => None,
            })
            .collect()
    }

    /// (audio samples, concealed gap samples, silent gap samples).
    fn totals(out: &[Playout]) -> (u64, u64, u64) {
        let mut t = (0, 0, 0);
        for p in out {
            match *p {
                Playout::Audio { samples, .. } => t.0 += u64::from(samples),
                Playout::Gap {
                    samples,
                    lost: true,
                } => t.1 += u64::from(samples),
                Playout::Gap {
                    samples,
                    lost: false,
                } => t.2 += u64::from(samples),
                Playout::Event { .. } => {}
            }
        }
        t
    }

    /// Pushes packets k in `order` of `n`, each at `arrival(k)`, popping at every arrival;
    /// then flushes.
    fn run(
        jb: &mut JitterBuffer,
        n: u32,
        arrival: impl Fn(u32) -> u64,
        ts0: u32,
        seq0: u16,
    ) -> Vec<Playout> {
        let mut order: Vec<u32> = (0..n).collect();
        order.sort_by_key(|&k| (arrival(k), k));
        let mut out = Vec::new();
        for k in order {
            let now = arrival(k);
            jb.pop(now, &mut out);
            push(
                jb,
                now,
                SSRC,
                seq0.wrapping_add(k as u16),
                ts0.wrapping_add(k * FRAME),
                k,
            );
            jb.pop(now, &mut out);
        }
        jb.flush(&mut out);
        out
    }

    fn wanted(ks: impl IntoIterator<Item = u32>) -> Vec<u32> {
        ks.into_iter().collect()
    }

    #[test]
    fn in_order_plays_byte_exact_without_gaps() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let out = run(&mut jb, 50, |k| u64::from(k) * 20, 1000, 7);
        assert_eq!(
            out,
            wanted(0..50)
                .into_iter()
                .map(|k| Playout::Audio {
                    payload_type: 0,
                    payload: payload(k),
                    samples: FRAME
                })
                .collect::<Vec<_>>()
        );
        let s = jb.stats();
        assert_eq!(
            (s.received, s.played, s.lost, s.late, s.duplicate),
            (50, 50, 0, 0, 0)
        );
    }

    #[test]
    fn reordered_within_depth_plays_in_order() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        // Every third packet 35 ms late: it arrives after its successor.
        let out = run(
            &mut jb,
            30,
            |k| u64::from(k) * 20 + if k % 3 == 1 { 35 } else { 0 },
            0,
            0,
        );
        assert_eq!(audio(&out), wanted(0..30));
        assert_eq!(totals(&out), (30 * 160, 0, 0));
        assert_eq!(jb.stats().late, 0);
    }

    #[test]
    fn lost_packet_is_concealed_by_exactly_its_samples() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        for k in (0..10u32).filter(|&k| k != 5) {
            let now = u64::from(k) * 20;
            jb.pop(now, &mut out);
            push(&mut jb, now, SSRC, k as u16, k * FRAME, k);
        }
        jb.flush(&mut out);
        assert_eq!(out.len(), 10);
        assert_eq!(
            out[5],
            Playout::Gap {
                samples: 160,
                lost: true
            }
        );
        assert_eq!(audio(&out), wanted((0..10).filter(|&k| k != 5)));
        let s = jb.stats();
        assert_eq!(
            (s.lost, s.concealed_samples, s.silence_samples),
            (1, 160, 0)
        );
    }

    #[test]
    fn duplicates_are_counted_and_dropped() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        for k in 0..6u32 {
            let now = u64::from(k) * 20;
            jb.pop(now, &mut out);
            assert_eq!(
                push(&mut jb, now, SSRC, k as u16, k * FRAME, k),
                PushResult::Accepted
            );
            if k == 2 {
                // A copy while the original is still held.
                assert_eq!(
                    push(&mut jb, now, SSRC, 2, 2 * FRAME, 2),
                    PushResult::Duplicate
                );
            }
        }
        jb.pop(100, &mut out);
        assert!(!out.is_empty());
        // A copy of packet 0, long played.
        assert_eq!(push(&mut jb, 100, SSRC, 0, 0, 0), PushResult::Duplicate);
        jb.flush(&mut out);
        assert_eq!(audio(&out), wanted(0..6));
        assert_eq!(jb.stats().duplicate, 2);
    }

    #[test]
    fn too_late_packets_are_counted_and_dropped() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        // Packet 4 arrives 200 ms late, after 5 was played and 4 given up.
        let out = run(
            &mut jb,
            10,
            |k| u64::from(k) * 20 + if k == 4 { 200 } else { 0 },
            0,
            0,
        );
        assert_eq!(audio(&out), wanted((0..10).filter(|&k| k != 4)));
        assert_eq!(
            out[4],
            Playout::Gap {
                samples: 160,
                lost: true
            }
        );
        let s = jb.stats();
        assert_eq!((s.late, s.lost, s.played), (1, 1, 9));
    }

    #[test]
    fn sequence_and_timestamp_wrap_are_seamless() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let out = run(
            &mut jb,
            40,
            |k| u64::from(k) * 20,
            u32::MAX - 3 * FRAME + 1,
            65_530,
        );
        assert_eq!(audio(&out), wanted(0..40));
        assert_eq!(totals(&out), (40 * 160, 0, 0));
        let s = jb.stats();
        assert_eq!((s.lost, s.resyncs, s.ssrc_changes), (0, 0, 0));
    }

    #[test]
    fn silence_suppression_gives_silent_gap_and_reanchors() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        for k in 0..10u32 {
            push(&mut jb, u64::from(k) * 20, SSRC, k as u16, k * FRAME, k);
        }
        jb.pop(1200, &mut out);
        assert!(jb.is_empty());
        // One second of silence, then a talkspurt; it arrives 7 ms later than the schedule
        // expected, which re-anchoring absorbs.
        let ts = 10 * FRAME + 8000;
        push_with(&mut jb, 1207, SSRC, 10, ts, true, &payload(10), FRAME);
        assert_eq!(jb.next_due_ms(), Some(1287));
        jb.pop(1286, &mut out);
        assert_eq!(out.len(), 10);
        jb.pop(1287, &mut out);
        assert_eq!(
            out[10],
            Playout::Gap {
                samples: 8000,
                lost: false
            }
        );
        assert_eq!(audio(&out), wanted(0..11));
        assert_eq!(totals(&out), (11 * 160, 0, 8000));
    }

    #[test]
    fn ssrc_change_keeps_the_timeline_continuous() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        // Leg A: 10 packets; its last one arrives after leg B has started.
        let mut events: Vec<(u64, u32, u16, u32, u32)> = (0..10u32)
            .map(|k| {
                (
                    u64::from(k) * 20 + if k == 9 { 50 } else { 0 },
                    SSRC,
                    100 + k as u16,
                    5000 + k * FRAME,
                    k,
                )
            })
            .collect();
        // Leg B (a transfer): another SSRC, sequence and clock, on time after A.
        events.extend((0..10u32).map(|j| {
            (
                200 + u64::from(j) * 20,
                0xB0B,
                40_000 + j as u16,
                999_999 + j * FRAME,
                100 + j,
            )
        }));
        events.sort_by_key(|e| e.0);
        for (now, ssrc, seq, ts, k) in events {
            jb.pop(now, &mut out);
            assert_eq!(push(&mut jb, now, ssrc, seq, ts, k), PushResult::Accepted);
        }
        jb.flush(&mut out);
        assert_eq!(audio(&out), wanted((0..10).chain(100..110)));
        assert_eq!(totals(&out), (20 * 160, 0, 0));
        let s = jb.stats();
        assert_eq!(
            (s.ssrc_changes, s.resyncs, s.late, s.stray, s.lost),
            (1, 0, 0, 0, 0)
        );
    }

    /// The black-box probe's sender: a new SSRC on every packet (22 s of speech became
    /// 20 ms when each new SSRC waited for a confirmation that never came). Every packet
    /// plays, in arrival order, and each change is counted; sequence numbers and
    /// timestamps that go on, or that are as random as the SSRC, make no difference.
    #[test]
    fn a_new_ssrc_on_every_packet_still_plays_every_packet() {
        let n = 1100u32; // 22 s of 20 ms packets
        for random_numbers in [false, true] {
            let mut rng = SplitMix64::new(20);
            let mut jb = JitterBuffer::new(JitterConfig::new(8000));
            let mut out = Vec::new();
            for k in 0..n {
                let now = u64::from(k) * 20;
                let (seq, ts) = if random_numbers {
                    (rng.next_u64() as u16, rng.next_u64() as u32)
                } else {
                    (k as u16, k * FRAME)
                };
                jb.pop(now, &mut out);
                let r = push(&mut jb, now, rng.next_u64() as u32 | 1, seq, ts, k);
                assert_eq!(r, PushResult::Accepted, "packet {k}");
            }
            jb.flush(&mut out);
            assert_eq!(
                audio(&out),
                wanted(0..n),
                "random numbers: {random_numbers}"
            );
            assert_eq!(totals(&out), (u64::from(n * FRAME), 0, 0));
            let s = jb.stats();
            assert_eq!(
                (s.ssrc_changes, s.played, s.lost, s.late, s.stray),
                (u64::from(n - 1), u64::from(n), 0, 0, 0)
            );
        }
    }

    /// The same sender in a burst (all 22 s at once): still every packet, back to back.
    #[test]
    fn a_burst_of_new_ssrcs_plays_back_to_back() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        for k in 0..1100u32 {
            push(&mut jb, 0, 0xA000_0000 + k, k as u16, k * FRAME, k);
            jb.pop(0, &mut out);
        }
        jb.flush(&mut out);
        // max_packets (500) bounds what is held: the oldest are dropped, counted.
        let s = jb.stats();
        assert_eq!(s.ssrc_changes, 1099);
        assert_eq!(s.played + s.overflow, 1100);
        assert_eq!(audio(&out), wanted(s.overflow as u32..1100));
        assert_eq!(totals(&out).0, s.played * u64::from(FRAME));
    }

    /// One packet of another SSRC inside a stream is played like any other (a new source),
    /// and the stream's own packets go on around it: nothing is lost.
    #[test]
    fn one_packet_of_another_ssrc_costs_the_stream_nothing() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        for k in 0..20u32 {
            let now = u64::from(k) * 20;
            jb.pop(now, &mut out);
            push(&mut jb, now, SSRC, k as u16, k * FRAME, k);
            if k == 10 {
                jb.pop(now + 5, &mut out);
                push(&mut jb, now + 5, 0xB0B, 777, 424_242, 99);
            }
        }
        jb.flush(&mut out);
        // The stream's stragglers within the depth (11..=14) are played before the new
        // source's packet, which overlaps them; then the stream is a new source again.
        assert_eq!(audio(&out), wanted((0..15).chain([99]).chain(15..20)));
        assert_eq!(totals(&out), (21 * 160, 0, 0));
        let s = jb.stats();
        assert_eq!((s.ssrc_changes, s.lost, s.late), (2, 0, 0));
        assert_eq!(s.overlap_samples, 160);
    }

    #[test]
    fn ssrc_change_after_a_pause_is_silence() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        for k in 0..5u32 {
            push(&mut jb, u64::from(k) * 20, SSRC, k as u16, k * FRAME, k);
        }
        // The new sender starts 500 ms after the old one's audio ended.
        for j in 0..5u32 {
            push(
                &mut jb,
                600 + u64::from(j) * 20,
                0xB0B,
                9 + j as u16,
                77 + j * FRAME,
                10 + j,
            );
        }
        jb.flush(&mut out);
        assert_eq!(audio(&out), wanted((0..5).chain(10..15)));
        assert_eq!(totals(&out), (10 * 160, 0, 4000));
        assert_eq!(jb.stats().ssrc_changes, 1);
    }

    #[test]
    fn huge_timestamp_jumps_resync_without_gigantic_gaps() {
        for jump in [1_000_000_000u32, 0u32.wrapping_sub(100_000)] {
            let mut jb = JitterBuffer::new(JitterConfig::new(8000));
            let mut out = Vec::new();
            for k in 0..20u32 {
                let now = u64::from(k) * 20;
                let ts = k * FRAME + if k >= 10 { jump } else { 0 };
                jb.pop(now, &mut out);
                assert_eq!(
                    push(&mut jb, now, SSRC, k as u16, ts, k),
                    PushResult::Accepted
                );
            }
            jb.flush(&mut out);
            assert_eq!(audio(&out), wanted(0..20));
            assert_eq!(totals(&out), (20 * 160, 0, 0), "jump {jump}");
            assert_eq!(jb.stats().resyncs, 1);
        }
    }

    #[test]
    fn resync_stragglers_stay_in_their_stream() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let jump = 5_000_000;
        // Packet 9 (old clock) arrives after packet 10 (new clock).
        let out = {
            let mut out = Vec::new();
            let arrival = |k: u32| u64::from(k) * 20 + if k == 9 { 30 } else { 0 };
            let mut order: Vec<u32> = (0..20).collect();
            order.sort_by_key(|&k| (arrival(k), k));
            for k in order {
                let ts = k * FRAME + if k >= 10 { jump } else { 0 };
                jb.pop(arrival(k), &mut out);
                assert_eq!(
                    push(&mut jb, arrival(k), SSRC, k as u16, ts, k),
                    PushResult::Accepted
                );
            }
            jb.flush(&mut out);
            out
        };
        assert_eq!(audio(&out), wanted(0..20));
        assert_eq!(totals(&out), (20 * 160, 0, 0));
        let s = jb.stats();
        assert_eq!((s.resyncs, s.late, s.lost), (1, 0, 0));
    }

    #[test]
    fn sequence_jump_needs_confirmation() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        let mut now = 0;
        for k in 0..10u32 {
            now = u64::from(k) * 20;
            jb.pop(now, &mut out);
            push(&mut jb, now, SSRC, k as u16, k * FRAME, k);
            if k == 4 {
                // A stray copy from long ago: far behind, never confirmed.
                assert_eq!(
                    push(&mut jb, now, SSRC, 30_000, 3, 99),
                    PushResult::Accepted
                );
            }
        }
        // The sender restarts its sequence numbers (same SSRC, timestamps go on).
        for k in 10..20u32 {
            now = u64::from(k) * 20;
            jb.pop(now, &mut out);
            push(&mut jb, now, SSRC, 50_000 + k as u16, k * FRAME, k);
        }
        jb.pop(now, &mut out);
        jb.flush(&mut out);
        assert_eq!(audio(&out), wanted(0..20));
        assert_eq!(totals(&out), (20 * 160, 0, 0));
        let s = jb.stats();
        assert_eq!((s.resyncs, s.stray, s.lost, s.late), (1, 1, 0, 0));
    }

    #[test]
    fn nothing_before_due_everything_by_flush() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        assert_eq!(jb.next_due_ms(), None);
        for k in 0..3u32 {
            push(
                &mut jb,
                1000 + u64::from(k) * 20,
                SSRC,
                k as u16,
                k * FRAME,
                k,
            );
        }
        assert_eq!(jb.len(), 3);
        jb.pop(1079, &mut out);
        assert!(out.is_empty());
        assert_eq!(jb.next_due_ms(), Some(1080));
        jb.pop(1080, &mut out);
        assert_eq!(audio(&out), wanted(0..1));
        assert_eq!(jb.next_due_ms(), Some(1100));
        jb.flush(&mut out);
        assert_eq!(audio(&out), wanted(0..3));
        assert!(jb.is_empty() && jb.next_due_ms().is_none());
    }

    #[test]
    fn early_packets_wait_no_longer_than_the_depth() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        // A burst after congestion: packet 0 (sent at 0 ms) comes 50 ms late, 1 and 2 right
        // behind it, then 3 on time: early for a schedule anchored on packet 0.
        for (now, k) in [(50, 0u32), (51, 1), (52, 2), (60, 3)] {
            push(&mut jb, now, SSRC, k as u16, k * FRAME, k);
        }
        assert_eq!(jb.next_due_ms(), Some(130));
        let mut out = Vec::new();
        jb.pop(132, &mut out);
        assert_eq!(audio(&out), wanted(0..3));
        assert_eq!(jb.next_due_ms(), Some(140));
    }

    #[test]
    fn slow_sender_clock_does_not_eat_the_depth() {
        // The sender's clock runs 0.5% slow: 20 ms of its audio take 20.1 ms of ours, so
        // after 40 s a fixed schedule would be 200 ms behind. Every 10th packet is 50 ms
        // late (behind its successors), which only a depth still there can reorder.
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let out = run(
            &mut jb,
            2000,
            |k| u64::from(k) * 201 / 10 + if k % 10 == 5 { 50 } else { 0 },
            0,
            0,
        );
        assert_eq!(audio(&out), wanted(0..2000));
        let s = jb.stats();
        assert_eq!((s.late, s.lost), (0, 0));
    }

    #[test]
    fn max_packets_bound_holds() {
        let mut cfg = JitterConfig::new(8000);
        cfg.max_packets = 10;
        let mut jb = JitterBuffer::new(cfg);
        for k in 0..50u32 {
            push(&mut jb, 0, SSRC, k as u16, k * FRAME, k);
            assert!(jb.len() <= 10);
        }
        assert_eq!(jb.stats().overflow, 40);
        let mut out = Vec::new();
        jb.flush(&mut out);
        assert_eq!(audio(&out), wanted(40..50));
    }

    #[test]
    fn dtmf_events_play_in_order_and_take_no_audio_time() {
        let mut jb = JitterBuffer::new(JitterConfig::new(8000));
        let mut out = Vec::new();
        let mut seq = 0u16;
        let mut now = 0;
        for k in 0..5u32 {
            push(&mut jb, now, SSRC, seq, k * FRAME, k);
            (seq, now) = (seq + 1, now + 20);
        }
        // A '5' from ts 800 for 1600 units: packets every 50 ms, end sent three times.
        let start = 5 * FRAME;
        for (d, end) in [
            (400u16, false),
            (800, false),
            (1200, false),
            (1600, true),
            (1600, true),
            (1600, true),
        ] {
            let data = [5, if end { 0x8A } else { 0x0A }, (d >> 8) as u8, d as u8];
            push_with(&mut jb, now, SSRC, seq, start, seq == 5, &data, 0);
            (seq, now) = (seq + 1, now + 50);
            jb.pop(now, &mut out);
        }
        push_with(
            &mut jb,
            now,
            SSRC,
            seq,
            start + 1600,
            true,
            &payload(5),
            FRAME,
        );
        jb.flush(&mut out);
        assert_eq!(audio(&out), wanted(0..6));
        assert_eq!(totals(&out), (6 * 160, 0, 1600));
        let mut tracker = DtmfTracker::default();
        let presses: Vec<_> = out
            .iter()
            .filter_map(|p| match p {
                Playout::Event {
                    timestamp, payload, ..
                } => tracker.push(*timestamp, parse_event(payload).unwrap()),
                _ => None,
            })
            .collect();
        assert_eq!(presses.len(), 1);
        assert_eq!(
            (presses[0].digit, presses[0].timestamp, presses[0].duration),
            ('5', start, 1600)
        );
        assert!(matches!(out[5], Playout::Event { .. }));
    }

    /// A seeded network: 5% loss, 10% reordered by up to 40 ms, 2% duplicated.
    #[test]
    fn randomized_network_keeps_audio_and_time_exact() {
        for seed in 0..4u64 {
            let mut rng = SplitMix64::new(0xC0FFEE + seed);
            let n = 2000u32;
            let (seq0, ts0) = (65_000u16, u32::MAX - 100_000);
            let mut sent: Vec<(u64, u32)> = Vec::new();
            let mut dropped = Vec::new();
            let mut dups = 0;
            for k in 0..n {
                let t = u64::from(k) * 20;
                // Keep the first and last so the timeline's ends are known.
                if k > 0 && k < n - 1 && rng.next_f32() < 0.05 {
                    dropped.push(k);
                    continue;
                }
                let delay = if rng.next_f32() < 0.10 {
                    1 + rng.below(40) as u64
                } else {
                    0
                };
                sent.push((t + delay, k));
                if rng.next_f32() < 0.02 {
                    sent.push((t + rng.below(41) as u64, k));
                    dups += 1;
                }
            }
            sent.sort();
            let mut jb = JitterBuffer::new(JitterConfig::new(8000));
            let mut out = Vec::new();
            for &(now, k) in &sent {
                jb.pop(now, &mut out);
                push(
                    &mut jb,
                    now,
                    SSRC,
                    seq0.wrapping_add(k as u16),
                    ts0.wrapping_add(k * FRAME),
                    k,
                );
                while let Some(due) = jb.next_due_ms().filter(|&d| d <= now) {
                    jb.pop(due, &mut out);
                }
            }
            jb.flush(&mut out);
            let (audio_samples, concealed, silent) = totals(&out);
            assert_eq!(
                audio_samples + concealed + silent,
                u64::from(n * FRAME),
                "seed {seed}"
            );
            assert_eq!(concealed, dropped.len() as u64 * u64::from(FRAME));
            assert_eq!(silent, 0);
            let kept = (0..n).filter(|k| !dropped.contains(k));
            assert_eq!(audio(&out), wanted(kept));
            let s = jb.stats();
            assert_eq!(s.lost, dropped.len() as u64);
            assert_eq!(s.duplicate, dups);
            assert_eq!((s.late, s.stray, s.overflow, s.resyncs), (0, 0, 0, 0));
            assert_eq!(s.received, sent.len() as u64);
        }
    }

    /// Arbitrary packets and clocks: no panic, the bound holds, and every Audio out was
    /// accepted by push.
    #[test]
    fn arbitrary_input_never_breaks_it() {
        let mut rng = SplitMix64::new(99);
        for round in 0..20 {
            let mut cfg = JitterConfig::new([8000, 16_000, 48_000, 0][round % 4]);
            cfg.max_packets = 1 + rng.below(64);
            cfg.depth_ms = rng.below(200) as u32;
            cfg.max_gap_ms = [0, 1, 60_000, u32::MAX][rng.below(4)];
            let mut jb = JitterBuffer::new(cfg.clone());
            let mut out = Vec::new();
            let (mut seq, mut ts, mut now) = (
                rng.next_u64() as u16,
                rng.next_u64() as u32,
                rng.next_u64() >> 1,
            );
            let mut accepted = 0u64;
            for _ in 0..3000 {
                match rng.below(10) {
                    0 => seq = rng.next_u64() as u16,
                    1 => ts = rng.next_u64() as u32,
                    2 => now = rng.next_u64(),
                    _ => {}
                }
                seq = seq.wrapping_add(rng.below(5) as u16).wrapping_sub(1);
                ts = ts.wrapping_add(rng.below(400) as u32);
                now = now.saturating_add(rng.below(40) as u64);
                let ssrc = [SSRC, 1, 2][rng.below(3) * rng.below(2)];
                let samples = [0, 160, 1, u32::MAX][rng.below(4)];
                let marker = rng.below(4) == 0;
                let r = push_with(&mut jb, now, ssrc, seq, ts, marker, &[seq as u8], samples);
                accepted += u64::from(r == PushResult::Accepted);
                assert!(jb.len() <= cfg.max_packets.max(1));
                if rng.below(3) == 0 {
                    jb.pop(now.wrapping_add(rng.below(300) as u64), &mut out);
                }
            }
            jb.flush(&mut out);
            let played = out
                .iter()
                .filter(|p| !matches!(p, Playout::Gap { .. }))
                .count() as u64;
            assert_eq!(played, jb.stats().played);
            assert!(played <= accepted);
        }
    }
}
