//! The last step of every utterance, sans-I/O: the recogniser's words placed in call time,
//! voice and words fused into the emotion with its cues, alerts read from the transcript
//! as recognised, PII redacted from what leaves, and the emotional profile kept for the
//! summary.
//!
//! The shell ([`crate::server::session`]) only moves messages: it hands a [`Finisher`]
//! each prosody event, each ended utterance with what the recogniser made of it, and the
//! call's clock, and sends on the events the finisher returns, in order.
use std::sync::Arc;

use super::alerts::{AlertConfig, AlertCues, CallState};
use super::join_words;
use super::pii::{payment_cue, redact_utterance_with, PiiKind, RoleContext};
use super::profile::Profile;
use crate::asr::Word;
use crate::call::Ended;
use crate::emotion::fusion::fuse;
use crate::emotion::voice::VoiceModel;
use crate::emotion::Words;
use crate::proto::{self, call_event::Event};

/// How one call's utterances are finished.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishOptions {
    /// Send no transcript or words.
    pub disable_transcript: bool,
    /// Send no `UtteranceProsody` events.
    pub disable_prosody_events: bool,
    /// Redact personal data in transcripts and words before they leave (the default).
    pub redact_pii: bool,
    /// With `redact_pii`, every number too ([`RoleContext::all_numbers`]), and every
    /// digit key pressed ([`Finisher::dtmf`]). Off in `FinishOptions::default()` and
    /// [`FinishOptions::from_call_options`] (what a client asked for); the service's own
    /// default is on: a server's calls get it from `security.redact_all_numbers`
    /// ([`FinishOptions::on_server`]) and `analyze` from `--redact-all-numbers`, both
    /// true unless the operator or user turns them off.
    pub redact_all_numbers: bool,
    /// With `redact_pii`, the payment window in ms (0: none). A payment cue in either
    /// party's utterance ([`payment_cue`]) opens it: that utterance and every later
    /// utterance of either party that starts within this long of the end of the cue's
    /// utterance have every number redacted, as with `redact_all_numbers`. An utterance in
    /// the window that held a number keeps it open until half this long after its own end,
    /// never past twice this long after the last cue. Default [`PAYMENT_WINDOW_MS`].
    pub payment_window_ms: u32,
    /// Send `Alert` events (they are in the summary either way).
    pub send_alerts: bool,
    /// Alert thresholds, evidence and cool-down.
    pub alerts: AlertConfig,
}

impl Default for FinishOptions {
    fn default() -> Self {
        Self {
            disable_transcript: false,
            disable_prosody_events: false,
            redact_pii: true,
            redact_all_numbers: false,
            payment_window_ms: PAYMENT_WINDOW_MS,
            send_alerts: true,
            alerts: AlertConfig::default(),
        }
    }
}

/// The default payment window ([`FinishOptions::payment_window_ms`]): 30 s, measured in
/// docs/measurements.md ("Spoken PII between two parties").
pub const PAYMENT_WINDOW_MS: u32 = 30_000;

impl FinishOptions {
    /// The options of a call on a server: what the client asked for, with the server's
    /// alert rules; with `redact_all_numbers` (`security.redact_all_numbers`) every number
    /// is redacted and redaction cannot be turned off, whatever the client asked.
    pub fn on_server(
        o: Option<&proto::CallOptions>,
        alerts: &AlertConfig,
        redact_all_numbers: bool,
        payment_window_ms: u32,
    ) -> Self {
        let mut f = Self::from_call_options(o);
        f.alerts = alerts.clone();
        f.payment_window_ms = payment_window_ms;
        if redact_all_numbers {
            f.redact_pii = true;
            f.redact_all_numbers = true;
        }
        f
    }

    /// The options a client asked for in its `CallOptions` (absent: the defaults).
    pub fn from_call_options(o: Option<&proto::CallOptions>) -> Self {
        let o = o.cloned().unwrap_or_default();
        Self {
            disable_transcript: o.disable_transcript,
            disable_prosody_events: o.disable_prosody_events,
            redact_pii: !o.disable_pii_redaction,
            redact_all_numbers: o.redact_all_numbers,
            payment_window_ms: PAYMENT_WINDOW_MS,
            send_alerts: !o.disable_alerts,
            alerts: AlertConfig::default(),
        }
    }
}

/// The models an utterance is scored with; either may be absent.
#[derive(Clone, Default)]
pub struct Models {
    /// None: no `emotion` and no cues.
    pub voice: Option<Arc<VoiceModel>>,
    /// None: the voice alone decides.
    pub words: Option<Arc<Words>>,
}

/// What the recogniser made of one utterance.
#[derive(Debug)]
pub enum Recognised {
    /// Its words, times relative to the utterance's audio.
    Words(Vec<Word>),
    /// The recogniser failed on it: sent without words.
    Failed,
    /// Never transcribed because the recogniser was behind (queue full, or it waited
    /// too long): sent without words and counted in `transcripts_dropped`.
    Skipped,
}

/// Finishes one call's utterances (see the module docs).
pub struct Finisher {
    opts: FinishOptions,
    models: Models,
    profile: Profile,
    state: CallState,
    /// Alerts raised by the last input (reused buffer).
    raised: Vec<proto::Alert>,
    skipped: u32,
    /// Per role: what its last utterance left open for redaction (a cue, or a number cut
    /// off) and when that utterance ended (ms, call time).
    pii: Vec<(i32, RoleContext, u32)>,
    /// The payment window, if one was opened ([`FinishOptions::payment_window_ms`]).
    payment: Option<PaymentWindow>,
}

/// Where a call's payment window stands (ms, call time).
#[derive(Clone, Copy, Debug)]
struct PaymentWindow {
    /// The end of the last utterance that held a payment cue.
    cue_end_ms: u32,
    /// Utterances starting at or before this have every number redacted.
    until_ms: u32,
}

/// A number goes on in the same speaker's next utterance only if it starts within this
/// many ms of the last one's end: people pause between groups, not for long.
const PII_SPLIT_MAX_GAP_MS: u32 = 10_000;

/// The shipped alert cues, parsed once per process.
fn builtin_cues() -> Arc<AlertCues> {
    static CUES: std::sync::OnceLock<Arc<AlertCues>> = std::sync::OnceLock::new();
    CUES.get_or_init(|| Arc::new(AlertCues::builtin())).clone()
}

impl Finisher {
    /// A finisher with the shipped alert cues.
    pub fn new(opts: FinishOptions, models: Models) -> Self {
        Self {
            state: CallState::new(opts.alerts.clone(), builtin_cues()),
            opts,
            models,
            profile: Profile::default(),
            raised: Vec::new(),
            skipped: 0,
            pii: Vec::new(),
            payment: None,
        }
    }

    /// An utterance ended (its words are on the way): its fast-path event, unless the
    /// call asked for none.
    pub fn prosody(&mut self, p: proto::UtteranceProsody, out: &mut Vec<Event>) {
        self.state.heard(p.end_ms);
        if !self.opts.disable_prosody_events {
            out.push(Event::UtteranceProsody(p));
        }
    }

    /// A finished utterance: its full result, then any alerts it raised. The alerts read
    /// the transcript as recognised; what leaves is redacted.
    pub fn utterance(&mut self, e: Ended, recognised: Recognised, out: &mut Vec<Event>) {
        let words = match recognised {
            Recognised::Words(w) if !self.opts.disable_transcript => Some(w),
            Recognised::Failed if !self.opts.disable_transcript => Some(Vec::new()),
            Recognised::Skipped => {
                self.skipped += 1;
                None
            }
            _ => None,
        };
        let mut u = with_words(e, words, &self.models);
        self.raised.clear();
        self.state.push_utterance(&u, &mut self.raised);
        if self.opts.redact_pii {
            self.redact(&mut u);
        }
        self.profile.push(&u);
        out.push(Event::Utterance(u));
        self.send_alerts(out);
    }

    /// Redacts an utterance with what the same role's previous one left open: a number
    /// split across two utterances, or a cue at the end of one with the digits in the next;
    /// inside the call's payment window, every number.
    fn redact(&mut self, u: &mut proto::Utterance) {
        let all_numbers = self.opts.redact_all_numbers;
        let fresh = RoleContext::default().with_all_numbers(all_numbers);
        let in_window = self.in_payment_window(u.start_ms);
        let at = match self.pii.iter().position(|p| p.0 == u.role) {
            Some(i) => i,
            None => {
                self.pii.push((u.role, fresh, u.start_ms));
                self.pii.len() - 1
            }
        };
        let (_, ctx, end_ms) = &mut self.pii[at];
        if u.start_ms.saturating_sub(*end_ms) > PII_SPLIT_MAX_GAP_MS {
            *ctx = fresh;
        }
        // The cue's own utterance is in the window too: "which card one you like" is the
        // agent's "which card would you like", with a digit word Whisper made of it.
        // Read before redaction: a cue can hold a number word ("the last three digits"),
        // which redaction turns into a tag.
        let cue_here = self.opts.payment_window_ms > 0 && holds_payment_cue(u);
        let mut this = ctx.with_all_numbers(all_numbers || in_window || cue_here);
        let kinds = redact_utterance_with(u, &mut this);
        *ctx = this.with_all_numbers(all_numbers);
        *end_ms = u.end_ms;
        // After it: a card, code, expiry or SSN found in it is a cue as well.
        let cue = cue_here || holds_payment_cue(u);
        self.payment_window(u, cue, in_window && !kinds.is_empty());
    }

    /// Whether something that starts at `ms` falls inside the call's payment window.
    fn in_payment_window(&self, ms: u32) -> bool {
        self.payment.is_some_and(|w| ms <= w.until_ms)
    }

    /// Opens or extends the payment window after a redacted utterance; `cue`: it held a
    /// payment cue before redaction or a tag of one after; `held_number`: it was inside the
    /// window and a number was redacted in it.
    fn payment_window(&mut self, u: &proto::Utterance, cue: bool, held_number: bool) {
        let len = self.opts.payment_window_ms;
        if len == 0 {
            return;
        }
        if cue {
            let until_ms = self
                .payment
                .map_or(0, |w| w.until_ms)
                .max(u.end_ms.saturating_add(len));
            self.payment = Some(PaymentWindow {
                cue_end_ms: u.end_ms,
                until_ms,
            });
        } else if let Some(w) = self.payment.as_mut().filter(|_| held_number) {
            let dictating = u.end_ms.saturating_add(len / 2);
            let cap = w.cue_end_ms.saturating_add(len.saturating_mul(2));
            w.until_ms = w.until_ms.max(dictating.min(cap));
        }
    }

    /// A key pressed on the phone: passed on, its digit as `[NUMBER]` wherever every number
    /// is redacted (the call's setting, or inside the payment window), since a card typed
    /// on the keypad is as secret as one spoken. `*`, `#` and `A`-`D` pass as they are.
    pub fn dtmf(&mut self, mut d: proto::Dtmf, out: &mut Vec<Event>) {
        let every_number = self.opts.redact_all_numbers || self.in_payment_window(d.start_ms);
        if self.opts.redact_pii && every_number && d.digit.chars().any(|c| c.is_ascii_digit()) {
            d.digit = PiiKind::Number.tag().to_string();
        }
        out.push(Event::Dtmf(d));
    }

    /// The call's audio reached `ms`; `speaking`: someone is speaking then.
    pub fn clock(&mut self, ms: u32, speaking: bool, out: &mut Vec<Event>) {
        if speaking {
            self.state.heard(ms);
        }
        self.raised.clear();
        self.state.advance(ms, &mut self.raised);
        self.send_alerts(out);
    }

    fn send_alerts(&mut self, out: &mut Vec<Event>) {
        if self.opts.send_alerts {
            out.extend(self.raised.drain(..).map(Event::Alert));
        }
    }

    /// Completes the core's summary: the emotional profile, every alert of the call, and
    /// the utterances sent without words because the recogniser was behind.
    pub fn summary(&self, s: &mut proto::CallSummary) {
        self.profile.fill(s);
        s.alerts = self.state.alerts().to_vec();
        s.transcripts_dropped += self.skipped;
    }
}

/// The full utterance: words (if any) moved from audio time to call time, and the
/// emotion of voice and words fused, with its cues. `None`: no transcript at all.
fn with_words(e: Ended, words: Option<Vec<Word>>, models: &Models) -> proto::Utterance {
    let mut u = e.utterance;
    if let Some(words) = words {
        u.words = words
            .into_iter()
            .map(|w| proto::Word {
                text: w.text.trim().to_string(),
                start_ms: e.audio_start_ms + w.start_ms,
                end_ms: e.audio_start_ms + w.end_ms,
                confidence: w.confidence,
            })
            .filter(|w| !w.text.is_empty())
            .collect();
        u.transcript = join_words(&u.words);
    }
    if let (Some(model), Some(score)) = (models.voice.as_deref(), &e.voice_score) {
        let who = match proto::Role::try_from(u.role) {
            Ok(proto::Role::Agent) => "agent",
            _ => "caller",
        };
        let text = models
            .words
            .as_deref()
            .filter(|_| !u.transcript.is_empty())
            .map(|w| w.evidence(&u.transcript));
        let (emotion, cues) = fuse(model, score, text.as_ref(), who);
        u.emotion = Some(emotion);
        u.cues = cues;
    }
    u
}

/// Whether an utterance holds a payment cue ([`payment_cue`]), in its words where it has
/// them, else in its transcript.
fn holds_payment_cue(u: &proto::Utterance) -> bool {
    if u.words.is_empty() {
        payment_cue(&u.transcript.split_whitespace().collect::<Vec<_>>())
    } else {
        payment_cue(&u.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::features::N_VOICE;
    use crate::proto::Role;

    /// A caller utterance from `start_ms` to `end_ms` whose audio began 300 ms earlier.
    fn ended(id: &str, start_ms: u32, end_ms: u32) -> Ended {
        Ended {
            prosody: proto::UtteranceProsody {
                utterance_id: id.into(),
                start_ms,
                end_ms,
                ..Default::default()
            },
            utterance: proto::Utterance {
                utterance_id: id.into(),
                role: Role::Caller as i32,
                start_ms,
                end_ms,
                ..Default::default()
            },
            audio: Vec::new(),
            audio_start_ms: start_ms - 300,
            voice: [0.0; N_VOICE],
            voice_score: None,
        }
    }

    fn word(text: &str, start_ms: u32, end_ms: u32) -> Word {
        Word {
            text: text.into(),
            start_ms,
            end_ms,
            confidence: 0.9,
        }
    }

    fn utterances(events: &[Event]) -> Vec<&proto::Utterance> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Utterance(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    fn alerts(events: &[Event]) -> usize {
        events
            .iter()
            .filter(|e| matches!(e, Event::Alert(_)))
            .count()
    }

    #[test]
    fn words_move_to_call_time_and_card_digits_never_leave() {
        let mut f = Finisher::new(FinishOptions::default(), Models::default());
        let mut out = Vec::new();
        let words = ["my", "card", "is", "4111", "1111", "1111", "1111", " "]
            .iter()
            .enumerate()
            .map(|(i, w)| word(w, 100 * i as u32, 100 * i as u32 + 80))
            .collect();
        f.utterance(
            ended("u1", 1_000, 2_000),
            Recognised::Words(words),
            &mut out,
        );
        let u = utterances(&out)[0];
        // The blank word is dropped; the four groups of digits become one redacted word.
        assert_eq!(u.words.len(), 4, "{u:?}");
        assert_eq!(u.words[3].text, "[CARD]");
        assert_eq!((u.words[0].start_ms, u.words[0].end_ms), (700, 780));
        assert!(u.transcript.starts_with("my card is"), "{}", u.transcript);
        assert!(!u.transcript.contains("4111"), "{}", u.transcript);
        assert!(u.words.iter().all(|w| !w.text.contains("1111")));
        assert!(u.emotion.is_none(), "no voice model, no emotion");
    }

    /// A finisher with the default options but the payment window off: rules 1-10 and the
    /// per-speaker context alone.
    fn without_payment_window() -> Finisher {
        let opts = FinishOptions {
            payment_window_ms: 0,
            ..FinishOptions::default()
        };
        Finisher::new(opts, Models::default())
    }

    /// Sends one utterance of `role` with these words; returns its transcript.
    fn say(f: &mut Finisher, role: Role, start_ms: u32, texts: &[&str]) -> String {
        let mut e = ended("u", start_ms, start_ms + 1_000);
        e.utterance.role = role as i32;
        let words = texts.iter().map(|w| word(w, 0, 80)).collect();
        let mut out = Vec::new();
        f.utterance(e, Recognised::Words(words), &mut out);
        utterances(&out)[0].transcript.clone()
    }

    #[test]
    fn a_number_split_across_a_speakers_utterances_is_redacted() {
        // the payment window off: this is the per-speaker context alone
        let mut f = without_payment_window();
        assert_eq!(
            say(&mut f, Role::Caller, 1_000, &["my", "card", "number", "is"]),
            "my card number is"
        );
        // the other side speaks in between: its digits are its own, the caller's cue waits
        assert_eq!(
            say(&mut f, Role::Agent, 2_500, &["go", "on,", "12"]),
            "go on, 12"
        );
        assert_eq!(
            say(&mut f, Role::Caller, 4_000, &["4111", "1111"]),
            "[CARD]"
        );
        // a pause longer than PII_SPLIT_MAX_GAP_MS forgets the cue
        say(
            &mut f,
            Role::Caller,
            6_000,
            &["the", "security", "code", "is"],
        );
        assert_eq!(say(&mut f, Role::Caller, 20_000, &["12"]), "12");
        // without redaction nothing is kept or changed
        let mut off = Finisher::new(
            FinishOptions {
                redact_pii: false,
                ..FinishOptions::default()
            },
            Models::default(),
        );
        say(&mut off, Role::Caller, 500, &["card", "number"]);
        assert_eq!(say(&mut off, Role::Caller, 1_500, &["4111"]), "4111");
    }

    /// A cue that holds a number word opens the window although redaction turns that word
    /// into a tag: the window is decided on the words as Whisper wrote them.
    #[test]
    fn a_cue_with_a_number_in_it_still_opens_the_window() {
        let mut f = Finisher::new(FinishOptions::default(), Models::default());
        let cue: Vec<&str> = "And the last three digits on the signature strip."
            .split(' ')
            .collect();
        assert_eq!(
            say(&mut f, Role::Agent, 300, &cue),
            "And the last [NUMBER] digits on the signature strip."
        );
        assert_eq!(say(&mut f, Role::Caller, 4_500, &["2-8-4."]), "[NUMBER]");
    }

    /// The payment window: the agent's cue protects the caller's answer, whatever Whisper
    /// made of the caller's words; numbers outside it, or with it off, are kept.
    #[test]
    fn a_payment_cue_from_either_party_redacts_every_number_after_it() {
        let mut f = Finisher::new(FinishOptions::default(), Models::default());
        // no cue yet: ordinary numbers stay
        assert_eq!(
            say(&mut f, Role::Caller, 500, &["I", "called", "3", "times"]),
            "I called 3 times"
        );
        assert_eq!(
            say(
                &mut f,
                Role::Agent,
                2_000,
                &["what", "is", "the", "security", "code?"]
            ),
            "what is the security code?"
        );
        // the caller's answer, misheard as no number rule would take it
        assert_eq!(
            say(&mut f, Role::Caller, 4_000, &["It's", "5-1-7."]),
            "It's [NUMBER]"
        );
        assert_eq!(
            say(
                &mut f,
                Role::Caller,
                6_000,
                &["for", "one", "for", "payment"]
            ),
            "[NUMBER] payment"
        );
        // dictation goes on: each number keeps the window open 15 s past its utterance...
        let mut at = 20_000;
        while at <= 60_000 {
            assert_eq!(say(&mut f, Role::Caller, at, &["one", "two"]), "[NUMBER]");
            at += 10_000;
        }
        // ...but never more than 60 s after the last cue (the agent's, ending at 3 s); 14 s
        // after the last number, so no longer its continuation either
        assert_eq!(
            say(&mut f, Role::Caller, 75_000, &["one", "two"]),
            "one two"
        );
        // a found card opens it too, and the agent's own numbers in it go as well
        assert_eq!(
            say(
                &mut f,
                Role::Caller,
                100_000,
                &["4111", "1111", "1111", "1111"]
            ),
            "[CARD]"
        );
        assert_eq!(
            say(
                &mut f,
                Role::Agent,
                102_000,
                &["and", "the", "date,", "oh", "nine?"]
            ),
            "and the date, [NUMBER]"
        );
        // 30 s after the last cue or number with nothing said, it has closed
        assert_eq!(
            say(&mut f, Role::Caller, 140_000, &["it", "took", "2", "weeks"]),
            "it took 2 weeks"
        );
        // with the window off, the same answer keeps what no rule takes
        let mut off = without_payment_window();
        say(
            &mut off,
            Role::Agent,
            2_000,
            &["what", "is", "the", "security", "code?"],
        );
        assert_eq!(
            say(
                &mut off,
                Role::Caller,
                4_000,
                &["for", "one", "for", "payment"]
            ),
            "for one for payment"
        );
    }

    /// The cue's own utterance is in the window: a digit word Whisper made of the agent's
    /// question goes, and so does an ordinary number said with the cue; with the window
    /// off, rules 1-10 alone read it.
    #[test]
    fn the_payment_cues_own_utterance_has_every_number_redacted() {
        let question = ["and", "which", "card", "one", "you", "like?"];
        let mut f = Finisher::new(FinishOptions::default(), Models::default());
        assert_eq!(
            say(&mut f, Role::Agent, 2_000, &question),
            "and which card [NUMBER] you like?"
        );
        let mut f = Finisher::new(FinishOptions::default(), Models::default());
        assert_eq!(
            say(
                &mut f,
                Role::Caller,
                2_000,
                &["3", "digits", "code", "on", "the", "back"]
            ),
            "[NUMBER] digits code on the back"
        );
        let mut off = without_payment_window();
        assert_eq!(
            say(&mut off, Role::Agent, 2_000, &question),
            "and which card one you like?"
        );
    }

    #[test]
    fn redaction_can_be_turned_off() {
        let opts = FinishOptions {
            redact_pii: false,
            ..FinishOptions::default()
        };
        let mut f = Finisher::new(opts, Models::default());
        let mut out = Vec::new();
        let words = vec![word("4111111111111111", 0, 500)];
        f.utterance(
            ended("u1", 1_000, 2_000),
            Recognised::Words(words),
            &mut out,
        );
        assert_eq!(utterances(&out)[0].transcript, "4111111111111111");
    }

    #[test]
    fn no_transcript_means_no_words_and_skips_are_counted() {
        let opts = FinishOptions {
            disable_transcript: true,
            disable_prosody_events: true,
            ..FinishOptions::default()
        };
        let mut f = Finisher::new(opts, Models::default());
        let mut out = Vec::new();
        let e = ended("u1", 1_000, 2_000);
        f.prosody(e.prosody.clone(), &mut out);
        assert!(out.is_empty(), "prosody events were turned off");
        f.utterance(e, Recognised::Words(vec![word("hello", 0, 100)]), &mut out);
        f.utterance(ended("u2", 3_000, 4_000), Recognised::Skipped, &mut out);
        let us = utterances(&out);
        assert_eq!(us.len(), 2);
        assert!(us
            .iter()
            .all(|u| u.words.is_empty() && u.transcript.is_empty()));
        let mut s = proto::CallSummary {
            transcripts_dropped: 1,
            ..Default::default()
        };
        f.summary(&mut s);
        assert_eq!(s.transcripts_dropped, 2, "the core's count plus the skip");
    }

    #[test]
    fn failed_recognition_sends_the_utterance_without_words() {
        let mut f = Finisher::new(FinishOptions::default(), Models::default());
        let mut out = Vec::new();
        let e = ended("u1", 1_000, 2_000);
        f.prosody(e.prosody.clone(), &mut out);
        f.utterance(e, Recognised::Failed, &mut out);
        assert!(matches!(out[0], Event::UtteranceProsody(_)));
        let u = utterances(&out)[0];
        assert!(u.words.is_empty() && u.transcript.is_empty());
        let mut s = proto::CallSummary::default();
        f.summary(&mut s);
        assert_eq!(s.transcripts_dropped, 0, "a failure is not a skip");
    }

    #[test]
    fn alerts_reach_the_summary_even_when_not_sent() {
        for send_alerts in [true, false] {
            let opts = FinishOptions {
                send_alerts,
                ..FinishOptions::default()
            };
            let mut f = Finisher::new(opts, Models::default());
            let mut out = Vec::new();
            // Nobody speaks for longer than the long-silence threshold.
            for ms in (0..=30_000).step_by(1_000) {
                f.clock(ms, false, &mut out);
            }
            assert_eq!(alerts(&out), usize::from(send_alerts), "{out:?}");
            let mut s = proto::CallSummary::default();
            f.summary(&mut s);
            assert_eq!(s.alerts.len(), 1);
            assert_eq!(s.alerts[0].kind, crate::contact::alerts::LONG_SILENCE);
        }
    }

    #[test]
    fn options_follow_the_clients_call_options() {
        assert_eq!(
            FinishOptions::from_call_options(None),
            FinishOptions::default()
        );
        let o = proto::CallOptions {
            disable_pii_redaction: true,
            disable_alerts: true,
            disable_transcript: true,
            disable_prosody_events: true,
            redact_all_numbers: true,
        };
        let f = FinishOptions::from_call_options(Some(&o));
        assert!(!f.redact_pii && !f.send_alerts && f.disable_transcript);
        assert!(f.disable_prosody_events && f.redact_all_numbers);
    }

    /// A server with `security.redact_all_numbers` redacts every number of every call,
    /// and a client cannot turn redaction off; without it the client's options stand.
    #[test]
    fn the_servers_all_numbers_rule_wins_over_the_client() {
        let off = proto::CallOptions {
            disable_pii_redaction: true,
            ..Default::default()
        };
        let alerts = AlertConfig::default();
        let f = FinishOptions::on_server(Some(&off), &alerts, true, PAYMENT_WINDOW_MS);
        assert!(f.redact_pii && f.redact_all_numbers);
        let f = FinishOptions::on_server(None, &alerts, true, PAYMENT_WINDOW_MS);
        assert!(f.redact_pii && f.redact_all_numbers);
        let f = FinishOptions::on_server(Some(&off), &alerts, false, PAYMENT_WINDOW_MS);
        assert!(!f.redact_pii && !f.redact_all_numbers);
        assert_eq!(
            FinishOptions::on_server(None, &alerts, false, PAYMENT_WINDOW_MS),
            FinishOptions::default()
        );
    }

    /// With `redact_all_numbers`, every number of every utterance of the call goes, and the
    /// mode holds past a long pause (the context reset after it keeps the mode).
    #[test]
    fn all_numbers_redacts_every_utterance_of_the_call() {
        let opts = FinishOptions {
            redact_all_numbers: true,
            ..FinishOptions::default()
        };
        let mut f = Finisher::new(opts, Models::default());
        for (start_ms, text) in [(0, "give free hand and one"), (60_000, "My BIM44 am")] {
            let mut u = proto::Utterance {
                role: proto::Role::Caller as i32,
                start_ms,
                end_ms: start_ms + 2_000,
                transcript: text.into(),
                ..Default::default()
            };
            f.redact(&mut u);
            assert!(
                !u.transcript.contains("one") && !u.transcript.contains("44"),
                "{}",
                u.transcript
            );
        }
    }

    /// A digit key is `[NUMBER]` where every number goes (the call's setting, or inside the
    /// payment window a spoken cue opened), and passes as it is elsewhere; `#` always does.
    #[test]
    fn digit_keys_are_redacted_where_every_number_is() {
        let key = |digit: &str, start_ms: u32| proto::Dtmf {
            digit: digit.into(),
            start_ms,
            ..Default::default()
        };
        let keys = |out: &[Event]| -> Vec<String> {
            out.iter()
                .filter_map(|e| match e {
                    Event::Dtmf(d) => Some(d.digit.clone()),
                    _ => None,
                })
                .collect()
        };
        let all = FinishOptions {
            redact_all_numbers: true,
            ..FinishOptions::default()
        };
        let mut f = Finisher::new(all, Models::default());
        let mut out = Vec::new();
        f.dtmf(key("7", 500), &mut out);
        f.dtmf(key("#", 700), &mut out);
        assert_eq!(keys(&out), ["[NUMBER]", "#"]);

        // The rules alone: a key outside a payment window passes; after "card number" the
        // keys of the next 30 s do not.
        let mut f = Finisher::new(FinishOptions::default(), Models::default());
        let mut out = Vec::new();
        f.dtmf(key("1", 500), &mut out);
        let cue = ["please", "key", "in", "your", "card", "number"];
        let words = cue
            .iter()
            .enumerate()
            .map(|(i, w)| word(w, i as u32 * 200, i as u32 * 200 + 150))
            .collect();
        f.utterance(
            ended("u1", 1_000, 2_500),
            Recognised::Words(words),
            &mut out,
        );
        f.dtmf(key("4", 4_000), &mut out);
        f.dtmf(key("4", 40_000), &mut out);
        assert_eq!(keys(&out), ["1", "[NUMBER]", "4"]);
    }

    /// The words cue quotes the transcript as recognised: where every number goes, so do
    /// the cue's ("words: 'third time'"); with the rules alone, a cue of an utterance that
    /// held a secret loses its numbers too, and one of an utterance with none keeps them.
    #[test]
    fn the_words_cue_shows_no_number_the_transcript_hides() {
        let cued = |text: &str, quoted: &str| proto::Utterance {
            role: proto::Role::Caller as i32,
            start_ms: 0,
            end_ms: 2_000,
            transcript: text.into(),
            cues: vec![proto::Cue {
                feature: "words".into(),
                description: format!("words: '{quoted}'"),
                ..Default::default()
            }],
            ..Default::default()
        };
        let all = FinishOptions {
            redact_all_numbers: true,
            ..FinishOptions::default()
        };
        let mut f = Finisher::new(all, Models::default());
        let mut u = cued("this is the third time I have called", "third time");
        f.redact(&mut u);
        assert_eq!(u.cues[0].description, "words: [NUMBER] time'");

        let mut f = Finisher::new(FinishOptions::default(), Models::default());
        let mut u = cued("my card is 4532 0151 1283 1432", "1432");
        f.redact(&mut u);
        assert!(!u.transcript.contains("1432"), "{}", u.transcript);
        assert!(!u.cues[0].description.contains("1432"), "{:?}", u.cues);
        let mut f = Finisher::new(FinishOptions::default(), Models::default());
        let mut u = cued("this is the third time I have called", "third time");
        f.redact(&mut u);
        assert_eq!(u.cues[0].description, "words: 'third time'");
    }
}
