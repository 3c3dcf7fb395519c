//! The contact-centre layer over a call's finished utterances, sans-I/O like the core:
//!
//! - [`finish`]: the last step of every utterance: words placed in call time, voice and
//!   words fused, alerts, PII redaction, the emotional profile for the summary.
//! - [`alerts`]: trends over recent utterances become alerts (escalate, anxious caller,
//!   long silence, cross-talk), with cue phrases and cool-downs.
//! - [`pii`]: redaction of card numbers, codes, expiry dates, SSNs, phone numbers and
//!   e-mail addresses in transcripts and their words.
//! - [`profile`]: a call's emotion over time, per-role means and peak moments (summary).

pub mod alerts;
pub mod finish;
pub mod pii;
pub mod profile;

use crate::proto;

/// Joins words into a transcript: a space between words, none before punctuation-only
/// tokens. One rule for every finished utterance ([`finish`]) and for redaction ([`pii`]),
/// so that a redacted transcript is joined exactly as the original was.
pub fn join_words(words: &[proto::Word]) -> String {
    let mut s = String::new();
    for w in words {
        let punct = w.text.chars().all(|c| c.is_ascii_punctuation());
        if !s.is_empty() && !punct {
            s.push(' ');
        }
        s.push_str(&w.text);
    }
    s
}
