//! Endpointing: which 10 ms frames are speech, and where utterances begin and end.
//!
//! Sans-I/O: [`Endpointer::push`] takes one [`Frame`] at a time (frame `i` is
//! centred at `i * 10 ms`) and returns a finished [`Segment`] when an utterance
//! ends. Decisions use an adaptive noise floor (minimum statistics over a few
//! seconds), so stationary line noise and hum are not speech, and voicing, so
//! unvoiced noise bursts never start an utterance. Whisper only ever sees
//! audio this module calls speech: that is what keeps it from inventing words on
//! silence and noise.
use crate::core::dsp::Frame;

/// Frames per second (10 ms hop).
pub const FRAMES_PER_S: u32 = 100;
/// Default hangover: an utterance ends after this much non-speech, ms.
pub const DEFAULT_HANGOVER_MS: u32 = 500;
/// Default shortest utterance kept (speech frames only), ms.
pub const DEFAULT_MIN_SPEECH_MS: u32 = 250;
/// Default longest utterance: it is cut there and a new one starts, ms.
pub const DEFAULT_MAX_UTTERANCE_MS: u32 = 15_000;
/// Default audio kept before the first speech frame (for the recogniser), ms.
pub const DEFAULT_PRE_ROLL_MS: u32 = 400;
/// Default audio kept after the last speech frame, ms.
pub const DEFAULT_POST_ROLL_MS: u32 = 300;
/// Default margin above the noise floor for a frame to be active, dB.
pub const DEFAULT_MARGIN_DB: f32 = 9.0;
/// Default absolute level below which nothing is speech, dBFS.
pub const DEFAULT_MIN_LEVEL_DB: f32 = -60.0;
/// Default voicing threshold for a frame to count toward speech onset.
pub const DEFAULT_ONSET_VOICED_FRAMES: u32 = 5;

/// Endpointing parameters. All durations in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentConfig {
    /// Non-speech after which an utterance ends.
    pub hangover_ms: u32,
    /// Utterances with less speech than this are discarded.
    pub min_speech_ms: u32,
    /// Utterances are cut at this length.
    pub max_utterance_ms: u32,
    /// Audio kept before the first speech frame.
    pub pre_roll_ms: u32,
    /// Audio kept after the last speech frame.
    pub post_roll_ms: u32,
    /// A frame is active when its energy exceeds the noise floor by this, dB.
    pub margin_db: f32,
    /// No frame quieter than this is active, dBFS.
    pub min_level_db: f32,
    /// Voiced active frames, within the last 80 ms, needed to start an utterance.
    pub onset_voiced_frames: u32,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            hangover_ms: DEFAULT_HANGOVER_MS,
            min_speech_ms: DEFAULT_MIN_SPEECH_MS,
            max_utterance_ms: DEFAULT_MAX_UTTERANCE_MS,
            pre_roll_ms: DEFAULT_PRE_ROLL_MS,
            post_roll_ms: DEFAULT_POST_ROLL_MS,
            margin_db: DEFAULT_MARGIN_DB,
            min_level_db: DEFAULT_MIN_LEVEL_DB,
            onset_voiced_frames: DEFAULT_ONSET_VOICED_FRAMES,
        }
    }
}

/// A finished utterance, in frame indices from the start of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First speech frame.
    pub start_frame: u64,
    /// One past the last speech frame.
    pub end_frame: u64,
    /// Speech (active) frames inside `[start_frame, end_frame)`.
    pub speech_frames: u32,
    /// True when the utterance was cut at the maximum length rather than at a pause.
    pub cut_at_max: bool,
}

impl Segment {
    /// Start time, ms.
    pub fn start_ms(&self) -> u64 {
        self.start_frame * 10
    }
    /// End time, ms.
    pub fn end_ms(&self) -> u64 {
        self.end_frame * 10
    }
}

/// Blocks for the minimum-statistics noise floor: 250 ms each, 3 s in all.
const FLOOR_BLOCK_FRAMES: u32 = 25;
const FLOOR_BLOCKS: usize = 12;
/// Onset window: frames looked back over for voiced frames.
const ONSET_WINDOW: usize = 8;
/// Voicing (periodicity) above which a frame with F0 counts as voiced speech.
const VOICED_MIN: f32 = 0.0;
/// An utterance also ends when no frame has been voiced for this long, ms,
/// so unvoiced noise cannot keep one open.
const MAX_UNVOICED_RUN_MS: u32 = 1_000;

/// Streaming endpointer for one channel.
#[derive(Clone, Debug)]
pub struct Endpointer {
    cfg: SegmentConfig,
    frame: u64,
    // noise floor: ring of block minima plus the running block
    blocks: [f32; FLOOR_BLOCKS],
    n_blocks: usize,
    next_block: usize,
    block_min: f32,
    block_len: u32,
    // onset: recent voiced-and-active flags
    recent: [bool; ONSET_WINDOW],
    // current utterance
    in_speech: bool,
    start: u64,
    last_active: u64,
    last_voiced: u64,
    speech_frames: u32,
}

/// What the endpointer made of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameDecision {
    /// Energy above the noise floor by the margin.
    pub active: bool,
    /// An utterance is open after this frame.
    pub in_speech: bool,
}

impl Endpointer {
    /// A new endpointer at frame 0.
    pub fn new(cfg: SegmentConfig) -> Self {
        Self {
            cfg,
            frame: 0,
            blocks: [f32::INFINITY; FLOOR_BLOCKS],
            n_blocks: 0,
            next_block: 0,
            block_min: f32::INFINITY,
            block_len: 0,
            recent: [false; ONSET_WINDOW],
            in_speech: false,
            start: 0,
            last_active: 0,
            last_voiced: 0,
            speech_frames: 0,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SegmentConfig {
        &self.cfg
    }

    /// Current noise floor estimate, dBFS: the quietest frame of the last 3 s
    /// (minimum statistics). Speech always has dips between syllables, so this
    /// settles on the line's own level within the first syllable.
    pub fn noise_floor_db(&self) -> f32 {
        let mut floor = self.block_min;
        for b in &self.blocks[..self.n_blocks] {
            floor = floor.min(*b);
        }
        floor
    }

    /// Index of the next frame to be pushed.
    pub fn frames_seen(&self) -> u64 {
        self.frame
    }

    /// True while an utterance is open.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// First frame of the open utterance, if any.
    pub fn open_start(&self) -> Option<u64> {
        self.in_speech.then_some(self.start)
    }

    /// Feed the next frame. Returns the decision for it and, when an utterance
    /// just ended (at a pause or at the maximum length), the segment.
    pub fn push(&mut self, f: &Frame) -> (FrameDecision, Option<Segment>) {
        let idx = self.frame;
        self.frame += 1;
        let threshold = (self.noise_floor_db() + self.cfg.margin_db).max(self.cfg.min_level_db);
        self.track_floor(f.energy_db);
        let active = f.energy_db > threshold;
        let voiced = active && f.f0_hz > 0.0 && f.voicing > VOICED_MIN;
        self.recent.rotate_left(1);
        self.recent[ONSET_WINDOW - 1] = voiced;

        let mut done = None;
        if !self.in_speech {
            let n_voiced = self.recent.iter().filter(|v| **v).count() as u32;
            if n_voiced >= self.cfg.onset_voiced_frames {
                // Start at the first active frame of the onset window.
                let first = self.recent.iter().position(|v| *v).unwrap_or(0) as u64;
                self.in_speech = true;
                self.start = idx + 1 + first - ONSET_WINDOW as u64;
                self.last_active = idx;
                self.last_voiced = idx;
                self.speech_frames = n_voiced;
            }
        } else {
            if active {
                self.last_active = idx;
                self.speech_frames += 1;
            }
            if voiced {
                self.last_voiced = idx;
            }
            let hang = ms_to_frames(self.cfg.hangover_ms);
            let max_len = ms_to_frames(self.cfg.max_utterance_ms);
            let unvoiced_limit = ms_to_frames(MAX_UNVOICED_RUN_MS);
            if idx - self.last_active >= hang || idx - self.last_voiced >= unvoiced_limit {
                let end = (self.last_active + 1).min(self.last_voiced + 1 + hang);
                done = self.close(end, false);
            } else if idx + 1 - self.start >= max_len {
                done = self.close(idx + 1, true);
            }
        }
        (
            FrameDecision {
                active,
                in_speech: self.in_speech,
            },
            done,
        )
    }

    /// End of stream: close an open utterance at the last active frame.
    pub fn finish(&mut self) -> Option<Segment> {
        if self.in_speech {
            let end = self.last_active + 1;
            self.close(end, false)
        } else {
            None
        }
    }

    fn close(&mut self, end: u64, cut_at_max: bool) -> Option<Segment> {
        self.in_speech = false;
        self.recent = [false; ONSET_WINDOW];
        let seg = Segment {
            start_frame: self.start,
            end_frame: end.max(self.start + 1),
            speech_frames: self.speech_frames,
            cut_at_max,
        };
        if cut_at_max {
            // Speech goes on: the next utterance starts right away.
            self.in_speech = true;
            self.start = end;
            self.speech_frames = 0;
        }
        (seg.speech_frames >= ms_to_frames(self.cfg.min_speech_ms) as u32).then_some(seg)
    }

    fn track_floor(&mut self, energy_db: f32) {
        self.block_min = self.block_min.min(energy_db);
        self.block_len += 1;
        if self.block_len == FLOOR_BLOCK_FRAMES {
            self.blocks[self.next_block] = self.block_min;
            self.next_block = (self.next_block + 1) % FLOOR_BLOCKS;
            self.n_blocks = (self.n_blocks + 1).min(FLOOR_BLOCKS);
            self.block_min = f32::INFINITY;
            self.block_len = 0;
        }
    }
}

/// Milliseconds to whole 10 ms frames.
pub fn ms_to_frames(ms: u32) -> u64 {
    (ms as u64).div_ceil(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(energy_db: f32, f0_hz: f32) -> Frame {
        Frame {
            energy_db,
            f0_hz,
            voicing: if f0_hz > 0.0 { 0.9 } else { 0.1 },
            ..Frame::default()
        }
    }

    /// Runs frames through an endpointer; returns the segments.
    fn run(frames: &[Frame], cfg: SegmentConfig) -> Vec<Segment> {
        let mut ep = Endpointer::new(cfg);
        let mut out: Vec<Segment> = frames.iter().filter_map(|f| ep.push(f).1).collect();
        out.extend(ep.finish());
        out
    }

    fn silence(n: usize) -> Vec<Frame> {
        vec![frame(-80.0, 0.0); n]
    }
    /// Syllabic speech: loud voiced frames with a 30 ms dip every 200 ms,
    /// loud on the first and last frame for round lengths.
    fn speech(n: usize) -> Vec<Frame> {
        (0..n)
            .map(|k| {
                if (8..=10).contains(&(k % 20)) {
                    frame(-50.0, 0.0)
                } else {
                    frame(-20.0, 150.0)
                }
            })
            .collect()
    }

    #[test]
    fn silence_gives_no_utterance() {
        assert!(run(&silence(3000), SegmentConfig::default()).is_empty());
    }

    #[test]
    fn stationary_voiced_hum_is_not_speech_after_the_floor_settles() {
        // 30 s of a steady periodic hum at -30 dBFS: its own floor.
        let hum = vec![frame(-30.0, 60.0); 3000];
        assert!(run(&hum, SegmentConfig::default()).is_empty());
    }

    #[test]
    fn unvoiced_noise_bursts_never_start_an_utterance() {
        let mut frames = silence(100);
        for _ in 0..20 {
            frames.extend(vec![frame(-20.0, 0.0); 50]);
            frames.extend(silence(50));
        }
        assert!(run(&frames, SegmentConfig::default()).is_empty());
    }

    #[test]
    fn one_utterance_with_hangover_bridging_short_pauses() {
        let mut frames = silence(100);
        frames.extend(speech(80));
        frames.extend(silence(30)); // 300 ms pause < 500 ms hangover
        frames.extend(speech(80));
        frames.extend(silence(200));
        let segs = run(&frames, SegmentConfig::default());
        assert_eq!(segs.len(), 1, "{segs:?}");
        assert_eq!(segs[0].start_frame, 100);
        assert_eq!(segs[0].end_frame, 290);
        assert!(!segs[0].cut_at_max);
    }

    #[test]
    fn a_long_pause_splits_utterances() {
        let mut frames = silence(100);
        frames.extend(speech(80));
        frames.extend(silence(100));
        frames.extend(speech(60));
        frames.extend(silence(100));
        let segs = run(&frames, SegmentConfig::default());
        assert_eq!(segs.len(), 2, "{segs:?}");
        assert_eq!((segs[0].start_frame, segs[0].end_frame), (100, 180));
        assert_eq!((segs[1].start_frame, segs[1].end_frame), (280, 340));
    }

    #[test]
    fn too_short_blips_are_dropped() {
        let mut frames = silence(100);
        frames.extend(speech(15)); // 150 ms < 250 ms minimum
        frames.extend(silence(100));
        assert!(run(&frames, SegmentConfig::default()).is_empty());
    }

    #[test]
    fn endless_speech_is_cut_at_the_maximum_length() {
        let mut frames = silence(50);
        frames.extend(speech(3600));
        let cfg = SegmentConfig::default();
        let segs = run(&frames, cfg.clone());
        let max = ms_to_frames(cfg.max_utterance_ms);
        assert_eq!(segs.len(), 3, "{segs:?}");
        assert!(segs.iter().all(|s| s.end_frame - s.start_frame <= max));
        assert!(segs[0].cut_at_max && segs[1].cut_at_max && !segs[2].cut_at_max);
        // Cuts leave no gap: the audio stays covered.
        assert_eq!(segs[0].end_frame, segs[1].start_frame);
        assert_eq!(segs[2].end_frame, 50 + 3600);
    }

    #[test]
    fn a_call_that_opens_with_speech_is_heard() {
        let mut frames = speech(100);
        frames.extend(silence(100));
        let segs = run(&frames, SegmentConfig::default());
        assert_eq!(segs.len(), 1, "{segs:?}");
        // The floor is learnt at the first dip between syllables (frame 8).
        assert!(segs[0].start_frame <= 15, "{segs:?}");
        assert_eq!(segs[0].end_frame, 100);
    }

    #[test]
    fn speech_over_line_noise_is_found() {
        // Noise floor -45 dBFS (unvoiced), speech 20 dB above it.
        let noise = |n| vec![frame(-45.0, 0.0); n];
        let mut frames = noise(300);
        frames.extend(speech(100).iter().map(|f| Frame {
            energy_db: f.energy_db.max(-44.0) - 5.0,
            ..*f
        }));
        frames.extend(noise(300));
        let segs = run(&frames, SegmentConfig::default());
        assert_eq!(segs.len(), 1, "{segs:?}");
        assert_eq!((segs[0].start_frame, segs[0].end_frame), (300, 400));
    }
}
